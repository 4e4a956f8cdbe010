import ArgumentParser
import Foundation
import PilotTraceCapture
import PilotTraceWire

/// Capture files and reassembly settings, shared by the commands that read captures.
struct CaptureOptions: ParsableArguments {
    @Argument(
        help: ArgumentHelp(
            "Capture files (pcap, pcapng, optionally gzip-compressed), read as one trace in time order (by each file's first packet).",
            valueName: "capture"))
    var captures: [String]

    @Option(help: ArgumentHelp("Capture seconds without packets after which an open TCP connection is closed.", valueName: "seconds"))
    var idleTimeout: Double = 600

    @Option(
        help: ArgumentHelp(
            "Out-of-order bytes buffered per TCP direction before the hole before them is declared a gap.",
            valueName: "bytes"))
    var maxBuffered: Int = 4 << 20

    func validate() throws {
        guard !captures.isEmpty else { throw ValidationError("Name at least one capture file.") }
        guard idleTimeout > 0 else { throw ValidationError("--idle-timeout must be positive.") }
        guard maxBuffered >= 1024 else { throw ValidationError("--max-buffered must be at least 1024 bytes.") }
    }

    /// The captures in time order (by first record), with a note on stderr when that is not the order given.
    func inTimeOrder() -> [String] {
        let (paths, reordered) = CaptureFiles.ordered(captures)
        if reordered { warn("note: reading the captures in time order (by first packet): \(paths.joined(separator: ", "))") }
        return paths
    }

    var reassembly: TCPReassembler.Configuration {
        var c = TCPReassembler.Configuration()
        c.idleTimeout = idleTimeout
        c.maxBufferedPerDirection = maxBuffered
        return c
    }
}

/// A progress line on stderr for files that take more than a second; silent when stderr is not a terminal.
final class ProgressLine {
    let enabled = isatty(STDERR_FILENO) == 1
    let started = Date()
    var shown = false

    func update(path: String, consumed: UInt64, size: UInt64?, records: Int) {
        guard enabled, Date().timeIntervalSince(started) > 1 else { return }
        shown = true
        var line = "\r\(path): \(records) frames"
        if let size, size > 0 { line += String(format: " (%.0f%%)", Double(consumed) * 100 / Double(size)) }
        writeStandardError(line + "\u{1B}[K")
    }

    func clear() {
        if shown { writeStandardError("\r\u{1B}[K") }
        shown = false
    }
}

/// Prints to standard error.
func warn(_ message: String) {
    writeStandardError(message + "\n")
}

/// Writes to stderr; a closed stderr (`… 2>&1 | head`) loses the text instead of stopping the command (SIGPIPE is
/// ignored, see ``PilotTrace/main()``).
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        if n > 0 { bytes = bytes.dropFirst(n) } else if n < 0 && errno == EINTR { continue } else { return }
    }
}

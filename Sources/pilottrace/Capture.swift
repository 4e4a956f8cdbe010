import ArgumentParser
import Dispatch
import Foundation
import PilotTraceAnalysis
import PilotTraceCapture
import PilotTraceWire

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture live from an interface, analyze as packets arrive, and store the result as it happens.",
        discussion: Examples.discussion(
            "capture",
            """
            Frames go through the same pipeline as `analyze`. Every second the sessions, timelines and findings so \
            far are written to the database, so `pilottrace timeline` in another terminal shows a session while it is \
            live; a status line on stderr (when it is a terminal) counts frames, connections, sessions and findings. \
            When the capture stops (Ctrl-C, SIGTERM or --duration) everything captured is analyzed, stored and \
            flushed, and the kernel's drop counts are reported. --write records the frames: pcapng (with the capture's \
            end time, so a later `analyze` of the file agrees with the live run) or, for a .pcap name, classic pcap; \
            --rotate-size starts a new file at that size and --rotate-files keeps only the newest N. Needs root (or \
            CAP_NET_RAW and CAP_NET_ADMIN).
            """)
    )

    @Option(help: ArgumentHelp("The interface (see `pilottrace interfaces`), e.g. lo, eth0, any.", valueName: "name"))
    var interface: String

    @Option(help: ArgumentHelp("A BPF capture filter, checked before capture starts.", valueName: "bpf"))
    var filter: String?

    @Option(help: ArgumentHelp("Also write the frames to this file (.pcapng, or .pcap for classic pcap).", valueName: "file"))
    var write: String?

    @Option(help: ArgumentHelp("With --write: start a new file when the current one reaches this size.", valueName: "MB"))
    var rotateSize: Int?

    @Option(help: ArgumentHelp("With --rotate-size: keep only the newest N files.", valueName: "N"))
    var rotateFiles: Int?

    @Option(help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Option(help: ArgumentHelp("Bytes kept per frame.", valueName: "bytes"))
    var snaplen: Int32 = 262_144

    @Option(help: ArgumentHelp("The kernel capture buffer.", valueName: "MB"))
    var bufferSize: Int32 = 64

    @Flag(
        help:
            "Hand each frame over as it arrives (libpcap immediate mode: one MTU-sized buffer slot per frame, so bursts drop sooner; give it a larger --buffer-size). By default frames come in blocks, at most 100 ms late."
    )
    var immediate = false

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var site: SiteOptions
    @OptionGroup var summary: SummaryOptions
    @OptionGroup var tls: TLSKeyLogOptions

    func validate() throws {
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive.") }
        guard snaplen >= 64 else { throw ValidationError("--snaplen must be at least 64 bytes.") }
        guard (1...2048).contains(bufferSize) else { throw ValidationError("--buffer-size is 1…2048 MB.") }
        if rotateSize != nil || rotateFiles != nil {
            guard write != nil else { throw ValidationError("--rotate-size and --rotate-files need --write.") }
            guard let rotateSize, rotateSize >= 1 else { throw ValidationError("--rotate-size must be at least 1 MB.") }
            if let rotateFiles, rotateFiles < 1 { throw ValidationError("--rotate-files must be at least 1.") }
        }
    }

    func run() throws {
        try tls.check()
        let live: LiveCapture
        var writer: RotatingCaptureWriter?
        do {
            live = try LiveCapture(interface: interface, filter: filter, snaplen: snaplen, bufferSize: bufferSize << 20, immediate: immediate)
            if let write {
                writer = try RotatingCaptureWriter(
                    path: write, linkType: live.linkType, snaplen: UInt32(snaplen), interfaceName: interface,
                    application: "pilottrace \(PilotTraceVersion.string)",
                    rotateBytes: rotateSize.map { $0 << 20 }, maxFiles: rotateFiles)
            }
        } catch {
            throw Failure(ErrorText.describe(error))
        }
        let existed = database.exists
        let db = try database.open()
        let started = Date()
        let key = "live:\(interface):\(ISO8601DateFormatter().string(from: started))"
        let run: AnalysisRun
        var options = AnalysisOptions()
        options.tlsKeyLogFiles = tls.files
        do {
            run = try AnalysisRun(
                liveKey: key, capturePath: writer?.files.first, database: db, options: options, toolVersion: PilotTraceVersion.string,
                site: site.resolved)
        } catch {
            if !existed { database.discard(db, analysis: -1, created: true) }
            throw Failure(database.shown, error)
        }
        if let writer, let keys = run.tlsKeyFiles {
            // The saved capture carries the key log lines read (now, and as the files grow).
            writer.writeTLSKeyLog(keys.linesRead)
            keys.onRead = { writer.writeTLSKeyLog($0) }
        }
        let loop = LiveAnalysis(run, duration: duration)
        let signals = StopSignals { loop.requestStop() }
        defer { signals.cancel() }
        let interactive = isatty(STDERR_FILENO) == 1
        warn(
            "capturing on \(interface)\(filter.map { " (filter: \($0))" } ?? "")\(duration.map { " for \($0) s" } ?? "")\(write.map { ", writing \($0)" } ?? ""); Ctrl-C stops"
        )
        let failure = loop.run(
            live, record: { try writer?.write($0) }, flush: { try writer?.flush() },
            kernel: {
                let stats = live.statistics
                return .init(received: Int(stats.received), dropped: Int(stats.dropped), interfaceDropped: Int(stats.interfaceDropped))
            }
        ) { status in
            guard interactive else { return }
            let dropped = live.statistics.dropped
            writeStandardError(
                "\r\(status.frames) frames, \(status.connections) connections, \(status.sessions) sessions, \(status.deviations) findings\(dropped > 0 ? ", \(dropped) dropped" : "")\u{1B}[K"
            )
        }
        if let error = failure {
            // Keep what was captured: analyze and store it, then report the failure.
            if interactive { writeStandardError("\r\u{1B}[K") }
            do { try writer?.close(end: loop.last ?? Timestamp(Date())) } catch { warn("warning: \(ErrorText.describe(error))") }
            let files = Self.reports(writer, linkType: live.linkType)
            do {
                _ = try loop.finish(files: files, end: loop.last, interrupted: "capture error: \(ErrorText.describe(error))")
            } catch {
                warn("warning: storing what was captured: \(ErrorText.describe(error))")
            }
            try? db.close()
            throw Failure("capture on \(interface) stopped", error)
        }
        if interactive { writeStandardError("\r\u{1B}[K") }
        let end = Timestamp(Date())
        let stats = live.statistics
        try writer?.close(end: end, received: UInt64(stats.received), dropped: UInt64(stats.dropped))
        let files = Self.reports(writer, linkType: live.linkType)
        let report = try loop.finish(files: files, end: end)
        print(
            "Captured \(live.frames) frames (\(live.bytes) bytes) on \(interface) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s; kernel: \(stats.received) received, \(stats.dropped) dropped, \(stats.interfaceDropped) dropped by the interface."
        )
        if let writer { print("Wrote \(writer.records) frames to \(writer.files.joined(separator: ", ")).") }
        printText(Analyze.summary(report, database: database.shown, verbose: summary.verbose), terminator: "")
        // The WAL goes into the file: what the command stored is one file to copy or share.
        do { try db.close() } catch { warn("warning: \(ErrorText.describe(error))") }
        try checkFailOn(summary.failOn, report.deviations.map(\.rule.severity))
    }
}

extension Capture {
    /// The files a capture wrote (each rotated piece its own, in order), as the store records them.
    static func reports(_ writer: RotatingCaptureWriter?, linkType: LinkType) -> [CaptureFileReport] {
        guard let writer else { return [] }
        return writer.written.map {
            CaptureFileReport(
                path: $0.path, format: writer.format.rawValue, compressed: false, linkTypes: [linkType], records: $0.records,
                warnings: [], firstTime: $0.firstTime, lastTime: $0.lastTime, endTime: $0.endTime)
        }
    }
}

struct Interfaces: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interfaces", abstract: "List the interfaces live capture can use.",
        discussion: Examples.discussion("interfaces"))

    func run() throws {
        for i in try LiveCapture.interfaces() {
            var flags: [String] = []
            if i.up { flags.append("up") }
            if i.loopback { flags.append("loopback") }
            print("\(i.name)\(flags.isEmpty ? "" : " (\(flags.joined(separator: ", ")))")\(i.description.map { ": \($0)" } ?? "")")
        }
    }
}

import ArgumentParser
import Dispatch
import Foundation
import PilotTraceAnalysis
import PilotTraceCapture
import PilotTraceWire
import Synchronization

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture live from an interface, analyze as packets arrive, and store the result.",
        discussion: """
            Frames go through the same pipeline as `analyze`; when the capture stops (Ctrl-C, SIGTERM or --duration) \
            everything captured is analyzed, stored and flushed, and the kernel's drop counts are reported. \
            --write also records the frames to a pcap file. Needs root (or CAP_NET_RAW and CAP_NET_ADMIN).
            """
    )

    @Option(help: "The interface (see `pilottrace interfaces`), e.g. lo, eth0, any.")
    var interface: String

    @Option(help: ArgumentHelp("A BPF capture filter, checked before capture starts.", valueName: "bpf"))
    var filter: String?

    @Option(help: ArgumentHelp("Also write the frames to this pcap file.", valueName: "file.pcap"))
    var write: String?

    @Option(help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Option(help: ArgumentHelp("Bytes kept per frame.", valueName: "bytes"))
    var snaplen: Int32 = 262_144

    @OptionGroup var database: DatabaseOptions

    func validate() throws {
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive.") }
        guard snaplen >= 64 else { throw ValidationError("--snaplen must be at least 64 bytes.") }
    }

    func run() throws {
        let live: LiveCapture
        do {
            live = try LiveCapture(interface: interface, filter: filter, snaplen: snaplen, writeTo: write)
        } catch {
            warn("error: \(error)")
            throw ExitCode(1)
        }
        let db = try database.open()
        let started = Date()
        let key = "live:\(interface):\(ISO8601DateFormatter().string(from: started))"
        let run = try AnalysisRun(liveKey: key, capturePath: write, database: db, toolVersion: PilotTraceVersion.string)
        let stop = Atomic<Bool>(false)
        let signals = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.store(true, ordering: .relaxed) }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        let interactive = isatty(STDERR_FILENO) == 1
        var lastStatus = Date()
        var first: Timestamp?, last: Timestamp?
        warn("capturing on \(interface)\(filter.map { " (filter: \($0))" } ?? "")\(duration.map { " for \($0) s" } ?? ""); Ctrl-C stops")
        try live.run(shouldStop: {
            if let duration, Date().timeIntervalSince(started) >= duration { return true }
            return stop.load(ordering: .relaxed)
        }) { record in
            if first == nil { first = record.timestamp }
            last = record.timestamp
            try run.process(record)
            if interactive, Date().timeIntervalSince(lastStatus) > 0.5 {
                lastStatus = Date()
                FileHandle.standardError.write(Data("\r\(live.frames) frames, \(live.bytes) bytes\u{1B}[K".utf8))
            }
        }
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        let stats = live.statistics
        let files = write.map { [CaptureFileReport(path: $0, format: "pcap", compressed: false, linkTypes: [live.linkType], records: live.frames,
                                                   warnings: [], firstTime: first, lastTime: last)] } ?? []
        let report = try run.finishLive(files: files)
        print("Captured \(live.frames) frames (\(live.bytes) bytes) on \(interface); kernel: \(stats.received) received, \(stats.dropped) dropped, \(stats.interfaceDropped) dropped by the interface.")
        print(Analyze.summary(report, database: database.resolved), terminator: "")
    }
}

struct Interfaces: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "interfaces", abstract: "List the interfaces live capture can use.")

    func run() throws {
        for i in try LiveCapture.interfaces() {
            var flags: [String] = []
            if i.up { flags.append("up") }
            if i.loopback { flags.append("loopback") }
            print("\(i.name)\(flags.isEmpty ? "" : " (\(flags.joined(separator: ", ")))")\(i.description.map { ": \($0)" } ?? "")")
        }
    }
}

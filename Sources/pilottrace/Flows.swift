import ArgumentParser
import Foundation
import PilotTraceCapture
import PilotTraceWire

struct Flows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flows",
        abstract: "List the TCP conversations in captures.",
        discussion: Examples.discussion(
            "flows",
            """
            One line per TCP connection, in the order they started: client and server, first packet time, \
            duration, frames and bytes each way (frame bytes, as tshark counts them), whether the handshake was \
            captured, how the connection ended, and reassembly problems (gaps, retransmissions, conflicting overlaps).
            A corrupt capture is analyzed up to the corruption, then reported with its offset (exit status 1).
            """)
    )

    @OptionGroup var input: CaptureOptions

    @Flag(help: "Write JSON (one document) instead of a table.")
    var json = false

    func run() throws {
        var pipeline = TCPPipeline(configuration: input.reassembly)
        // JSON keeps the summaries; the table keeps only its cells (rendered as connections close), so a capture with
        // 100,000s of connections holds one row of short strings per connection, not the summary and the table.
        var flows: [ConnectionSummary] = []
        var rows: [(UInt64, [String])] = []
        let json = self.json
        let progress = ProgressLine()
        let (files, error) = try CaptureFiles.analyze(input.inTimeOrder(), pipeline: &pipeline, progress: progress.update) { events in
            for case .closed(let summary) in events {
                if json { flows.append(summary) } else { rows.append((summary.info.id.rawValue, FlowTable.row(summary))) }
            }
        }
        progress.clear()
        flows.sort { $0.info.id < $1.info.id }
        rows.sort { $0.0 < $1.0 }
        let warnings = files.flatMap(\.warnings)
        if json {
            let doc = FlowsDocument(
                files: files.map(FileJSON.init), counters: pipeline.counters, flows: flows.map(FlowJSON.init),
                warnings: warnings, error: error?.description)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(doc), as: UTF8.self))
        } else {
            FlowTable.write(rows.map(\.1), counters: pipeline.counters)
            for w in warnings { warn("warning: \(w)") }
        }
        if let error {
            throw Failure(ErrorText.describe(error))
        }
    }
}

struct FlowsDocument: Encodable {
    var files: [FileJSON]
    var counters: PacketCounters
    var flows: [FlowJSON]
    var warnings: [String]
    var error: String?
}

struct FileJSON: Encodable {
    var path: String
    var format: String
    var compressed: Bool
    var linkTypes: [String]
    var records: Int

    init(_ r: CaptureFileReport) {
        path = r.path
        format = r.format
        compressed = r.compressed
        linkTypes = r.linkTypes.map(\.name)
        records = r.records
    }
}

struct FlowJSON: Encodable {
    struct Handshake: Encodable { var syn, synAck, ack, complete: Bool }
    var id: UInt64
    var client: String
    var server: String
    var roleEvidence: String
    var midstream: Bool
    var communityId: String
    var firstSeen: String
    var firstSeenEpoch: Double
    var lastSeen: String
    var lastSeenEpoch: Double
    var durationSeconds: Double
    var handshake: Handshake
    var closeReason: String
    var completeness: Int
    var toServer: DirectionStats
    var toClient: DirectionStats

    init(_ s: ConnectionSummary) {
        id = s.info.id.rawValue
        client = s.info.client.description
        server = s.info.server.description
        roleEvidence = s.info.roleEvidence.rawValue
        midstream = s.info.midstream
        communityId = s.info.communityID
        firstSeen = s.info.firstSeen.iso8601
        firstSeenEpoch = s.info.firstSeen.epochSeconds
        lastSeen = s.lastSeen.iso8601
        lastSeenEpoch = s.lastSeen.epochSeconds
        durationSeconds = (s.lastSeen.seconds(since: s.info.firstSeen) * 1e6).rounded() / 1e6
        handshake = Handshake(syn: s.synSeen, synAck: s.synAckSeen, ack: s.handshakeAckSeen, complete: s.handshakeComplete)
        closeReason = s.closeReason.rawValue
        completeness = s.completeness
        toServer = s.toServer
        toClient = s.toClient
    }
}

enum FlowTable {
    static let header = [
        "#", "client", "server", "first seen (UTC)", "dur s", "→pkts", "→bytes", "←pkts", "←bytes", "handshake", "close",
        "notes",
    ]
    static let numeric: Set<Int> = [0, 4, 5, 6, 7, 8]

    static func row(_ f: ConnectionSummary) -> [String] {
        [
            String(f.info.id.rawValue), f.info.client.description, f.info.server.description, f.info.firstSeen.iso8601,
            String(format: "%.3f", f.lastSeen.seconds(since: f.info.firstSeen)),
            String(f.toServer.packets), String(f.toServer.bytes), String(f.toClient.packets), String(f.toClient.bytes),
            handshake(f), close(f), notes(f),
        ]
    }

    static func render(_ flows: [ConnectionSummary], counters: PacketCounters) -> String {
        TextTable.render([header] + flows.map(row), numeric: numeric) + footer(flows.count, counters)
    }

    /// Prints the table line by line (the same text as ``render(_:counters:)``, without building it whole).
    static func write(_ rows: [[String]], counters: PacketCounters) {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        print(TextTable.line(header, widths: widths, numeric: numeric))
        for r in rows { print(TextTable.line(r, widths: widths, numeric: numeric)) }
        print(footer(rows.count, counters), terminator: "")
    }

    static func footer(_ count: Int, _ counters: PacketCounters) -> String {
        var out = "\n\(count) TCP connection\(count == 1 ? "" : "s") in \(counters.frames) frames"
        out += " (\(counters.tcpSegments) TCP, \(counters.otherIP) other IP, \(counters.notIP) not IP"
        if counters.malformed > 0 { out += ", \(counters.malformed) malformed" }
        if counters.unsupportedLinkType > 0 { out += ", \(counters.unsupportedLinkType) on unsupported link types" }
        if counters.snaplenCut > 0 { out += ", \(counters.snaplenCut) cut by the snapshot length" }
        out += ")\n"
        return out
    }

    static func handshake(_ f: ConnectionSummary) -> String {
        if f.handshakeComplete { return "complete" }
        var seen: [String] = []
        if f.synSeen { seen.append("syn") }
        if f.synAckSeen { seen.append("syn-ack") }
        if f.handshakeAckSeen { seen.append("ack") }
        return seen.isEmpty ? "not captured" : seen.joined(separator: ",") + " only"
    }

    static func close(_ f: ConnectionSummary) -> String {
        switch f.closeReason {
        case .fin, .rst, .idle, .portReuse: return f.closeReason.rawValue
        case .captureEnd:
            if f.toServer.finSeen { return "fin from client" }
            if f.toClient.finSeen { return "fin from server" }
            return "open at end"
        }
    }

    static func notes(_ f: ConnectionSummary) -> String {
        var n: [String] = []
        if f.info.midstream { n.append("mid-stream (\(f.info.roleEvidence.rawValue))") }
        let gaps = f.toServer.gaps + f.toClient.gaps
        if gaps > 0 { n.append("\(gaps) gap\(gaps == 1 ? "" : "s") (\(f.toServer.gapBytes + f.toClient.gapBytes) B)") }
        let retrans = f.toServer.retransmissions + f.toClient.retransmissions
        if retrans > 0 { n.append("\(retrans) retransmitted") }
        let ooo = f.toServer.outOfOrder + f.toClient.outOfOrder
        if ooo > 0 { n.append("\(ooo) out of order") }
        let outside = f.toServer.outOfWindow + f.toClient.outOfWindow
        if outside > 0 { n.append("\(outside) beyond the window") }
        let conflicts = f.toServer.conflicts + f.toClient.conflicts
        if conflicts > 0 { n.append("\(conflicts) conflicting overlap\(conflicts == 1 ? "" : "s")") }
        return n.joined(separator: "; ")
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

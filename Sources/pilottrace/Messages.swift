import ArgumentParser
import Foundation
import PilotTraceAnalysis
import PilotTraceCapture
import PilotTraceProtocols
import PilotTraceReport
import PilotTraceWire

struct Messages: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "messages",
        abstract: "Print the decoded HTTP, WebSocket and MQTT messages in captures, one line each.",
        discussion: Examples.discussion(
            "messages",
            """
            Each connection's protocol is recognised from its bytes (ports are only a hint): an HTTP request line, \
            an MQTT CONNECT, a TLS ClientHello (encrypted: the line says so and names the server), or, for \
            connections picked up mid-stream, consecutive well-formed MQTT packets or a request/status line. \
            Lines: capture time, connection number, direction (→ client to server, ← back), protocol, summary. \
            Passwords, tokens and device secrets are masked unless --show-secrets.
            """)
    )

    enum ProtocolFilter: String, ExpressibleByArgument, CaseIterable {
        case http, mqtt, ws
    }

    @OptionGroup var input: CaptureOptions
    @OptionGroup var tls: TLSKeyLogOptions

    @Flag(help: "Write JSON Lines (one object per message) instead of text.")
    var json = false

    @Option(
        name: .customLong("protocol"),
        help: ArgumentHelp("Only this protocol's messages: http, mqtt or ws (WebSocket, MQTT over WebSocket included).", valueName: "protocol"))
    var only: ProtocolFilter?

    @Flag(help: "Show passwords, tokens and secrets as captured instead of masking them.")
    var showSecrets = false

    @Option(help: ArgumentHelp("Stored body/payload cap per message, in bytes.", valueName: "bytes"))
    var bodyCap: Int = 1 << 20

    func run() throws {
        var pipeline = TCPPipeline(configuration: input.reassembly)
        var config = StreamAnalyzer.Configuration()
        config.http.maxBodyBytes = bodyCap
        config.http.maxWebSocketMessageBytes = bodyCap
        config.mqtt.maxStoredPayload = bodyCap
        var analyzer = StreamAnalyzer(configuration: config)
        try tls.check()
        let keyFiles = try tls.files.isEmpty ? nil : TLSKeyLogFiles(paths: tls.files)
        if let keyFiles {
            analyzer.tlsKeys = keyFiles.log
            analyzer.tlsKeysOnMiss = { keyFiles.refresh() ? keyFiles.log : nil }
        }
        let paths = input.inTimeOrder()
        var printer = MessagePrinter(json: json, only: only, showSecrets: showSecrets, captures: paths)
        var decoded: [MessageEvent] = []
        let progress = ProgressLine()
        let secrets: (UInt32, [UInt8]) -> Void = { type, data in
            // A pcapng file's own key log (Decryption Secrets Block).
            guard type == CaptureFileReader.tlsKeyLogSecrets else { return }
            keyFiles?.add(TLSKeyLog(data))
            if let keyFiles { analyzer.tlsKeys = keyFiles.log } else { analyzer.tlsKeys.merge(TLSKeyLog(data)) }
        }
        let (files, error) = try CaptureFiles.analyze(paths, pipeline: &pipeline, progress: progress.update, secrets: secrets) { events in
            analyzer.consume(events, into: &decoded)
            progress.clear()
            for m in decoded { printer.print(m) }
            decoded.removeAll(keepingCapacity: true)
        }
        progress.clear()
        printer.flush()
        if !json { printer.footer(counters: pipeline.counters, classified: analyzer.classified) }
        for w in files.flatMap(\.warnings) { warn("warning: \(w)") }
        if let error { throw Failure(ErrorText.describe(error)) }
    }
}

/// Formats message events as text lines or JSON Lines.
struct MessagePrinter {
    let json: Bool
    let only: Messages.ProtocolFilter?
    let showSecrets: Bool
    /// The capture files by ordinal (frames name their file).
    let captures: [String]
    var connections: [ConnectionID: ConnectionInfo] = [:]
    /// Requests by connection and index, until their response is printed (bounded by the HTTP decoder's pipeline).
    var requests = HTTPExchangePairing<Void>()
    var counts: [String: Int] = [:]
    let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.keyEncodingStrategy = .convertToSnakeCase
        return e
    }()

    init(json: Bool, only: Messages.ProtocolFilter?, showSecrets: Bool, captures: [String] = []) {
        self.json = json
        self.only = only
        self.showSecrets = showSecrets
        self.captures = captures
    }

    mutating func print(_ event: MessageEvent) {
        switch event {
        case .classified(let info, let c):
            connections[info.id] = info
            // Worth a line only when nothing will be decoded or the decision rests on less than the first bytes.
            if c.appProtocol == .tls || c.appProtocol == .unknown || c.evidence != .firstBytes {
                emit(
                    info.id, nil, info.firstSeen, c.appProtocol == .tls ? "TLS" : "TCP", "connection",
                    "\(c.appProtocol.rawValue) (\(c.evidence.rawValue)): \(c.note)", filter: nil)
            }
        case .http(let id, let e):
            http(id, e)
        case let .mqtt(id, dir, record, ts, overWebSocket):
            emit(
                id, dir, ts, overWebSocket ? "MQTT/WS" : "MQTT", String(describing: record.packet.type),
                MessageSummary.mqtt(record, showSecrets: showSecrets), filter: overWebSocket ? .ws : .mqtt, fields: Self.fields(record.packet),
                frames: record.frames)
        case let .mqttError(id, dir, error, ts, overWebSocket):
            emit(
                id, dir, ts, overWebSocket ? "MQTT/WS" : "MQTT", "error",
                "malformed: \(error); this direction is no longer decoded", filter: overWebSocket ? .ws : .mqtt)
        case .closed(let summary, _):
            connections[summary.info.id] = nil
            requests.close(summary.info.id)
        }
    }

    mutating func http(_ id: ConnectionID, _ e: HTTPConnectionEvent) {
        switch e {
        case .request(let r):
            requests.request(r, on: id, ())
            emit(
                id, .toServer, r.span.lastByteAt, "HTTP", "request", MessageSummary.request(r, showSecrets: showSecrets), filter: .http,
                fields: Self.fields(r), frames: r.span.frames)
        case .response(let r):
            let request = requests.response(r, on: id)?.request
            var line = MessageSummary.response(r, request: request, showSecrets: showSecrets)
            if let request {
                line += String(format: " [%.1f ms]", r.span.lastByteAt.seconds(since: request.span.lastByteAt) * 1000)
            }
            var f = Self.fields(r)
            f.path = request?.head.path
            emit(id, .toClient, r.span.lastByteAt, "HTTP", "response", line, filter: .http, fields: f, frames: r.span.frames)
        case .upgrade(let u):
            emit(id, nil, nil, "HTTP", "upgrade", u.display(showSecrets: showSecrets), filter: .http)
        case .webSocket(let m):
            emit(
                id, m.direction, m.lastByteAt, "WS", "websocket", MessageSummary.webSocket(m, showSecrets: showSecrets), filter: .ws,
                frames: m.frames)
        case .webSocketError(let error):
            emit(id, nil, nil, "WS", "error", "\(error)", filter: .ws)
        case .error(let error):
            emit(id, error.direction, nil, "HTTP", "error", "\(error)", filter: .http)
        case .resynchronised(let r) where r.skippedBytes > 0:
            emit(
                id, r.direction, r.at, "HTTP", "resync", "resynchronised at stream byte \(r.offset) after skipping \(r.skippedBytes) B",
                filter: .http)
        case .resynchronised:
            break  // a mid-stream start that found its first message at once: nothing was skipped
        }
    }

    /// The machine-readable fields of a message, besides its summary.
    struct Fields: Encodable {
        var method: String?
        var path: String?
        var status: Int?
        var contentType: String?
        var bodyLength: Int?
        var incomplete: String?
        var topic: String?
        var qos: Int?
        var packetId: Int?
        var returnCode: Int?
    }

    struct Line: Encodable {
        var time: String?
        var timeEpoch: Double?
        /// Where the message is in the captures: the file (as given) and Wireshark's `frame.number` of its first and
        /// last bytes.
        var captureFile: String?
        var firstFrame: Int?
        var lastFrame: Int?
        var connection: UInt64
        var client: String?
        var server: String?
        var direction: String?
        var `protocol`: String
        var kind: String
        var summary: String
        var fields: Fields?
    }

    static func fields(_ r: HTTPRequest) -> Fields {
        Fields(
            method: r.method, path: r.head.path, contentType: r.headers["content-type"], bodyLength: r.body.length,
            incomplete: r.incomplete?.reason.rawValue)
    }

    static func fields(_ r: HTTPResponse) -> Fields {
        Fields(
            method: r.requestMethod, status: r.status, contentType: r.headers["content-type"], bodyLength: r.body.length,
            incomplete: r.incomplete?.reason.rawValue)
    }

    static func fields(_ p: MQTTPacket) -> Fields {
        var f = Fields(packetId: p.packetIdentifier.map(Int.init))
        switch p {
        case .publish(let publish):
            f.topic = publish.topic
            f.qos = Int(publish.qos.rawValue)
        case .connAck(let ack):
            f.returnCode = Int(ack.returnCode.rawValue)
        default: break
        }
        return f
    }

    mutating func emit(
        _ id: ConnectionID, _ dir: Direction?, _ ts: Timestamp?, _ proto: String, _ kind: String, _ summary: String,
        filter: Messages.ProtocolFilter?, fields: Fields? = nil, frames: FrameSpan? = nil
    ) {
        if let only, filter != only { return }
        counts[proto, default: 0] += 1
        let info = connections[id]
        let text: String
        if json {
            let place = frames?.inOneFile
            let line = Line(
                time: ts?.iso8601, timeEpoch: ts?.epochSeconds,
                captureFile: place.flatMap { $0.file < captures.count ? captures[$0.file] : nil },
                firstFrame: place?.first, lastFrame: place?.last,
                connection: id.rawValue, client: info?.client.description, server: info?.server.description,
                direction: dir.map { $0 == .toServer ? "to-server" : "to-client" }, protocol: proto, kind: kind, summary: summary,
                fields: fields)
            text = String(decoding: (try? encoder.encode(line)) ?? Data(), as: UTF8.self)
        } else {
            let time = ts?.iso8601 ?? String(repeating: " ", count: 27)
            let arrow = dir?.arrow ?? " "
            let pad = proto.count < 7 ? String(repeating: " ", count: 7 - proto.count) : ""
            text = "\(time)  #\(id.rawValue) \(arrow) \(proto)\(pad) \(summary)"
        }
        hold(text, at: ts)
    }

    /// Lines waiting to be printed in time order: a message is decoded when the bytes that complete it arrive, and a
    /// connection picked up mid-stream may wait a few seconds for its roles, so decoding order is not quite time order.
    var held: [(time: Timestamp, seq: Int, text: String)] = []
    var heldSeq = 0
    var latest = Timestamp(nanoseconds: .min)
    /// Capture seconds a line is held back: more than the longest a decoder delays a message.
    static let reorderWindow = StreamAnalyzer.roleEvidenceWait + 5

    mutating func hold(_ text: String, at ts: Timestamp?) {
        if let ts, ts > latest { latest = ts }
        held.append((ts ?? latest, heldSeq, text))
        heldSeq += 1
        guard let first = held.first, latest.seconds(since: first.time) > Self.reorderWindow * 2 else { return }
        flush(before: latest.adding(seconds: -Self.reorderWindow))
    }

    /// Prints the held lines older than `limit` (all of them without one), in time order.
    mutating func flush(before limit: Timestamp? = nil) {
        held.sort { ($0.time, $0.seq) < ($1.time, $1.seq) }
        let n = limit.map { l in held.firstIndex { $0.time > l } ?? held.count } ?? held.count
        for line in held[..<n] { Swift.print(json ? line.text : SafeText.terminal(line.text)) }
        held.removeFirst(n)
    }

    mutating func footer(counters: PacketCounters, classified: [AppProtocol: Int]) {
        flush()
        let lines = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let conns = classified.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")
        Swift.print("\n\(lines.isEmpty ? "no messages" : lines) in \(counters.frames) frames; connections: \(conns.isEmpty ? "none" : conns)")
    }
}

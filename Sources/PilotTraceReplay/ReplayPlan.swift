import PilotTraceProtocols

/// What a replay re-issues for one stored session, in the recorded order, with what the recording answered.
///
/// Built once from a ``RecordedSession`` (``init(_:)``); pure. The I/O shell walks ``steps``, asks
/// ``prepare(_:bindings:overrides:fresh:)`` for the bytes to send (variables substituted, fresh tid/bid/timestamps),
/// reports what came back, and ``StepComparison`` judges it.
///
/// ## Topics
/// - ``Step``
/// - ``Action``
/// - ``Expectation``
/// - ``Variable``
public struct ReplayPlan: Sendable {
    public var session: Int64
    public var gatewaySN: String?
    public var steps: [Step]
    /// Values the cloud issued in recorded responses and the recording used again later.
    public var variables: [Variable]
    /// What the replay cannot reproduce faithfully (said once, before it runs).
    public var notes: [String]
    /// The device's MQTT went over WebSocket: libmosquitto has no WebSocket client transport.
    public var usesWebSocketMQTT: Bool

    public struct Step: Sendable {
        public var ordinal: Int
        /// Seconds from the session's first recorded step.
        public var at: Double
        public var action: Action
        public var expectation: Expectation
        /// A readable name: `POST /manage/api/v1/login`, `MQTT CONNECT`, `PUBLISH sys/product/SN/status (update_topo)`.
        public var name: String
        public var kind: String { if case .http = action { "http" } else { "mqtt" } }
    }

    public enum Action: Sendable {
        case http(connection: Int, method: String, target: String, headers: [(String, String)], body: [UInt8])
        case connect(
            connection: Int, clientID: String, username: String?, password: [UInt8]?, keepAlive: Int, version: String,
            overWebSocket: Bool)
        case subscribe(connection: Int, filters: [(String, Int)])
        case publish(connection: Int, topic: String, payload: [UInt8], qos: Int, retain: Bool)
        /// The connection ends: DISCONNECT first, or the link just drops (as recorded).
        case end(connection: Int, disconnect: Bool)

        public var connection: Int {
            switch self {
            case .http(let c, _, _, _, _), .connect(let c, _, _, _, _, _, _), .subscribe(let c, _), .publish(let c, _, _, _, _), .end(let c, _): c
            }
        }
    }

    public enum Expectation: Sendable {
        /// The recorded response (status nil: none was captured).
        case http(status: Int?, body: [UInt8], latency: Double?)
        case connack(code: Int?, latency: Double?)
        case suback
        /// The reply the recording had to this publish (nil: none; the replay does not wait for one).
        case reply(RecordedReply?)
        case none
    }

    public struct RecordedReply: Sendable {
        public var topic: String
        public var payload: [UInt8]
        public var latency: Double
    }

    /// A value the cloud issued (at `path` in the response of step `definedBy`) that later steps sent back.
    public struct Variable: Sendable, Hashable {
        public var name: String
        public var value: String
        public var definedBy: Int
        public var path: [String]
        public var usedBy: [Int]
        /// `$.data.access_token`.
        public var pathText: String { "$" + path.map { Int($0) != nil ? "[\($0)]" : ".\($0)" }.joined() }
    }

    // MARK: - Building

    /// The plan of `session`: its HTTP exchanges and MQTT packets merged in time order, variables learned.
    public init(_ session: RecordedSession) {
        self.session = session.id
        gatewaySN = session.gatewaySN
        notes = []
        usesWebSocketMQTT = session.mqtt.contains { $0.overWebSocket }
        var timed: [(Double, Int, Step)] = []  // time, tiebreak, step
        var httpConnections: [Int64: Int] = [:]
        func index(_ map: inout [Int64: Int], _ flow: Int64) -> Int {
            if let i = map[flow] { return i }
            map[flow] = map.count
            return map.count - 1
        }
        var tiebreak = 0
        func add(_ time: Double, _ action: Action, _ expectation: Expectation, _ name: String) {
            timed.append((time, tiebreak, Step(ordinal: 0, at: 0, action: action, expectation: expectation, name: name)))
            tiebreak += 1
        }
        for e in session.exchanges.sorted(by: { ($0.requestTime, $0.connection) < ($1.requestTime, $1.connection) }) {
            let c = index(&httpConnections, e.connection)
            let path = e.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? e.target
            add(
                e.requestTime, .http(connection: c, method: e.method, target: e.target, headers: e.headers, body: e.body),
                .http(status: e.status, body: e.responseBody, latency: e.latency), "\(e.method) \(path)")
        }
        let packets = session.mqtt.sorted { ($0.time, $0.connection) < ($1.time, $1.connection) }
        // MQTT connections as the device lived them: each CONNECT starts one (a flow may hold several after a port
        // reuse); packets of a flow whose CONNECT was not captured continue the latest connection.
        var logical: [Int64: Int] = [:]
        var latest: Int?
        var mqttCount = 0
        var closedByDisconnect: Set<Int> = []
        var lastTime: [Int: Double] = [:]
        var usedPackets = Set<Int>()
        for (i, p) in packets.enumerated() {
            let c: Int
            if p.type == "CONNECT", p.direction == .toServer {
                c = mqttCount
                mqttCount += 1
                logical[p.connection] = c
                latest = c
            } else if let known = logical[p.connection] {
                c = known
            } else if let latest {
                c = latest
                logical[p.connection] = latest
            } else {
                c = mqttCount
                mqttCount += 1
                logical[p.connection] = c
                latest = c
            }
            lastTime[c] = p.time
            guard p.direction == .toServer else { continue }
            switch p.type {
            case "CONNECT":
                let ack = packets[(i + 1)...].first { $0.connection == p.connection && $0.type == "CONNACK" }
                add(
                    p.time,
                    .connect(
                        connection: c, clientID: p.clientID ?? "", username: p.username, password: p.password,
                        keepAlive: p.keepAlive ?? 60, version: p.version, overWebSocket: p.overWebSocket),
                    .connack(code: ack?.returnCode, latency: ack.map { $0.time - p.time }),
                    "MQTT CONNECT \(p.clientID ?? "")")
            case "SUBSCRIBE":
                add(
                    p.time, .subscribe(connection: c, filters: p.filters), .suback,
                    "SUBSCRIBE \(p.filters.count) topic\(p.filters.count == 1 ? "" : "s")")
            case "PUBLISH":
                guard let topic = p.topic else { continue }
                let payload = p.payload ?? []
                let json = try? JSONValue.parse(payload)
                let tid = json?["tid"].flatMap(Self.string)
                var reply: RecordedReply?
                if !topic.hasSuffix("_reply"), let tid {
                    if let j = packets.indices.first(where: { j in
                        j > i && !usedPackets.contains(j) && packets[j].direction == .toClient
                            && packets[j].type == "PUBLISH" && packets[j].topic == topic + "_reply"
                            && (try? JSONValue.parse(packets[j].payload ?? []))?["tid"].flatMap(Self.string) == tid
                    }) {
                        usedPackets.insert(j)
                        reply = RecordedReply(topic: topic + "_reply", payload: packets[j].payload ?? [], latency: packets[j].time - p.time)
                    }
                }
                let method = json?["method"].flatMap(Self.string)
                add(
                    p.time, .publish(connection: c, topic: topic, payload: payload, qos: p.qos ?? 0, retain: p.retain),
                    .reply(reply), "PUBLISH \(topic)\(method.map { " (\($0))" } ?? "")")
            case "DISCONNECT":
                closedByDisconnect.insert(c)
                add(p.time, .end(connection: c, disconnect: true), .none, "MQTT DISCONNECT")
            default:
                continue
            }
        }
        // A connection that ended without DISCONNECT: the link dropped after its last packet.
        for c in 0..<mqttCount where !closedByDisconnect.contains(c) {
            add(lastTime[c] ?? session.start, .end(connection: c, disconnect: false), .none, "MQTT link dropped (no DISCONNECT)")
        }
        timed.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        let origin = min(session.start, timed.first?.0 ?? session.start)
        steps = timed.enumerated().map { i, t in
            var s = t.2
            s.ordinal = i
            s.at = max(0, t.0 - origin)
            return s
        }
        variables = []
        if usesWebSocketMQTT {
            notes.append(
                "the device's MQTT went over WebSocket; libmosquitto has no WebSocket client transport, so the replay connects over plain TCP to --target-mqtt")
        }
        if session.mqtt.contains(where: { $0.version == "3.1" }) {
            notes.append("the recording used MQTT 3.1 (MQIsdp); the replay connects with MQTT 3.1.1")
        }
        variables = Self.learn(steps)
    }

    static func string(_ v: JSONValue) -> String? { if case .string(let s) = v { s } else { nil } }

    // MARK: - Variables

    /// Values shorter than this are only recognised as a whole field (a path segment, a query or header value, a
    /// JSON string, an MQTT credential), never inside a longer text.
    static let substringMinimum = 16

    /// Response strings never taken for issued values.
    static let ordinaryValues: Set<String> = ["success", "failed", "true", "false", "null", "application/json"]

    /// Learns the variables of `steps`: each string a recorded JSON response issued (3 characters or more) that a
    /// later request or CONNECT sent back. When several issued the same value, the one whose name matches the field
    /// it is used in wins, else the latest.
    static func learn(_ steps: [Step]) -> [Variable] {
        var issued: [(step: Int, path: [String], key: String, value: String)] = []
        var variables: [Variable] = []
        for step in steps {
            // Uses first: a step cannot use what its own response issues.
            for (field, value) in fields(step.action) {
                let candidates = issued.filter { c in
                    c.value == value || (c.value.count >= substringMinimum && value.contains(c.value))
                }
                guard !candidates.isEmpty else { continue }
                let f = field.lowercased()
                let chosen =
                    candidates.last { f == $0.key.lowercased() }
                    ?? candidates.last { f.hasSuffix($0.key.lowercased()) || $0.key.lowercased().hasSuffix(f) }
                    ?? candidates.last!
                if let v = variables.firstIndex(where: { $0.definedBy == chosen.step && $0.path == chosen.path }) {
                    if !variables[v].usedBy.contains(step.ordinal) { variables[v].usedBy.append(step.ordinal) }
                } else {
                    var name = chosen.key
                    var n = 2
                    while variables.contains(where: { $0.name == name }) { name = "\(chosen.key)_\(n)"; n += 1 }
                    variables.append(Variable(name: name, value: chosen.value, definedBy: chosen.step, path: chosen.path, usedBy: [step.ordinal]))
                }
            }
            if case .http(_, let body, _) = step.expectation, let json = try? JSONValue.parse(body) {
                Self.leaves(json, path: []) { path, value in
                    guard value.count >= 3, !ordinaryValues.contains(value.lowercased()), let key = path.last(where: { Int($0) == nil }) else { return }
                    issued.append((step.ordinal, path, key, value))
                }
            }
        }
        return variables
    }

    /// The string leaves of `json` with their paths.
    static func leaves(_ json: JSONValue, path: [String], _ body: ([String], String) -> Void) {
        switch json {
        case .string(let s): body(path, s)
        case .array(let a): for (i, v) in a.enumerated() { leaves(v, path: path + [String(i)], body) }
        case .object(let m): for (k, v) in m { leaves(v, path: path + [k], body) }
        default: break
        }
    }

    /// The values a step sends that may carry an issued value, with the name of the field they are in.
    static func fields(_ action: Action) -> [(String, String)] {
        var out: [(String, String)] = []
        switch action {
        case .http(_, _, let target, let headers, let body):
            let (path, query) = split(target)
            for segment in path.split(separator: "/") { out.append(("path", String(segment))) }
            for (k, v) in queryItems(query) { out.append((k, v)); if let d = percentDecoded(v), d != v { out.append((k, d)) } }
            for (k, v) in headers where !["host", "content-length", "user-agent", "accept", "content-type"].contains(k.lowercased()) {
                out.append((k, v))
            }
            if let json = try? JSONValue.parse(body) { leaves(json, path: []) { p, v in out.append((p.last ?? "", v)) } }
        case .connect(_, _, let username, let password, _, _, _):
            if let username { out.append(("mqtt_username", username)) }
            if let password, let text = String(validating: password, as: UTF8.self) { out.append(("mqtt_password", text)) }
        default:
            break
        }
        return out
    }

    /// RFC 3986 §2.1 percent-decoding; nil when malformed or not UTF-8.
    static func percentDecoded(_ s: String) -> String? {
        guard s.contains("%") else { return s }
        var bytes: [UInt8] = []
        var u = Array(s.utf8)[...]
        while let b = u.popFirst() {
            if b == UInt8(ascii: "%") {
                guard u.count >= 2, let hi = hex(u[u.startIndex]), let lo = hex(u[u.startIndex + 1]) else { return nil }
                bytes.append(hi << 4 | lo)
                u = u.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Percent-encodes what a query value may not carry as is (RFC 3986 §3.4, `&`, `=`, `+` and `#` too).
    static func percentEncoded(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let digits = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [digits[Int(b >> 4)], digits[Int(b & 15)]], as: UTF8.self)
            }
        }
        return out
    }

    static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func split(_ target: String) -> (String, String?) {
        guard let q = target.firstIndex(of: "?") else { return (target, nil) }
        return (String(target[..<q]), String(target[target.index(after: q)...]))
    }

    static func queryItems(_ query: String?) -> [(String, String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").map { item in
            guard let eq = item.firstIndex(of: "=") else { return (String(item), "") }
            return (String(item[..<eq]), String(item[item.index(after: eq)...]))
        }
    }
}

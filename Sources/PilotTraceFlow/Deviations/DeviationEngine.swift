import Foundation
import PilotTraceProtocols
import PilotTraceWire

/// A finding: which rule, when, where, and what was seen.
public struct Deviation: Hashable, Sendable {
    public var rule: Rule
    public var time: Timestamp?
    /// The session (its number from ``SessionTracker/finish(at:)``), when the finding belongs to one.
    public var session: Int?
    public var connection: ConnectionID?
    public var message: MessageRef?
    /// What happened, in one sentence.
    public var text: String
    public var evidence: JSONValue
}

/// Checks the documented rules over the message stream (MQTT and HTTP conformance) and over the finished
/// sessions' timelines. Pure: fed the same ``MessageEvent``s as the ``SessionTracker``.
public final class DeviationEngine {
    public struct Configuration: Sendable {
        /// Seconds a reply may take (status → status_reply, CONNACK → update_topo).
        public var replyDeadline: Double = 5
        public var profile: HTTPProfile = .reference
        public init() {}
    }

    /// One MQTT connection's rule state. A class, updated in place per packet (a struct copied out of and back into
    /// the dictionary made every change to its in-flight tables copy them).
    final class MQTTState {
        var connects = 0
        var connectSeen = false
        var connackSeen = false
        var serverSpoke = false
        /// In-flight ids by direction of the request (`[0]`: the client's requests, `[1]`: the server's).
        var inFlight: [[UInt16: (kind: String, time: Timestamp)]] = [[:], [:]]
        var releasing: [Set<UInt16>] = [[], []]
        /// PUBLISH topics already checked for osd on this connection (at most 64 remembered).
        var topicsChecked: Set<String> = []

        func copy() -> MQTTState {
            let s = MQTTState()
            (s.connects, s.connectSeen, s.connackSeen, s.serverSpoke) = (connects, connectSeen, connackSeen, serverSpoke)
            (s.inFlight, s.releasing, s.topicsChecked) = (inFlight, releasing, topicsChecked)
            return s
        }
    }

    public let configuration: Configuration
    var mqtt: [ConnectionID: MQTTState] = [:]
    var requests = HTTPExchangePairing<MessageRef?>()
    var findings: [Deviation] = []
    var gaps: Set<ConnectionID> = []
    /// Serial numbers seen in osd topics, per connection, with the first time.
    var osd: [ConnectionID: [String: Timestamp]] = [:]
    /// TLS connections not decrypted, with why (the ClientHello's server name first, when it gave one).
    var encrypted: [(info: ConnectionInfo, why: String)] = []
    /// TLS connections decrypted with the key log: what crossed them was not clear text on the network.
    var decrypted: Set<ConnectionID> = []
    /// Client addresses by connection, and those whose bridge verified its license (or was reported unverified).
    var connectionClients: [ConnectionID: String] = [:]
    var licenseVerified: Set<String> = []
    var licenseReported: Set<String> = []

    /// What the final list needs of a session retired early: its timeline findings (but the capture-incomplete one,
    /// which counts the capture's TLS connections, known only at the end), its reasons for that one, and the
    /// connections that tie stream findings to it.
    struct Retired {
        var serial: Int
        var start: Timestamp
        var connections: [ConnectionID]
        /// Connections of its events, first seen first.
        var eventConnections: [ConnectionID]
        var findings: [Deviation]
        var partial: [String]
    }
    var retired: [Retired] = []

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// An independent copy, the per-connection states copied too: a live view finishes a snapshot while the engine
    /// goes on. Every stored property is listed here; `SnapshotTests` fails when one is forgotten or an object is shared.
    package func snapshot() -> DeviationEngine {
        let copy = DeviationEngine(configuration: configuration)
        copy.mqtt = mqtt.mapValues { $0.copy() }
        (copy.requests, copy.findings, copy.gaps, copy.osd) = (requests, findings, gaps, osd)
        (copy.encrypted, copy.decrypted) = (encrypted, decrypted)
        (copy.connectionClients, copy.licenseVerified, copy.licenseReported, copy.retired) =
            (connectionClients, licenseVerified, licenseReported, retired)
        return copy
    }

    func report(
        _ rule: Rule, _ time: Timestamp?, _ connection: ConnectionID?, _ ref: MessageRef?, _ text: String,
        _ evidence: [(String, JSONValue?)] = []
    ) {
        findings.append(
            Deviation(
                rule: rule, time: time, session: nil, connection: connection, message: ref, text: text,
                evidence: .members(evidence)))
    }

    // MARK: - Stream rules

    public func consume(_ event: MessageEvent, ref: MessageRef? = nil) {
        switch event {
        case .classified(let info, let c):
            if c.appProtocol == .tls, c.decryption?.decrypted != true {
                encrypted.append((info, c.decryption?.failure?.description ?? "encrypted"))
            } else if c.decryption?.decrypted == true {
                decrypted.insert(info.id)
            }
            if c.appProtocol == .http { connectionClients[info.id] = info.client.address.description }
        case let .mqtt(id, dir, record, ts, _):
            let state = mqttPacket(id, dir, record, ts, ref)
            // The first osd per topic is all the rule needs: a topic checked before is skipped without parsing it.
            if dir == .toServer, case .publish(let p) = record.packet,
                state.topicsChecked.count >= 64 || state.topicsChecked.insert(p.topic).inserted,
                p.topic.hasSuffix("/osd"), case .device(let sn, .osd) = DJITopic(p.topic), osd[id]?[sn] == nil
            {
                osd[id, default: [:]][sn] = ts
            }
        case .http(let id, .request(let r)):
            requests.request(r, on: id, ref)
        case .http(let id, .response(let r)):
            guard !r.head.isInformational else { return }
            let pending = requests.response(r, on: id)
            httpExchange(id, pending?.request, r, ref ?? pending?.attachment)
        case .closed(let summary, _):
            if summary.toServer.gaps + summary.toClient.gaps > 0 { gaps.insert(summary.info.id) }
            requests.close(summary.info.id)
            connectionClients[summary.info.id] = nil  // bridge reports come on the connection while it is open
            if let state = mqtt.removeValue(forKey: summary.info.id) { mqttClosed(summary.info.id, state, summary.lastSeen) }
        default:
            break
        }
    }

    func mqttPacket(_ id: ConnectionID, _ dir: Direction, _ record: MQTTPacketRecord, _ ts: Timestamp, _ ref: MessageRef?) -> MQTTState {
        let s: MQTTState
        if let known = mqtt[id] {
            s = known
        } else {
            s = MQTTState()
            mqtt[id] = s
        }
        let p = record.packet
        if dir == .toClient {
            if s.connectSeen, !s.serverSpoke, p.type != .connAck {
                report(
                    Rules.mqttTrafficBeforeConnack, ts, id, ref, "the server's first packet is \(p.type), not CONNACK", [("type", .text(p.type.description))])
            }
            s.serverSpoke = true
        }
        let other = dir.reversed
        switch p {
        case .connect where dir == .toServer:
            s.connects += 1
            s.connectSeen = true
            if s.connects == 2 { report(Rules.mqttSecondConnect, ts, id, ref, "a second CONNECT on the same connection") }
        case .connAck:
            s.connackSeen = true
        case .publish(let pub) where pub.qos.rawValue > 0:
            if let pid = pub.packetIdentifier {
                if s.inFlight[dir.rawValue][pid] != nil, !pub.dup {
                    report(
                        Rules.mqttPacketIDReused, ts, id, ref, "PUBLISH reuses packet id \(pid) while it is still in flight",
                        [("packet_id", .int(Int(pid))), ("topic", .text(pub.topic))])
                }
                s.inFlight[dir.rawValue][pid] = ("PUBLISH \(pub.topic) qos \(pub.qos.rawValue)", ts)
            }
        case .subscribe(let sub):
            if s.inFlight[dir.rawValue][sub.packetIdentifier] != nil {
                report(Rules.mqttPacketIDReused, ts, id, ref, "SUBSCRIBE reuses packet id \(sub.packetIdentifier) while it is still in flight")
            }
            s.inFlight[dir.rawValue][sub.packetIdentifier] = ("SUBSCRIBE", ts)
        case .unsubscribe(let u):
            s.inFlight[dir.rawValue][u.packetIdentifier] = ("UNSUBSCRIBE", ts)
        case .pubAck(let a), .pubRec(let a):
            if s.inFlight[other.rawValue].removeValue(forKey: a.packetIdentifier) == nil, s.connectSeen {
                report(
                    Rules.mqttAckUnknownID, ts, id, ref, "\(p.type) for packet id \(a.packetIdentifier), which has no PUBLISH in flight",
                    [("packet_id", .int(Int(a.packetIdentifier))), ("type", .text(p.type.description))])
            }
            if case .pubRec = p { s.releasing[other.rawValue].insert(a.packetIdentifier) }
        case .pubComp(let a):
            if s.releasing[other.rawValue].remove(a.packetIdentifier) == nil, s.connectSeen {
                report(
                    Rules.mqttAckUnknownID, ts, id, ref, "PUBCOMP for packet id \(a.packetIdentifier), which has no PUBREL in flight",
                    [("packet_id", .int(Int(a.packetIdentifier)))])
            }
        case .subAck(let a):
            if s.inFlight[other.rawValue].removeValue(forKey: a.packetIdentifier) == nil, s.connectSeen {
                report(Rules.mqttAckUnknownID, ts, id, ref, "SUBACK for packet id \(a.packetIdentifier), which has no SUBSCRIBE in flight")
            }
        case .unsubAck(let a):
            if s.inFlight[other.rawValue].removeValue(forKey: a.packetIdentifier) == nil, s.connectSeen {
                report(Rules.mqttAckUnknownID, ts, id, ref, "UNSUBACK for packet id \(a.packetIdentifier), which has no UNSUBSCRIBE in flight")
            }
        default:
            break
        }
        return s
    }

    func mqttClosed(_ id: ConnectionID, _ s: MQTTState, _ at: Timestamp) {
        for dir in Direction.allCases {
            let waiting = s.inFlight[dir.rawValue].filter { $0.value.kind.hasPrefix("PUBLISH") }
            guard let first = waiting.min(by: { $0.value.time < $1.value.time }) else { continue }
            report(
                Rules.mqttPublishUnacknowledged, first.value.time, id, nil,
                "\(waiting.count) QoS>0 PUBLISH\(waiting.count == 1 ? "" : "es") from the \(dir == .toServer ? "client" : "server") never acknowledged (first: \(first.value.kind), id \(first.key))",
                [("packet_ids", .array(waiting.keys.sorted().map { .int(Int($0))! })), ("direction", .text(dir == .toServer ? "to-server" : "to-client"))])
        }
    }

    /// `^/(manage|map|media|wayline|storage)/api/v[0-9]+/`, matched on the bytes (a regular expression per exchange
    /// cost more than the rest of the HTTP rules).
    static func isAPIPath(_ path: String) -> Bool {
        var p = path.utf8[...]
        guard p.first == UInt8(ascii: "/") else { return false }
        p = p.dropFirst()
        guard let slash = p.firstIndex(of: UInt8(ascii: "/")) else { return false }
        let module = p[..<slash]
        guard ["manage", "map", "media", "wayline", "storage"].contains(where: { $0.utf8.elementsEqual(module) }) else { return false }
        p = p[slash...].dropFirst()
        guard p.starts(with: "api/v".utf8) else { return false }
        p = p.dropFirst(5)
        let digits = p.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard !digits.isEmpty else { return false }
        return p.dropFirst(digits.count).first == UInt8(ascii: "/")
    }

    func httpExchange(_ id: ConnectionID, _ q: HTTPRequest?, _ r: HTTPResponse, _ ref: MessageRef?) {
        guard let q else { return }
        let path = q.head.path
        let time = q.span.firstByteAt
        if BridgeReport.isReport(method: q.method, path: path) {
            bridgeCalls(id, q, ref)
            return
        }
        let isLogin = HTTPProfile.matches(configuration.profile.login, path)
        let isRefresh = HTTPProfile.matches(configuration.profile.tokenRefresh, path)
        let token = HTTPStepRecognizer.token(q)
        let base: [(String, JSONValue?)] = [("method", .text(q.method)), ("path", .text(path)), ("status", .int(r.status))]
        if Self.isAPIPath(path), !isLogin, !isRefresh, token == nil {
            report(Rules.tokenMissing, time, id, ref, "\(q.method) \(path) carries no x-auth-token", base)
        }
        if isRefresh, q.method != "POST" {
            report(Rules.tokenRefreshNotPost, time, id, ref, "token refresh called with \(q.method)", base)
        }
        if let token, !isRefresh, (200..<300).contains(r.status), let exp = Self.jwtExpiry(token), exp < time.seconds {
            report(
                Rules.expiredTokenAccepted, time, id, ref,
                String(format: "%@ %@ answered %d with a token that expired %.0f s earlier", q.method, path, r.status, time.seconds - exp),
                base + [("expired_at", .number(JSONNumber(exp)))])
        }
        let env = HTTPStepRecognizer.envelope(r.body)
        if Self.isAPIPath(path) || isLogin, r.body.json != nil, (200..<300).contains(r.status) {
            if env == nil || env!.code == nil || r.body.json?["message"] == nil || r.body.json?["data"] == nil {
                let keys: [String]
                if case .object(let members)? = r.body.json { keys = members.map(\.0) } else { keys = [] }
                report(
                    Rules.httpEnvelopeMissing, time, id, ref, "\(q.method) \(path): the JSON response lacks the {code, message, data} envelope",
                    base + [("keys", .strings(keys))])
            }
        }
        if isLogin, r.status == 200, let code = env?.code, code != 0 {
            report(Rules.loginErrorWith200, time, id, ref, "login failed with envelope code \(code) under HTTP 200", base + [("code", .int(Int(code)))])
        }
        if !decrypted.contains(id), isLogin || HTTPStepRecognizer.recognize(q, r, profile: configuration.profile).issuedToken != nil,
            q.body.json?["password"] != nil || r.body.json?["data"]?["access_token"] != nil
        {
            report(Rules.cleartextCredentials, time, id, ref, "\(q.method) \(path): credentials and tokens travel in clear text (plain HTTP)", base)
        }
    }

    /// JSBridge calls before the license was verified (per client address: the native app's state).
    func bridgeCalls(_ id: ConnectionID, _ q: HTTPRequest, _ ref: MessageRef?) {
        guard let bridge = BridgeReport(q.body.json) else { return }
        let client = connectionClients[id] ?? ""
        for call in bridge.calls where call.function != nil {
            if BridgeReport.isLicenseCall(call) {
                if call.succeeded, call.envelope?["data"]?.boolValue != false { licenseVerified.insert(client) }
                continue
            }
            guard !licenseVerified.contains(client), !licenseReported.contains(client) else { continue }
            licenseReported.insert(client)
            report(
                Rules.bridgeLicenseNotVerified, q.span.firstByteAt.adding(seconds: -call.secondsBeforeSending), id, ref,
                "\(call.function!) called before platformVerifyLicense succeeded", [("bridge", .text(call.function))])
        }
    }

    /// The `exp` claim (seconds) of a JWT, when the token is one.
    static func jwtExpiry(_ token: String) -> Double? {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let json = try? JSONValue.parse([UInt8](data)) else { return nil }
        return json["exp"]?.doubleValue
    }

    // MARK: - Timeline rules

    /// A session the tracker retired early (``SessionTracker/takeRetired()``): its timeline rules are checked now
    /// and its per-connection state dropped; ``finish(sessions:retiredNumbers:captureEnd:)`` puts its findings in
    /// place. `at` is the capture time it retired at (every rule's horizon has passed by then). Returns the session's
    /// timeline findings known now (`session` nil), for a store that writes as it goes; the final list, with the
    /// stream findings attached, comes from `finish`.
    @discardableResult
    public func retire(_ s: Session, at t: Timestamp) -> [Deviation] {
        var findings = timelineRules(s, captureEnd: t, withCaptureIncomplete: false)
        for i in findings.indices { findings[i].session = nil }
        var eventConnections: [ConnectionID] = []
        var seen = Set<ConnectionID>()
        for e in s.events { if let c = e.connection, seen.insert(c).inserted { eventConnections.append(c) } }
        retired.append(
            Retired(
                serial: s.serial, start: s.start, connections: s.connections, eventConnections: eventConnections,
                findings: findings, partial: partialReasons(s, encrypted: false)))
        for c in s.connections {
            osd[c] = nil
            gaps.remove(c)
        }
        return findings
    }

    /// Checks the finished sessions and attaches every finding to its session; returns all, in time order.
    public func finish(sessions: [Session], captureEnd: Timestamp) -> [Deviation] {
        finish(sessions: sessions, retiredNumbers: [:], captureEnd: captureEnd)
    }

    /// The same, with the sessions retired early (``retire(_:at:)``) numbered as ``SessionTracker/retiredNumbers``
    /// says: the findings are those, and in the order, that finishing every session here would give. It hands the
    /// findings over (the engine keeps none afterwards): finish a copy to look at a capture still going on.
    public func finish(sessions: [Session], retiredNumbers: [Int: Int], captureEnd: Timestamp) -> [Deviation] {
        // Every session in final order: the live ones as given, the retired ones by their final number.
        // (Positions, not copies: an entry holding a session was 350 bytes, times tens of thousands.)
        enum Entry { case live(Int), retired(Int) }
        var entries = sessions.indices.map { (number: sessions[$0].number, entry: Entry.live($0)) }
        for i in retired.indices { if let n = retiredNumbers[retired[i].serial] { entries.append((n, .retired(i))) } }
        entries.sort { $0.number < $1.number }
        var sessionOf: [ConnectionID: Int] = [:]
        for (number, entry) in entries {
            switch entry {
            case .live(let i):
                for c in sessions[i].connections { sessionOf[c] = number }
                for e in sessions[i].events { if let c = e.connection, sessionOf[c] == nil { sessionOf[c] = number } }
            case .retired(let i):
                for c in retired[i].connections { sessionOf[c] = number }
                for c in retired[i].eventConnections where sessionOf[c] == nil { sessionOf[c] = number }
            }
        }
        // Built in one array, compacted and ordered with as few copies as possible: with tens of thousands of sessions
        // this is the analysis's peak of memory (the findings, then their copies, were all alive at once).
        var out: [Deviation] = []
        out.reserveCapacity(findings.count + retired.reduce(0) { $0 + $1.findings.count + 1 } + sessions.count)
        for var f in findings {
            f.session = f.connection.flatMap { sessionOf[$0] }
            out.append(f)
        }
        findings.removeAll()
        for (number, entry) in entries {
            switch entry {
            case .live(let i): out += timelineRules(sessions[i], captureEnd: captureEnd)
            case .retired(let i):
                let r = retired[i]
                for var f in r.findings {
                    f.session = number
                    out.append(f)
                }
                if let incomplete = captureIncomplete(r.partial, session: number, start: r.start) { out.append(incomplete) }
            }
        }
        entries.removeAll()
        retired.removeAll()
        // One clear-text finding per session (or per connection outside sessions) is enough: the first one, kept in
        // place (a stable compaction).
        var seenCleartext = Set<String>()
        var kept = 0
        for i in out.indices {
            let f = out[i]
            if f.rule == Rules.cleartextCredentials,
                !seenCleartext.insert(f.session.map { "s\($0)" } ?? "c\(f.connection?.rawValue ?? 0)").inserted
            {
                continue
            }
            if kept != i { out.swapAt(kept, i) }
            kept += 1
        }
        out.removeLast(out.count - kept)
        Self.mergeTakeovers(&out)
        // Time order; findings at the same time keep their order.
        let order = out.indices.sorted { (out[$0].time ?? .zero, $0) < (out[$1].time ?? .zero, $1) }
        return order.map { out[$0] }
    }

    static func takeoverText(_ clientID: String, devices: [String], others: [String], count: Int) -> String {
        "client id \(clientID) is used by \(devices.joined(separator: ", ")) and by \(others.count == 1 ? "a client" : "clients") at \(others.joined(separator: ", ")): the broker closed the older connection \(count) time\(count == 1 ? "" : "s") to let the other in"
    }

    /// One client-id takeover finding per client id: the first session's, with every session's devices and count.
    static func mergeTakeovers(_ out: inout [Deviation]) {
        var first: [String: Int] = [:]
        var drop = IndexSet()
        for i in out.indices where out[i].rule == Rules.mqttClientIDTakeover {
            guard let id = out[i].evidence["client_id"]?.stringValue else { continue }
            guard let k = first[id] else {
                first[id] = i
                continue
            }
            func list(_ f: Deviation, _ key: String) -> [String] {
                guard case .array(let a)? = f.evidence[key] else { return [] }
                return a.compactMap(\.stringValue)
            }
            let devices = list(out[k], "devices") + list(out[i], "devices").filter { !list(out[k], "devices").contains($0) }
            let others = Array(Set(list(out[k], "by_clients") + list(out[i], "by_clients"))).sorted()
            let count = Int(out[k].evidence["takeovers"]?.int64Value ?? 0) + Int(out[i].evidence["takeovers"]?.int64Value ?? 0)
            out[k].text = takeoverText(id, devices: devices, others: others, count: count)
            out[k].evidence = .members([
                ("client_id", .text(id)), ("devices", .strings(devices)), ("by_clients", .strings(others)),
                ("takeovers", .int(count)),
            ])
            drop.insert(i)
        }
        for i in drop.reversed() { out.remove(at: i) }
    }

    /// RFC 9562 §4 text form: 8-4-4-4-12 hexadecimal digits.
    static func isUUID(_ s: String) -> Bool {
        let groups = s.split(separator: "-", omittingEmptySubsequences: false)
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    /// Two broker addresses name the same broker (case of scheme and host, a trailing slash aside).
    static func sameBroker(_ a: String, _ b: String) -> Bool {
        func norm(_ s: String) -> String {
            var t = s.trimmingCharacters(in: .whitespaces).lowercased()
            while t.hasSuffix("/") { t.removeLast() }
            return t
        }
        return norm(a) == norm(b)
    }

    func timelineRules(_ s: Session, captureEnd: Timestamp, withCaptureIncomplete: Bool = true) -> [Deviation] {
        var out: [Deviation] = []
        func add(_ rule: Rule, _ e: TimelineEvent?, _ text: String, _ evidence: [(String, JSONValue?)] = []) {
            out.append(
                Deviation(
                    rule: rule, time: e?.time, session: s.number, connection: e?.connection, message: e?.message,
                    text: text, evidence: .members(evidence)))
        }
        let deadline = configuration.replyDeadline
        let events = s.events
        var lastIssuedUser: String?
        var lastIssuedAddress: String?
        var unansweredTopo: TimelineEvent?
        var takeovers: [TimelineEvent] = []
        for (i, e) in events.enumerated() {
            switch e.step {
            case .mqttConnack where e.ok:
                let later = events[(i + 1)...].first { $0.step == .updateTopo && $0.connection == e.connection }
                let closed = events[(i + 1)...].first { ($0.step == .linkLost || $0.step == .mqttDisconnect) && $0.connection == e.connection }
                let horizon = min(closed?.time ?? captureEnd, captureEnd)
                if (later.map { $0.time.seconds(since: e.time) > deadline } ?? true) && horizon.seconds(since: e.time) > deadline {
                    add(
                        Rules.statusNotSent, e,
                        later == nil
                            ? "no update_topo followed the accepted CONNECT"
                            : String(format: "update_topo came %.1f s after the CONNACK", later!.time.seconds(since: e.time)))
                }
            case .mqttConnack:
                var text = "CONNACK \(e.detail["return_code"]?.int64Value.map(String.init) ?? "?") (\(e.detail["reason"]?.stringValue ?? "refused"))"
                if let attempts = e.detail["attempts"]?.int64Value, attempts > 1 {
                    text += String(
                        format: ", refused %d times in %.1f s (the client retried with the same client id)", attempts,
                        e.detail["over_seconds"]?.doubleValue ?? 0)
                }
                add(Rules.mqttConnectRefused, e, text, [("return_code", e.detail["return_code"]), ("attempts", e.detail["attempts"])])
            case .mqttConnect:
                if e.detail["anonymous"]?.boolValue == true { add(Rules.mqttAnonymousLogin, e, "CONNECT without a username") }
                if e.detail["anonymous"]?.boolValue == true {
                    // No credentials at all: mqtt-anonymous-login says it.
                } else if let source = e.detail["issued_by"]?.stringValue {
                    // The tracker compared the CONNECT with the credentials the cloud issued (the password by digest).
                    let differs = [("username", e.detail["username_check"]), ("password", e.detail["password_check"])]
                        .filter { $0.1?.stringValue == "differs" || $0.1?.stringValue == "not-sent" }.map(\.0)
                    if !differs.isEmpty {
                        let what = differs.count == 2 ? "username and password differ" : "\(differs[0]) differs"
                        let used = e.detail["username"]?.stringValue.map { " (CONNECT as \($0))" } ?? ""
                        add(
                            Rules.mqttCredentialsMismatch, e, "the CONNECT's \(what) from the one\(differs.count == 2 ? "s" : "") issued by \(source)\(used)",
                            [
                                ("differs", .strings(differs)), ("issued_by", .text(source)), ("issued_username", e.detail["issued_username"]),
                                ("used_username", e.detail["username"]),
                            ])
                    }
                } else if let issued = lastIssuedUser, let used = e.detail["username"]?.stringValue, used != issued {
                    add(
                        Rules.mqttCredentialsMismatch, e, "CONNECT as \(used), but the cloud handed out \(issued)",
                        [("differs", .strings(["username"])), ("issued_username", .text(issued)), ("used_username", .text(used))])
                }
            case .mqttCredentials:
                lastIssuedUser = e.detail["mqtt_username"]?.stringValue ?? lastIssuedUser
                lastIssuedAddress = e.detail["mqtt_addr"]?.stringValue ?? lastIssuedAddress
            case .moduleLoad where e.detail["module"]?.stringValue == "thing":
                if let host = e.detail["host"]?.stringValue, let issued = lastIssuedAddress, !Self.sameBroker(host, issued) {
                    add(
                        Rules.thingHostMismatch, e, "thing loaded with host \(host), but the cloud issued \(issued)",
                        [("host", .text(host)), ("mqtt_addr", .text(issued))])
                }
            case .workspaceSet:
                if let id = e.detail["workspace_id"]?.stringValue, !Self.isUUID(id) {
                    add(Rules.workspaceIDNotUUID, e, "platformSetWorkspaceId(\"\(id)\"): not a UUID", [("workspace_id", .text(id))])
                }
            case .updateTopo:
                if let topic = e.detail["topic"]?.stringValue, topic.hasPrefix("thing/") {
                    add(Rules.statusTopicWrong, e, "update_topo published on \(topic)", [("topic", .text(topic))])
                }
                if !e.ok {
                    var why = e.detail["problem"]?.stringValue ?? "missing fields"
                    if case .array(let missing)? = e.detail["missing"], !missing.isEmpty {
                        why = "missing " + missing.compactMap(\.stringValue).joined(separator: ", ")
                    }
                    add(Rules.updateTopoInvalid, e, "update_topo: \(why)", [("missing", e.detail["missing"]), ("problem", e.detail["problem"])])
                }
                if let previous = unansweredTopo {
                    add(Rules.statusRetransmitted, e, String(format: "status re-sent %.1f s after an unanswered one", e.time.seconds(since: previous.time)))
                }
                unansweredTopo = e
            case .statusReply:
                if e.ok {
                    unansweredTopo = nil
                } else {
                    let matched = e.detail["matched"]?.boolValue ?? false
                    add(
                        Rules.statusReplyMismatch, e,
                        matched
                            ? "status_reply result \(e.detail["result"]?.int64Value.map(String.init) ?? "missing")"
                            : "status_reply tid/bid match no pending status",
                        [("tid", e.detail["tid"]), ("bid", e.detail["bid"]), ("result", e.detail["result"])])
                }
            case .linkLost where e.detail["reason"]?.stringValue == "keep-alive":
                add(Rules.mqttKeepAliveExceeded, e, "no packet from the device for 1.5 × its keep-alive")
            case .linkLost where e.detail["reason"]?.stringValue == "client-id-takeover":
                takeovers.append(e)
            default:
                break
            }
        }
        if let first = takeovers.first, let clientID = first.detail["client_id"]?.stringValue {
            // One per session here; ``finish`` merges them into one per client id.
            let others = Array(Set(takeovers.compactMap { $0.detail["by_client"]?.stringValue })).sorted()
            let device = s.gatewaySN ?? s.client ?? "?"
            add(
                Rules.mqttClientIDTakeover, first, Self.takeoverText(clientID, devices: [device], others: others, count: takeovers.count),
                [("client_id", .text(clientID)), ("devices", .strings([device])), ("by_clients", .strings(others)), ("takeovers", .int(takeovers.count))])
        }
        for x in s.exchanges where x.kind == .status {
            let late = x.latency.map { $0 > deadline } ?? false
            let observable = captureEnd.seconds(since: x.requestTime) > deadline
            if (!x.answered && observable) || late {
                let topo = events.first { $0.step == .updateTopo && $0.time == x.requestTime }
                out.append(
                    Deviation(
                        rule: Rules.statusReplyMissing, time: x.requestTime, session: s.number, connection: x.requestConnection,
                        message: topo?.message,
                        text: late
                            ? String(format: "status_reply came after %.1f s (deadline %.0f s)", x.latency!, deadline)
                            : "no status_reply within \(Int(deadline)) s",
                        evidence: .members([("tid", .text(x.tid)), ("bid", .text(x.bid)), ("gateway_sn", .text(x.gateway))])))
            }
        }
        for x in s.exchanges where x.kind == .services || x.kind == .events {
            let limit = x.kind == .services ? 3.0 : deadline
            let late = x.latency.map { $0 > limit } ?? false
            guard (!x.answered && captureEnd.seconds(since: x.requestTime) > limit) || late else { continue }
            let rule = x.kind == .services ? Rules.servicesReplyMissing : Rules.eventsReplyMissing
            out.append(
                Deviation(
                    rule: rule, time: x.requestTime, session: s.number, connection: x.requestConnection, message: nil,
                    text: "\(x.kind.rawValue) \(x.method ?? "")" + (late ? String(format: " answered after %.1f s", x.latency!) : " never answered"),
                    evidence: .members([("tid", .text(x.tid)), ("bid", .text(x.bid)), ("method", .text(x.method))])))
        }
        // The documented gateway/aircraft pairs (§5).
        let pairs: [String: [String]] = [
            "2-56-0": ["0-60-0"], "2-119-0": ["0-89-0", "0-60-0", "0-67-0", "0-67-1"],
            "2-144-0": ["0-77-0", "0-77-1", "0-77-2", "0-77-3"], "2-174-0": ["0-99-0", "0-99-1", "0-103-0"],
        ]
        var reportedModels = Set<String>()
        for e in events where e.step == .updateTopo {
            guard let gateway = e.detail["gateway_model"]?.stringValue, !gateway.hasPrefix("?") else { continue }
            var problem: String?
            if pairs[gateway] == nil {
                problem = "gateway \(gateway) is not a remote controller Pilot 2 runs on"
            } else if case .array(let subs)? = e.detail["sub_devices"] {
                let aircraft = subs.compactMap { $0["model"]?.stringValue }.filter { !$0.hasPrefix("?") }
                if let odd = aircraft.first(where: { !(pairs[gateway] ?? []).contains($0) }) {
                    problem = "aircraft \(odd) is not documented with gateway \(gateway)"
                }
            }
            if let problem, reportedModels.insert(problem).inserted {
                out.append(
                    Deviation(
                        rule: Rules.gatewayModelUnexpected, time: e.time, session: s.number, connection: e.connection,
                        message: e.message, text: problem, evidence: .members([("gateway_model", .text(gateway))])))
            }
            if let ms = e.detail["timestamp"]?.doubleValue {
                let digits = String(Int64(ms)).count
                if digits != 13 || abs(ms / 1000 - e.time.seconds) > 300 {
                    out.append(
                        Deviation(
                            rule: Rules.timestampSuspicious, time: e.time, session: s.number, connection: e.connection,
                            message: e.message,
                            text: digits != 13
                                ? "update_topo timestamp \(Int64(ms)) has \(digits) digits, not 13 (milliseconds)"
                                : String(format: "update_topo timestamp is %.0f s away from the capture time", ms / 1000 - e.time.seconds),
                            evidence: .members([("timestamp", .number(JSONNumber(ms)))])))
                }
            }
        }
        let known = Set([s.gatewaySN].compactMap { $0 } + s.aircraft)
        // A session picked up mid-stream: osd before its first update_topo may be for an aircraft listed before the
        // capture started.
        let topologyKnownFrom = events.first?.step == .alreadyConnected ? events.first { $0.step == .updateTopo }?.time : nil
        if !known.isEmpty {
            for c in s.connections {
                for (sn, t) in (osd[c] ?? [:]).sorted(by: { $0.value < $1.value }) where !known.contains(sn) {
                    if events.first?.step == .alreadyConnected, topologyKnownFrom.map({ t < $0 }) ?? true { continue }
                    out.append(
                        Deviation(
                            rule: Rules.osdUnknownDevice, time: t, session: s.number, connection: c, message: nil,
                            text: "osd for \(sn), which is neither the gateway nor a listed aircraft", evidence: .members([("sn", .text(sn))])))
                }
            }
        }
        if events.contains(where: { $0.step == .mqttConnect }), let c = events.first(where: { $0.step == .mqttConnect }),
            c.detail["password_present"]?.boolValue == true, c.connection.map(decrypted.contains) != true
        {
            add(Rules.cleartextCredentials, c, "the MQTT password travels in clear text (plain TCP)")
        }
        if withCaptureIncomplete, let incomplete = captureIncomplete(partialReasons(s, encrypted: false), session: s.number, start: s.start) {
            out.append(incomplete)
        }
        return out
    }

    /// Why a session's picture may be partial, but for the capture's TLS connections (added by ``captureIncomplete``).
    func partialReasons(_ s: Session, encrypted: Bool) -> [String] {
        var partial: [String] = []
        if let first = s.events.first, ![.h5Page, .licenseVerified, .login, .loginFailed, .tokenRefresh, .tokenRejected, .mqttConnect].contains(first.step) {
            partial.append("the capture starts after the session began (first step: \(first.step.rawValue))")
        }
        let gapped = s.connections.filter(gaps.contains)
        if !gapped.isEmpty {
            partial.append("TCP gaps on connection\(gapped.count == 1 ? "" : "s") \(gapped.map { "#\($0.rawValue)" }.joined(separator: ", "))")
        }
        return partial
    }

    /// The capture-incomplete finding from a session's reasons and the capture's TLS connections (all of them: at the end).
    func captureIncomplete(_ reasons: [String], session: Int, start: Timestamp) -> Deviation? {
        var partial = reasons
        if !encrypted.isEmpty {
            // Name the first few connections and why each stayed encrypted.
            let named = encrypted.prefix(5).map { "#\($0.info.id.rawValue) \($0.why)" }.joined(separator: ", ")
            let more = encrypted.count > 5 ? ", …" : ""
            partial.append("\(encrypted.count) encrypted (TLS) connection\(encrypted.count == 1 ? "" : "s") in the capture, not decrypted: \(named)\(more)")
        }
        guard !partial.isEmpty else { return nil }
        return Deviation(
            rule: Rules.captureIncomplete, time: start, session: session, connection: nil, message: nil,
            text: partial.joined(separator: "; "), evidence: .members([("reasons", .strings(partial))]))
    }
}

import PilotTraceWire

/// A decoded message, or a fact about a connection, in capture order.
///
/// Directions are those of the connection as `.classified` gives it: when the content showed the TCP layer's
/// client/server guess the wrong way round, the roles there (and in every later event) are corrected.
public enum MessageEvent: Sendable {
    /// The connection's protocol was decided.
    case classified(ConnectionInfo, Classification)
    /// An HTTP request, response, upgrade, WebSocket message or decoding problem.
    case http(ConnectionID, HTTPConnectionEvent)
    /// An MQTT packet, with the capture time of the bytes that completed it (the record says which frames held its
    /// first and last bytes). `overWebSocket` when it came in WebSocket binary messages.
    case mqtt(ConnectionID, Direction, MQTTPacketRecord, Timestamp, overWebSocket: Bool)
    /// A malformed MQTT packet: that direction is desynchronised from here on.
    case mqttError(ConnectionID, Direction, MQTTError, Timestamp, overWebSocket: Bool)
    /// The connection was released, with what its classification ended as.
    case closed(ConnectionSummary, Classification)
}

/// Stream events in, decoded messages out: classifies each connection by content, then runs the HTTP (and
/// WebSocket) or MQTT decoder on its streams. Pure: no I/O, time only from the events.
public struct StreamAnalyzer: ~Copyable {
    public struct Configuration: Sendable {
        public var http = HTTPDecoderConfiguration()
        public var mqtt = MQTTStreamDecoder.Configuration()
        public init() {}
    }

    final class Connection {
        let info: ConnectionInfo
        var sample: ProtocolDetector.Sample?
        var queued: [StreamEvent] = []
        var classification: Classification?
        // Each decoder sits in a box of its own: inline, the three took 3 KB in every connection whichever one it used
        // (an HTTP decoder is 2 KB): 20 MB of the peak of a capture with 4,000 devices online at once.
        var http: Boxed<HTTPConnectionDecoder>?
        var mqtt: Boxed<MQTTConnectionDecoder>?
        /// MQTT carried in WebSocket binary messages after an HTTP upgrade.
        var webSocketMQTT: Boxed<MQTTConnectionDecoder>?
        /// Whether a direction has delivered bytes yet: a gap before any byte only means the capture starts later.
        var sawData: [Bool] = [false, false]
        /// The content showed the TCP layer's client/server guess the wrong way round: decoders see swapped roles.
        var reversed = false
        /// Capture time of the last stream event while the connection waits for its classification.
        var lastSampleTime: Timestamp?
        /// A TLS connection being decrypted: its records go through this, and the plaintext is classified and decoded
        /// as a clear-text connection's bytes would be.
        var tls: Boxed<TLSDecryptingStream>?
        /// The TLS classification from the ClientHello, while the plaintext's protocol is not known yet.
        var outerTLS: Classification?

        /// The connection as the decoders see it (roles corrected by content).
        var decodedInfo: ConnectionInfo {
            guard reversed else { return info }
            var i = info
            (i.client, i.server) = (info.server, info.client)
            return i
        }

        init(info: ConnectionInfo) {
            self.info = info
            sample = ProtocolDetector.Sample(info: info)
        }
    }

    public let configuration: Configuration
    var connections: [ConnectionID: Connection] = [:]
    /// How many open connections each endpoint is part of: an endpoint serving several at once is a server.
    var endpointUse: [Endpoint: Int] = [:]
    /// Endpoints shown to be servers: of a captured handshake, of a content-decided connection, or handed out as the
    /// broker in an HTTP response's `mqtt_addr`. Bounded (endpoints past the limit are not remembered).
    var knownServers: Set<Endpoint> = []
    static let knownServerLimit = 65_536
    /// Capture seconds a mid-stream MQTT connection with nothing to tell its roles waits for evidence (another
    /// connection to the same broker, a PINGREQ) before the port guess stands.
    public static let roleEvidenceWait = 5.0
    /// Connections per protocol, as classified.
    public private(set) var classified: [AppProtocol: Int] = [:]
    /// The TLS secrets to decrypt with (empty: TLS connections stay encrypted, saying there is no key for them).
    public var tlsKeys = TLSKeyLog()
    /// Asked when ``tlsKeys`` has no secrets for a connection: a newer key log (a file still growing during a live
    /// capture), or nil when there is nothing new.
    public var tlsKeysOnMiss: (() -> TLSKeyLog?)?
    var plaintext: [TLSDecryptingStream.Plaintext] = []

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Consumes stream events and appends the messages they complete.
    public mutating func consume(_ events: [StreamEvent], into out: inout [MessageEvent]) {
        for event in events { consume(event, into: &out) }
    }

    public mutating func consume(_ event: StreamEvent, into out: inout [MessageEvent]) {
        switch event {
        case .opened(let info):
            connections[info.id] = Connection(info: info)
            endpointUse[info.client, default: 0] += 1
            endpointUse[info.server, default: 0] += 1
            if !Self.weakRoles(info) { learnServer(info.server) }
        case .data(let id, _, _, _, _), .gap(let id, _, _, _), .end(let id, _, _):
            guard let c = connections[id] else { return }
            if c.tls != nil { decrypt(c, event, into: &out) } else { route(c, event, into: &out) }
        case .conflict:
            break
        case .closed(let summary):
            guard let c = connections.removeValue(forKey: summary.info.id) else { return }
            for e in [summary.info.client, summary.info.server] {
                let n = endpointUse[e, default: 1] - 1
                endpointUse[e] = n > 0 ? n : nil
            }
            if c.tls != nil, c.classification == nil { finishTLS(c, into: &out) }
            if c.sample != nil { decideIfPossible(c, force: true, into: &out) }
            if let http = c.http {
                http.value.finish(at: summary.lastSeen)
                emit(c, http.value.drainEvents(), into: &out)
            }
            var decoded = summary
            if c.reversed {
                // The summary as the decoders saw the connection: roles and per-direction counters swapped.
                decoded.info = c.decodedInfo
                (decoded.toServer, decoded.toClient) = (summary.toClient, summary.toServer)
                (decoded.synSeen, decoded.synAckSeen) = (summary.synAckSeen, summary.synSeen)
            }
            out.append(.closed(decoded, c.classification ?? Classification(.unknown, .none, "no payload")))
        }
    }

    /// A connection's stream event (clear text, or the plaintext of decrypted TLS): into the sample while the protocol
    /// is undecided, into the decoders after.
    mutating func route(_ c: Connection, _ event: StreamEvent, into out: inout [MessageEvent]) {
        switch event {
        case .data(_, let dir, let bytes, let ts, _):
            if var s = c.sample {
                c.lastSampleTime = ts
                c.queued.append(event)
                appendSample(&s, dir, bytes: bytes)
                c.sample = s
                decideIfPossible(c, force: false, into: &out)
            } else {
                deliver(c, event, into: &out)
            }
        case .gap(_, let dir, _, _):
            if var s = c.sample {
                c.queued.append(event)
                markBroken(&s, dir)
                c.sample = s
                decideIfPossible(c, force: false, into: &out)
            } else {
                deliver(c, event, into: &out)
            }
        case .end(_, let dir, _):
            if var s = c.sample {
                c.queued.append(event)
                if dir == .toServer { s.clientDone = true } else { s.serverDone = true }
                c.sample = s
                decideIfPossible(c, force: false, into: &out)
            } else {
                deliver(c, event, into: &out)
            }
        default:
            break
        }
    }

    // MARK: - TLS

    /// A TLS connection's stream event: records through the decryption, their plaintext on to ``route(_:_:into:)``
    /// with the time and frame of the bytes that completed each record.
    mutating func decrypt(_ c: Connection, _ event: StreamEvent, into out: inout [MessageEvent]) {
        switch event {
        case .data(let id, let dir, let bytes, let ts, let frame):
            let keys = tlsKeys
            var newer: TLSKeyLog?
            c.tls!.value.feed(
                dir, bytes, at: ts, frame: frame,
                keys: { random in
                    let known = keys.secrets(for: random)
                    if known?.decryptsApplicationData == true { return known }
                    newer = tlsKeysOnMiss?()
                    return newer?.secrets(for: random) ?? known
                }, into: &plaintext)
            if let newer { tlsKeys = newer }
            let records = plaintext
            plaintext.removeAll(keepingCapacity: true)
            for p in records { route(c, .data(id, p.direction, p.bytes, p.time, frame: p.frame), into: &out) }
        case .gap(_, let dir, _, _):
            c.tls!.value.gap(dir)
            if !c.tls!.value.hasFailed { route(c, event, into: &out) }
        case .end:
            // Before any plaintext, an end says nothing about the protocol inside: the close decides (finishTLS).
            if c.sample.map({ $0.client.isEmpty && $0.server.isEmpty }) != true { route(c, event, into: &out) }
        default:
            break
        }
        if c.classification == nil, c.tls!.value.hasFailed { classifyTLS(c, into: &out) }
    }

    /// The connection closed before its plaintext was classified: why nothing was decrypted, or the plaintext as it is.
    mutating func finishTLS(_ c: Connection, into out: inout [MessageEvent]) {
        if c.tls!.value.finish() != nil || c.sample?.client.isEmpty != false && c.sample?.server.isEmpty != false {
            classifyTLS(c, into: &out)
        }
    }

    /// Classifies a TLS connection whose plaintext says nothing: not decrypted (and why), or decrypted with no data.
    mutating func classifyTLS(_ c: Connection, into out: inout [MessageEvent]) {
        guard var decision = c.outerTLS else { return }
        let d = TLSDecryption(c.tls!.value)
        decision.decryption = d
        let hello = ProtocolDetector.tlsDescription(decision.tls)
        if let failure = d.failure {
            decision.note = "\(hello): encrypted (\(failure)); give its key log (--tls-keylog) or record it with `pilottrace proxy`"
        } else {
            decision.note = "\(hello): decrypted (\(d.summary)), no application data"
        }
        c.sample = nil
        c.queued = []
        c.outerTLS = nil
        c.classification = decision
        classified[decision.appProtocol, default: 0] += 1
        out.append(.classified(c.decodedInfo, decision))
    }

    func appendSample(_ s: inout ProtocolDetector.Sample, _ dir: Direction, bytes: [UInt8]) {
        let room: Int
        if dir == .toServer {
            guard !s.clientDone else { return }
            room = ProtocolDetector.maxInspectedBytes - s.client.count
            s.client += bytes.prefix(max(0, room))
        } else {
            guard !s.serverDone else { return }
            room = ProtocolDetector.maxInspectedBytes - s.server.count
            s.server += bytes.prefix(max(0, room))
        }
    }

    /// A gap: bytes before it are all the sample gets; with nothing before it, the stream starts mid-way.
    func markBroken(_ s: inout ProtocolDetector.Sample, _ dir: Direction) {
        if dir == .toServer {
            if s.client.isEmpty { s.clientFromStart = false } else { s.clientDone = true }
        } else {
            if s.server.isEmpty { s.serverFromStart = false } else { s.serverDone = true }
        }
    }

    mutating func decideIfPossible(_ c: Connection, force: Bool, into out: inout [MessageEvent]) {
        guard var s = c.sample else { return }
        let full = s.client.count >= ProtocolDetector.maxInspectedBytes || s.server.count >= ProtocolDetector.maxInspectedBytes
        if force || full {
            s.clientDone = true
            s.serverDone = true
        }
        guard var decision = ProtocolDetector.classify(s) else { return }
        if decision.appProtocol == .tls, decision.evidence == .firstBytes, c.tls == nil {
            // Decrypt with the key log: the plaintext is sampled and classified afresh, as a clear-text stream from its start.
            c.tls = Boxed(TLSDecryptingStream())
            c.outerTLS = decision
            c.sample = ProtocolDetector.Sample(info: c.info)
            c.sample!.clientFromStart = true
            c.sample!.serverFromStart = true
            let queued = c.queued
            c.queued = []
            for e in queued { decrypt(c, e, into: &out) }
            return
        }
        if let outer = c.outerTLS {
            let d = TLSDecryption(c.tls!.value)
            decision.tls = outer.tls
            decision.decryption = d
            decision.note = "\(outer.tls?.serverName.map { "TLS for \($0)" } ?? "TLS") decrypted (\(d.summary)): \(decision.note)"
            c.outerTLS = nil
        }
        if decision.evidence == .midstream, !decision.rolesFromContent, Self.weakRoles(c.info) {
            if let reversed = endpointVerdict(c.info) {
                decision.rolesReversed = reversed
                let server = reversed ? c.info.client : c.info.server
                decision.note +=
                    "; roles from the endpoints: \(server) is the server (it serves other connections, or was the server of a captured handshake or an mqtt_addr)"
            } else if !force && !full, decision.appProtocol == .mqtt, !Self.servicePortDecides(c.info), let first = c.sample.map({ $0.info.firstSeen }),
                (c.lastSampleTime ?? first).seconds(since: first) < Self.roleEvidenceWait
            {
                return  // wait a little for another connection to the same broker
            }
        }
        c.sample = nil
        c.classification = decision
        c.reversed = decision.rolesReversed
        classified[decision.appProtocol, default: 0] += 1
        if decision.isFromContent { learnServer(c.decodedInfo.server) }
        out.append(.classified(c.decodedInfo, decision))
        switch decision.appProtocol {
        case .http: c.http = Boxed(HTTPConnectionDecoder(configuration: configuration.http))
        case .mqtt:
            var mqtt = configuration.mqtt
            if let v = decision.mqttVersion { mqtt.defaultVersion = v }
            c.mqtt = Boxed(MQTTConnectionDecoder(configuration: mqtt))
        case .tls, .unknown: break
        }
        let queued = c.queued
        c.queued = []
        if decision.evidence == .midstream, c.http != nil {
            // The capture starts inside the streams: the HTTP decoder resynchronises at the next message line.
            for dir in Direction.allCases { c.http!.value.startMidstream(dir) }
        }
        for e in queued { deliver(c, e, into: &out) }
    }

    /// Roles the TCP layer only guessed (no handshake, no known server): the content or the endpoints may say better.
    static func weakRoles(_ info: ConnectionInfo) -> Bool {
        info.roleEvidence == .portHeuristic || info.roleEvidence == .firstPacket
    }

    /// The guess rests on a well-known service port on one side only (1883, 8883, 80, …): good enough not to wait for
    /// more evidence (the endpoints still overrule it when they say otherwise).
    static func servicePortDecides(_ info: ConnectionInfo) -> Bool {
        info.roleEvidence == .portHeuristic && TCPReassembler.isServicePort(info.server.port) != TCPReassembler.isServicePort(info.client.port)
    }

    /// Whether the endpoints say the roles are the other way round (true), as guessed (false), or nothing (nil): a
    /// known server, else an endpoint shared by other open connections while its peer is not.
    func endpointVerdict(_ info: ConnectionInfo) -> Bool? {
        let clientKnown = knownServers.contains(info.client), serverKnown = knownServers.contains(info.server)
        if clientKnown != serverKnown { return clientKnown }
        let clientShared = endpointUse[info.client, default: 0] > 1, serverShared = endpointUse[info.server, default: 0] > 1
        if clientShared != serverShared { return clientShared }
        return nil
    }

    mutating func learnServer(_ e: Endpoint) {
        if knownServers.count < Self.knownServerLimit { knownServers.insert(e) }
    }

    /// A broker address handed out over HTTP (`"mqtt_addr": "tcp://10.0.0.5:1883"`, protocol reference §2.2): a
    /// server, when it names an IP address and a port.
    static func handedOutBroker(_ r: HTTPResponse) -> Endpoint? {
        guard let addr = r.body.json?["data"]?["mqtt_addr"]?.stringValue else { return nil }
        var rest = Substring(addr)
        if let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") { rest = rest[rest.index(colon, offsetBy: 3)...] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]) else { return nil }
        var host = rest[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return IPAddress(String(host)).map { Endpoint(address: $0, port: port) }
    }

    mutating func deliver(_ c: Connection, _ event: StreamEvent, into out: inout [MessageEvent]) {
        var event = event
        if c.reversed {
            switch event {
            case let .data(id, dir, bytes, ts, frame): event = .data(id, dir.reversed, bytes, ts, frame: frame)
            case let .gap(id, dir, n, ts): event = .gap(id, dir.reversed, length: n, ts)
            case let .end(id, dir, ts): event = .end(id, dir.reversed, ts)
            default: break
            }
        }
        if case .gap(let id, let dir, _, let ts) = event, !c.sawData[dir.rawValue] {
            // Nothing was decoded in this direction yet: its stream simply starts after the gap, mid-way.
            c.http?.value.startMidstream(dir)
            event = .gap(id, dir, length: 0, ts)
        }
        if case .data(_, let dir, _, _, _) = event { c.sawData[dir.rawValue] = true }
        // The decoders are updated in place: a copy taken out of the connection and stored back would share their
        // buffers for the duration, and every append would copy them.
        if c.http != nil {
            switch event {
            case .data(_, let dir, let bytes, let ts, let frame): c.http!.value.feed(dir, bytes, at: ts, frame: frame)
            case .gap(_, let dir, let n, let ts): c.http!.value.gap(dir, length: n, at: ts)
            case .end(_, let dir, let ts): c.http!.value.end(dir, at: ts)
            default: break
            }
            let events = c.http!.value.drainEvents()
            emit(c, events, into: &out)
            // Both directions ended: the decoder is let go now rather than at the release, which keeps a closed
            // connection 30 s for late segments (with many short connections their decoders added up).
            // (A connection upgraded to WebSocket keeps its decoder: its frame decoder is never let go.)
            if case .end = event, c.http!.value.isFinished { c.http = nil }
        } else if c.mqtt != nil {
            switch event {
            case .data(_, let dir, let bytes, let ts, let frame):
                c.mqtt!.value.feed(direction: dir, bytes: bytes, frame: frame)
                drain(&c.mqtt!.value, c.info.id, dir, at: ts, overWebSocket: false, into: &out)
            case .gap(_, let dir, let n, let ts) where n > 0:
                c.mqtt!.value.gap(direction: dir, length: n)
                drain(&c.mqtt!.value, c.info.id, dir, at: ts, overWebSocket: false, into: &out)
            default: break
            }
        }
    }

    /// Passes HTTP events on; WebSocket binary messages on an MQTT upgrade also go through an MQTT decoder.
    mutating func emit(_ c: Connection, _ events: [HTTPConnectionEvent], into out: inout [MessageEvent]) {
        for e in events {
            out.append(.http(c.info.id, e))
            if case .response(let r) = e, let broker = Self.handedOutBroker(r) { learnServer(broker) }
            guard case .webSocket(let message) = e, case .binary = message.kind else { continue }
            if c.webSocketMQTT == nil {
                let sub = c.http?.value.upgrade?.subprotocol?.lowercased() ?? ""
                let mqttLike = sub.contains("mqtt") || MQTTStreamDecoder.looksLikeConnect(message.payload) == true
                guard mqttLike else { continue }
                c.webSocketMQTT = Boxed(MQTTConnectionDecoder(configuration: configuration.mqtt))
            }
            // A packet starts in the capture frame of the first byte of the WebSocket message that holds its first byte,
            // and ends in the last frame of the message that completes it.
            c.webSocketMQTT!.value.feed(direction: message.direction, bytes: message.payload, frame: message.frames.first)
            if message.truncated || message.lostBytes > 0 {
                c.webSocketMQTT!.value.gap(direction: message.direction, length: max(1, message.length - message.payload.count))
            }
            let from = out.count
            drain(&c.webSocketMQTT!.value, c.info.id, message.direction, at: message.lastByteAt, overWebSocket: true, into: &out)
            for i in from..<out.count {
                guard case .mqtt(let id, let d, var record, let ts, let overWebSocket) = out[i], d == message.direction else { continue }
                record.frames.last = message.frames.last
                out[i] = .mqtt(id, d, record, ts, overWebSocket: overWebSocket)
            }
        }
    }

    func drain(
        _ mqtt: inout MQTTConnectionDecoder, _ id: ConnectionID, _ dir: Direction, at ts: Timestamp, overWebSocket: Bool,
        into out: inout [MessageEvent]
    ) {
        // A CONNECT from the client may set the version for the server's direction too: drain both.
        drainOne(&mqtt, id, dir, at: ts, overWebSocket: overWebSocket, into: &out)
        drainOne(&mqtt, id, dir.reversed, at: ts, overWebSocket: overWebSocket, into: &out)
    }

    func drainOne(
        _ mqtt: inout MQTTConnectionDecoder, _ id: ConnectionID, _ d: Direction, at ts: Timestamp, overWebSocket: Bool,
        into out: inout [MessageEvent]
    ) {
        guard mqtt.hasEvents(d) else { return }
        for e in mqtt.drain(direction: d) {
            switch e {
            case .packet(let record): out.append(.mqtt(id, d, record, ts, overWebSocket: overWebSocket))
            case .error(let error): out.append(.mqttError(id, d, error, ts, overWebSocket: overWebSocket))
            }
        }
    }
}

/// A value kept by reference, so an optional one costs a pointer until it exists and is updated in place.
final class Boxed<Value> {
    var value: Value
    init(_ value: Value) { self.value = value }
}

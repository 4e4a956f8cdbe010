import PilotTraceWire

/// The application protocol a TCP connection carries.
public enum AppProtocol: String, Hashable, Sendable, Codable {
    case http
    /// MQTT directly over TCP (MQTT over WebSocket is `http`, upgraded).
    case mqtt
    /// TLS not decrypted (no key log, no key for it, or it cannot be: ``Classification/decryption`` says why).
    /// Decrypted TLS is the protocol it carries, with ``Classification/tls`` and ``Classification/decryption`` set.
    case tls
    case unknown
}

/// How a connection was classified, and how sure that is. No guess is presented as certain.
public struct Classification: Hashable, Sendable {
    public enum Evidence: String, Hashable, Sendable, Codable {
        /// The client's first bytes: a request line, a CONNECT, a ClientHello.
        case firstBytes = "first-bytes"
        /// Picked up mid-stream: several consecutive well-formed MQTT packets, or a request/status line.
        case midstream = "mid-stream"
        /// Nothing recognisable; the port only suggests a protocol.
        case portHint = "port-hint"
        /// Nothing recognisable, no hint.
        case none
    }

    public var appProtocol: AppProtocol
    public var evidence: Evidence
    /// A human explanation: what was seen ("MQTT CONNECT, level 4"), or why nothing was decided.
    public var note: String
    /// The ClientHello, for TLS (decrypted or not).
    public var tls: TLSClientHello?
    /// For TLS: what decryption with the key log achieved (version, cipher suite, ALPN), or why it failed.
    public var decryption: TLSDecryption?
    /// The content shows the roles the other way round from what the TCP layer guessed (mid-stream pick-up
    /// without the handshake): the requests come from the endpoint taken as the server.
    public var rolesReversed = false
    /// For MQTT picked up mid-stream: the version the packets were found to parse as, used until a CONNECT says.
    public var mqttVersion: MQTTVersion?
    /// The bytes themselves said which side is the client (a request or status line, a CONNECT, a packet type only
    /// one side may send), so ``rolesReversed`` is not a guess. When false for a connection picked up mid-stream,
    /// the roles may still be decided from the endpoints (``StreamAnalyzer``; docs/flows.md, "Who is the server").
    public var rolesFromContent = false

    /// True when the bytes themselves decided (first bytes or mid-stream parsing), false for hints.
    public var isFromContent: Bool { evidence == .firstBytes || evidence == .midstream }

    public init(_ p: AppProtocol, _ evidence: Evidence, _ note: String, tls: TLSClientHello? = nil) {
        appProtocol = p
        self.evidence = evidence
        self.note = note
        self.tls = tls
    }
}

/// Classifies a connection from its first bytes; ports are only a hint.
public enum ProtocolDetector {
    /// Bytes looked at per direction before giving up on a mid-stream flow.
    public static let maxInspectedBytes = 64 << 10

    /// What has been seen of a connection so far.
    public struct Sample {
        public var info: ConnectionInfo
        /// The first client bytes (up to ``maxInspectedBytes``), and whether they start the stream.
        public var client: [UInt8] = []
        public var clientFromStart = true
        public var server: [UInt8] = []
        public var serverFromStart = true
        /// The direction ended (FIN) or the connection closed: no more bytes will come.
        public var clientDone = false
        public var serverDone = false

        public init(info: ConnectionInfo) {
            self.info = info
            clientFromStart = !info.midstream
            serverFromStart = !info.midstream
        }
    }

    /// Decides, or returns nil to wait for more bytes.
    public static func classify(_ s: Sample) -> Classification? {
        let clientFull = s.clientDone || s.client.count >= maxInspectedBytes
        let serverFull = s.serverDone || s.server.count >= maxInspectedBytes

        if s.clientFromStart && !s.client.isEmpty {
            switch TLSClientHello.detect(s.client) {
            case .clientHello(let hello)?:
                return Classification(.tls, .firstBytes, tlsNote(hello), tls: hello)
            case .tlsUnreadable?:
                return Classification(.tls, .firstBytes, "TLS handshake (ClientHello unreadable): encrypted; record it with `pilottrace proxy` to see inside")
            case .notTLS?, nil:
                break
            }
            let http = HTTPConnectionDecoder.looksLikeRequest(s.client)
            if http == true { return Classification(.http, .firstBytes, "HTTP request line") }
            let mqtt = MQTTStreamDecoder.looksLikeConnect(s.client)
            if mqtt == true { return Classification(.mqtt, .firstBytes, "MQTT CONNECT (\(mqttLevel(s.client)))") }
            let undecided = http == nil || mqtt == nil || TLSClientHello.detect(s.client) == nil
            if undecided && !clientFull { return nil }
            if http == nil, let method = requestPrefix(s.client) {
                // The stream stopped (gap, snapshot length, FIN) inside the request line.
                return Classification(.http, .firstBytes, "HTTP request line, cut short after \"\(method)\"")
            }
            return fallback(s, "the client's first bytes are not HTTP, MQTT or TLS")
        }
        if !s.clientFromStart || !s.serverFromStart {
            // Mid-stream: look for evidence in either direction.
            if var c = midstream(s.client, toServer: true) ?? midstream(s.server, toServer: false) {
                if c.appProtocol == .mqtt, !c.rolesFromContent { mqttDirection(s, &c) }
                if c.rolesReversed { c.note += "; so the requests come from \(s.info.server), not \(s.info.client) as the ports suggested" }
                return c
            }
            if clientFull && serverFull {
                if var c = shortMQTTExchange(s) {
                    mqttDirection(s, &c)
                    return c
                }
                return fallback(s, "picked up mid-stream and nothing recognisable followed")
            }
            return nil
        }
        // The handshake was seen but the client has not spoken yet (a server-first protocol, or just waiting).
        if clientFull && serverFull { return fallback(s, s.server.isEmpty ? "no payload" : "the server spoke first") }
        return nil
    }

    static func midstream(_ bytes: [UInt8], toServer: Bool) -> Classification? {
        guard !bytes.isEmpty else { return nil }
        let side = toServer ? "the client's" : "the server's"
        if HTTPConnectionDecoder.looksLikeRequest(bytes) == true {
            var c = Classification(.http, .midstream, "picked up mid-stream: \(side) bytes start with a request line")
            c.rolesReversed = !toServer
            c.rolesFromContent = true
            return c
        }
        if HTTPConnectionDecoder.looksLikeStatusLine(bytes) == true {
            var c = Classification(.http, .midstream, "picked up mid-stream: \(side) bytes start with a status line")
            c.rolesReversed = toServer
            c.rolesFromContent = true
            return c
        }
        if MQTTStreamDecoder.looksLikeConnect(bytes) == true {
            var c = Classification(.mqtt, .midstream, "picked up mid-stream: \(side) bytes start with an MQTT CONNECT")
            c.rolesReversed = !toServer
            c.rolesFromContent = true
            return c
        }
        if MQTTStreamDecoder.plausibleStream(bytes, minimumPackets: 3) {
            return Classification(
                .mqtt, .midstream, "picked up mid-stream: \(toServer ? "client" : "server") bytes parse as consecutive MQTT packets; the version is assumed")
        }
        if bytes.count >= 5, (20...23).contains(bytes[0]), bytes[1] == 3, bytes[2] <= 4 {
            var c = Classification(.tls, .midstream, "picked up mid-stream: TLS records; encrypted, record it with `pilottrace proxy` to see inside")
            c.decryption = TLSDecryption(failure: .handshakeNotCaptured("picked up mid-stream"))
            return c
        }
        // A request line later in the bytes (the capture started inside a message).
        if let line = requestLineStart(bytes) {
            var c = Classification(.http, .midstream, "picked up mid-stream: a request line at byte \(line) of \(side) stream")
            c.rolesReversed = !toServer
            c.rolesFromContent = true
            return c
        }
        return nil
    }

    /// Roles from MQTT packets only one side may send (MQTT 3.1.1 §3: CONNECT, SUBSCRIBE, UNSUBSCRIBE and PINGREQ go
    /// client to server; CONNACK, SUBACK, UNSUBACK and PINGRESP server to client). A device busy publishing telemetry
    /// sends no PINGREQ, so this often finds nothing; the endpoints decide then.
    static func mqttDirection(_ s: Sample, _ c: inout Classification) {
        func sides(_ bytes: [UInt8]) -> (client: MQTTPacketType?, server: MQTTPacketType?) {
            var d = MQTTStreamDecoder(configuration: .init(defaultVersion: c.mqttVersion ?? .v3_1_1, maxStoredPayload: 0, maxTopicAliasBytes: 0))
            d.feed(bytes)
            var found: (client: MQTTPacketType?, server: MQTTPacketType?) = (nil, nil)
            while found.client == nil || found.server == nil, let record = try? d.next() {
                switch record.packet.type {
                case .connect, .subscribe, .unsubscribe, .pingReq: found.client = found.client ?? record.packet.type
                case .connAck, .subAck, .unsubAck, .pingResp: found.server = found.server ?? record.packet.type
                default: break
                }
            }
            return found
        }
        let up = sides(s.client), down = sides(s.server)
        // Consistent evidence only: each side's packets must agree with the other's.
        let asGuessed = up.client ?? down.server, reversed = up.server ?? down.client
        func note(_ t: MQTTPacketType) -> String {
            "; roles from an MQTT \(t.name) (only a \([.connect, .subscribe, .unsubscribe, .pingReq].contains(t) ? "client" : "server") sends it)"
        }
        if let t = asGuessed, reversed == nil {
            c.rolesFromContent = true
            c.note += note(t)
        } else if let t = reversed, asGuessed == nil {
            (c.rolesFromContent, c.rolesReversed) = (true, true)
            c.note += note(t)
        }
    }

    /// The method of a request line that is cut short (`GET /images/sf.net_bo`), if the bytes start like one.
    static func requestPrefix(_ b: [UInt8]) -> String? {
        guard let space = b.prefix(25).firstIndex(of: 0x20), space > 0, space + 1 < b.count else { return nil }
        let method = b[..<space]
        guard method.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x5F || $0 == 0x2D }) else { return nil }
        let t = b[space + 1]
        guard t == 0x2F || t == 0x2A || b[(space + 1)...].starts(with: Array("http".utf8)) else { return nil }
        return String(decoding: method, as: UTF8.self)
    }

    /// A mid-stream flow too short for ``MQTTStreamDecoder/plausibleStream(_:minimumPackets:)``: accepted when
    /// every byte of each direction parses as whole MQTT packets, with three packets in all, or two on a port
    /// that suggests MQTT (a PINGREQ/PINGRESP exchange).
    static func shortMQTTExchange(_ s: Sample) -> Classification? {
        let portSays = [s.info.server.port, s.info.client.port].contains { portHints[$0]?.hasPrefix("MQTT") == true }
        // The first version under which both directions parse exactly (a 5.0 CONNACK fails as 3.1.1).
        for version in [MQTTVersion.v3_1_1, .v5, .v3_1] {
            guard let up = exactMQTTPackets(s.client, version), let down = exactMQTTPackets(s.server, version) else { continue }
            let total = up + down
            guard total >= 3 || (total >= 2 && portSays) else { return nil }
            var c = Classification(
                .mqtt, .midstream,
                "picked up mid-stream: all \(total) packets' bytes parse exactly as MQTT \(version)\(total < 3 ? " on an MQTT port" : ""); the version is assumed"
            )
            c.mqttVersion = version
            return c
        }
        return nil
    }

    /// How many whole MQTT packets of `version` `bytes` is, exactly (0 for none); nil when they are not.
    static func exactMQTTPackets(_ bytes: [UInt8], _ version: MQTTVersion) -> Int? {
        if bytes.isEmpty { return 0 }
        var d = MQTTStreamDecoder(configuration: .init(defaultVersion: version, maxStoredPayload: 0, maxTopicAliasBytes: 0))
        d.feed(bytes)
        var n = 0
        while let next = try? d.next() { _ = next; n += 1 }
        return n > 0 && !d.isDesynchronised && d.bufferedByteCount == 0 && d.offset == bytes.count ? n : nil
    }

    /// The offset of the first line that looks like an HTTP request line, if any.
    static func requestLineStart(_ bytes: [UInt8]) -> Int? {
        var i = 0
        while let nl = bytes[i...].firstIndex(of: 0x0A) {
            let start = nl + 1
            guard start < bytes.count else { return nil }
            if HTTPConnectionDecoder.looksLikeRequest(Array(bytes[start...])) == true { return start }
            i = start
        }
        return nil
    }

    static func fallback(_ s: Sample, _ why: String) -> Classification {
        let ports = [s.info.server.port, s.info.client.port]
        for p in ports {
            if let hint = portHints[p] { return Classification(.unknown, .portHint, "\(why); port \(p) suggests \(hint)") }
        }
        return Classification(.unknown, .none, why)
    }

    static let portHints: [UInt16: String] = [
        1883: "MQTT", 8883: "MQTT over TLS", 8083: "MQTT over WebSocket", 8084: "MQTT over secure WebSocket",
        80: "HTTP", 8080: "HTTP", 6789: "HTTP (the reference demo's backend)", 443: "HTTPS", 8443: "HTTPS",
    ]

    static func tlsNote(_ h: TLSClientHello) -> String {
        tlsDescription(h) + ": encrypted; record it with `pilottrace proxy` to see inside"
    }

    /// `TLS ClientHello for cloud.example (ALPN mqtt)`: what the ClientHello says in the clear.
    static func tlsDescription(_ h: TLSClientHello?) -> String {
        guard let h else { return "TLS handshake (ClientHello unreadable)" }
        var s = "TLS ClientHello"
        if let sni = h.serverName { s += " for \(sni)" }
        if !h.alpn.isEmpty { s += " (ALPN \(h.alpn.joined(separator: ", ")))" }
        return s
    }

    static func mqttLevel(_ b: [UInt8]) -> String {
        // CONNECT: fixed header, remaining length (1-4 bytes), protocol name (2 + n), level.
        var i = 1
        while i < b.count && b[i] & 0x80 != 0 { i += 1 }
        i += 1
        guard i + 2 <= b.count else { return "level unknown" }
        let n = Int(b[i]) << 8 | Int(b[i + 1])
        let at = i + 2 + n
        guard at < b.count else { return "level unknown" }
        switch b[at] {
        case 3: return "MQTT 3.1"
        case 4: return "MQTT 3.1.1"
        case 5: return "MQTT 5.0"
        default: return "level \(b[at])"
        }
    }
}

/// The secrets of an NSS key log file (`SSLKEYLOGFILE`), by client random: what Wireshark's `tls.keylog_file` reads.
///
/// Each line is `LABEL <client random, 64 hex digits> <secret, hex>`; `#` starts a comment; lines with other labels
/// (0-RTT, exporter, ECH) and malformed lines are skipped, as NSS and Wireshark skip them. Parsed from bytes: reading
/// the file (and re-reading it while it grows) is the shell's job. The secrets are never printed: `description` says
/// only how many sessions the log holds.
public struct TLSKeyLog: Sendable, CustomStringConvertible {
    /// The secrets of one TLS session (one client random).
    public struct Secrets: Sendable, Hashable {
        /// TLS 1.2 and earlier: `CLIENT_RANDOM`, the 48-byte master secret.
        public var masterSecret: [UInt8]?
        /// TLS 1.3 (RFC 8446 §7.1): `CLIENT_HANDSHAKE_TRAFFIC_SECRET` and `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
        public var clientHandshake: [UInt8]?
        public var serverHandshake: [UInt8]?
        /// TLS 1.3: `CLIENT_TRAFFIC_SECRET_0` and `SERVER_TRAFFIC_SECRET_0` (later generations follow by KeyUpdate).
        public var clientTraffic: [UInt8]?
        public var serverTraffic: [UInt8]?

        public init() {}

        /// Whether these secrets decrypt application data: a master secret, or both TLS 1.3 traffic secrets. A log
        /// still being written may have a session's handshake secrets before its traffic secrets.
        public var decryptsApplicationData: Bool { masterSecret != nil || clientTraffic != nil && serverTraffic != nil }
    }

    public private(set) var sessions: [[UInt8]: Secrets] = [:]

    public init() {}

    /// Parses a key log's text (a whole file, or the lines appended since the last read).
    public init(_ bytes: some Sequence<UInt8>) {
        self.init()
        add(bytes)
    }

    public var isEmpty: Bool { sessions.isEmpty }
    public var count: Int { sessions.count }
    public var description: String { "TLS key log (\(sessions.count) session\(sessions.count == 1 ? "" : "s"))" }

    /// The secrets logged for `clientRandom`, if any.
    public func secrets(for clientRandom: [UInt8]) -> Secrets? { sessions[clientRandom] }

    /// Adds the complete lines of `bytes` (a line without its newline is taken too: give only whole lines).
    public mutating func add(_ bytes: some Sequence<UInt8>) {
        var line: [UInt8] = []
        for b in bytes {
            if b == 0x0A {
                addLine(line)
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(b)
            }
        }
        addLine(line)
    }

    /// Adds every session of `other` (its secrets win where both have one).
    public mutating func merge(_ other: TLSKeyLog) {
        for (random, s) in other.sessions {
            var mine = sessions[random] ?? Secrets()
            mine.masterSecret = s.masterSecret ?? mine.masterSecret
            mine.clientHandshake = s.clientHandshake ?? mine.clientHandshake
            mine.serverHandshake = s.serverHandshake ?? mine.serverHandshake
            mine.clientTraffic = s.clientTraffic ?? mine.clientTraffic
            mine.serverTraffic = s.serverTraffic ?? mine.serverTraffic
            sessions[random] = mine
        }
    }

    mutating func addLine(_ raw: [UInt8]) {
        var line = raw[...]
        while let last = line.last, last == 0x0D || last == 0x20 || last == 0x09 { line = line.dropLast() }
        guard let first = line.first, first != 0x23 else { return }  // empty or `#` comment
        let fields = line.split(separator: 0x20, omittingEmptySubsequences: true)
        guard fields.count == 3, let random = Self.hex(fields[1]), random.count == 32, let secret = Self.hex(fields[2]), !secret.isEmpty
        else { return }
        var s = sessions[random] ?? Secrets()
        switch String(decoding: fields[0], as: UTF8.self) {
        case "CLIENT_RANDOM": guard secret.count == 48 else { return }; s.masterSecret = secret
        case "CLIENT_HANDSHAKE_TRAFFIC_SECRET": s.clientHandshake = secret
        case "SERVER_HANDSHAKE_TRAFFIC_SECRET": s.serverHandshake = secret
        case "CLIENT_TRAFFIC_SECRET_0": s.clientTraffic = secret
        case "SERVER_TRAFFIC_SECRET_0": s.serverTraffic = secret
        default: return
        }
        sessions[random] = s
    }

    static func hex(_ digits: ArraySlice<UInt8>) -> [UInt8]? {
        guard digits.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x41...0x46: c - 0x41 + 10
            case 0x61...0x66: c - 0x61 + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var i = digits.startIndex
        while i < digits.endIndex {
            guard let hi = nibble(digits[i]), let lo = nibble(digits[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

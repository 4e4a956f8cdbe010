/// Turns what one relayed connection carried into raw-IP TCP frames (`LINKTYPE_RAW`), as a capture of that
/// connection would have shown them: the three-way handshake, data segmented at the MSS with correct sequence and
/// acknowledgment numbers, FIN or RST as they happened.
///
/// Pure: bytes in, frames out; no clock (the caller stamps each frame). The frames go through the same
/// ``TCPPipeline`` as a live capture and are what `--write` stores, so Wireshark and pilottrace read them alike.
///
/// RFC 9293 §3.1 (header), §3.4 (sequence numbers), §3.5 (FIN, RST); RFC 791 (IPv4), RFC 8200 (IPv6);
/// the checksum over the pseudo-header is RFC 9293 §3.1 / RFC 8200 §8.1.
public struct TCPFrameSynthesizer: Sendable {
    public let client: Endpoint
    public let server: Endpoint
    /// Payload bytes per segment (1460 over IPv4, 1440 over IPv6: a 1500-byte path).
    public let maximumSegmentSize: Int
    /// The next sequence number of each side.
    public private(set) var nextSequence: (client: UInt32, server: UInt32)
    public private(set) var finished: (client: Bool, server: Bool) = (false, false)
    public private(set) var reset = false
    var ipID: (client: UInt16, server: UInt16) = (1, 1)
    let isIPv6: Bool

    /// - Parameters:
    ///   - client: the side that connected (the app).
    ///   - server: the side it connected to (the proxy's listener).
    ///   - initialSequence: the two initial sequence numbers (any values; wrap-around is handled).
    public init(client: Endpoint, server: Endpoint, initialSequence: (client: UInt32, server: UInt32), maximumSegmentSize: Int? = nil) {
        self.client = client
        self.server = server
        isIPv6 = client.address.isIPv6 || server.address.isIPv6
        self.maximumSegmentSize = maximumSegmentSize ?? (isIPv6 ? 1440 : 1460)
        nextSequence = initialSequence
    }

    /// SYN, SYN-ACK, ACK. The SYNs carry MSS and window-scale options; each consumes one sequence number.
    public mutating func handshake() -> [[UInt8]] {
        let isn = nextSequence
        var out: [[UInt8]] = []
        let mss = UInt16(maximumSegmentSize)
        // MSS (kind 2), NOP, window scale 7 (kind 3): RFC 9293 §3.1, RFC 7323 §2.
        let options: [UInt8] = [2, 4, UInt8(mss >> 8), UInt8(mss & 0xFF), 1, 3, 3, 7]
        out.append(frame(from: .toServer, seq: isn.client, ack: 0, flags: [.syn], options: options, payload: [][...]))
        out.append(frame(from: .toClient, seq: isn.server, ack: isn.client &+ 1, flags: [.syn, .ack], options: options, payload: [][...]))
        nextSequence = (isn.client &+ 1, isn.server &+ 1)
        out.append(frame(from: .toServer, seq: nextSequence.client, ack: nextSequence.server, flags: [.ack], options: [], payload: [][...]))
        return out
    }

    /// Data sent by one side, in MSS-sized segments; the last one carries PSH. Nothing after a FIN or RST.
    public mutating func data(_ bytes: [UInt8], from direction: Direction) -> [[UInt8]] {
        guard !bytes.isEmpty, !reset, !isFinished(direction) else { return [] }
        var out: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + maximumSegmentSize, bytes.count)
            let (seq, ack) = numbers(direction)
            out.append(frame(from: direction, seq: seq, ack: ack, flags: end == bytes.count ? [.ack, .psh] : [.ack], options: [],
                             payload: bytes[offset..<end]))
            advance(direction, by: UInt32(end - offset))
            offset = end
        }
        return out
    }

    /// One side closed its half: FIN (it consumes one sequence number).
    public mutating func fin(from direction: Direction) -> [[UInt8]] {
        guard !reset, !isFinished(direction) else { return [] }
        let (seq, ack) = numbers(direction)
        let f = frame(from: direction, seq: seq, ack: ack, flags: [.fin, .ack], options: [], payload: [][...])
        advance(direction, by: 1)
        if direction == .toServer { finished.client = true } else { finished.server = true }
        var out = [f]
        // The peer acknowledges the FIN (so tshark sees a clean close).
        let (pseq, pack) = numbers(direction.reversed)
        out.append(frame(from: direction.reversed, seq: pseq, ack: pack, flags: [.ack], options: [], payload: [][...]))
        return out
    }

    /// The connection is gone: whatever half is still open closes, the server's FIN first when `serverFirst`, else
    /// the client's (a half already closed or a reset adds nothing).
    public mutating func close(serverFirst: Bool) -> [[UInt8]] {
        serverFirst ? fin(from: .toClient) + fin(from: .toServer) : fin(from: .toServer) + fin(from: .toClient)
    }

    /// One side aborted the connection: RST with ACK (RFC 9293 §3.5.2). Nothing follows it.
    public mutating func rst(from direction: Direction) -> [[UInt8]] {
        guard !reset else { return [] }
        reset = true
        let (seq, ack) = numbers(direction)
        return [frame(from: direction, seq: seq, ack: ack, flags: [.rst, .ack], options: [], payload: [][...])]
    }

    public var isClosed: Bool { reset || (finished.client && finished.server) }

    func isFinished(_ d: Direction) -> Bool { d == .toServer ? finished.client : finished.server }

    func numbers(_ d: Direction) -> (seq: UInt32, ack: UInt32) {
        d == .toServer ? (nextSequence.client, nextSequence.server) : (nextSequence.server, nextSequence.client)
    }

    mutating func advance(_ d: Direction, by n: UInt32) {
        if d == .toServer { nextSequence.client &+= n } else { nextSequence.server &+= n }
    }

    // MARK: - Frames

    mutating func frame(from d: Direction, seq: UInt32, ack: UInt32, flags: TCPFlags, options: [UInt8], payload: ArraySlice<UInt8>) -> [UInt8] {
        let (src, dst) = d == .toServer ? (client, server) : (server, client)
        let tcpLength = 20 + options.count + payload.count
        var tcp: [UInt8] = []
        tcp.reserveCapacity(tcpLength)
        Self.put16(&tcp, src.port)
        Self.put16(&tcp, dst.port)
        Self.put32(&tcp, seq)
        Self.put32(&tcp, flags.contains(.ack) ? ack : 0)
        tcp.append(UInt8((20 + options.count) / 4) << 4)
        tcp.append(flags.rawValue)
        Self.put16(&tcp, 0xFFFF)  // window (scaled by 2^7 after the SYNs)
        Self.put16(&tcp, 0)  // checksum, filled below
        Self.put16(&tcp, 0)  // urgent pointer
        tcp += options
        tcp += payload
        var out: [UInt8] = []
        if isIPv6 {
            out.reserveCapacity(40 + tcpLength)
            out += [0x60, 0, 0, 0]
            Self.put16(&out, UInt16(tcpLength))
            out += [6, 64]  // next header TCP, hop limit
            out += Self.bytes16(src.address)
            out += Self.bytes16(dst.address)
            var pseudo = Self.bytes16(src.address) + Self.bytes16(dst.address)
            Self.put32(&pseudo, UInt32(tcpLength))
            pseudo += [0, 0, 0, 6]
            let sum = Self.checksum(pseudo, tcp)
            tcp[16] = UInt8(sum >> 8)
            tcp[17] = UInt8(sum & 0xFF)
            out += tcp
        } else {
            let id: UInt16
            if d == .toServer { id = ipID.client; ipID.client &+= 1 } else { id = ipID.server; ipID.server &+= 1 }
            var ip: [UInt8] = [0x45, 0]
            Self.put16(&ip, UInt16(20 + tcpLength))
            Self.put16(&ip, id)
            ip += [0x40, 0, 64, 6, 0, 0]  // DF, TTL 64, TCP, checksum
            ip += Self.bytes4(src.address)
            ip += Self.bytes4(dst.address)
            let ipSum = Self.checksum(ip, [])
            ip[10] = UInt8(ipSum >> 8)
            ip[11] = UInt8(ipSum & 0xFF)
            var pseudo = Self.bytes4(src.address) + Self.bytes4(dst.address)
            pseudo += [0, 6]
            Self.put16(&pseudo, UInt16(tcpLength))
            let sum = Self.checksum(pseudo, tcp)
            tcp[16] = UInt8(sum >> 8)
            tcp[17] = UInt8(sum & 0xFF)
            out.reserveCapacity(20 + tcpLength)
            out += ip
            out += tcp
        }
        return out
    }

    static func put16(_ a: inout [UInt8], _ v: UInt16) { a.append(UInt8(v >> 8)); a.append(UInt8(v & 0xFF)) }
    static func put32(_ a: inout [UInt8], _ v: UInt32) { for s in [24, 16, 8, 0] { a.append(UInt8((v >> UInt32(s)) & 0xFF)) } }

    static func bytes4(_ a: IPAddress) -> [UInt8] {
        switch a {
        case .v4(let v): return [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
        case .v6(_, let lo): return bytes4(.v4(UInt32(truncatingIfNeeded: lo)))  // not reached: families match
        }
    }

    static func bytes16(_ a: IPAddress) -> [UInt8] {
        switch a {
        case .v4(let v):  // IPv4-mapped (::ffff:a.b.c.d), when one side is IPv6
            return [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + bytes4(.v4(v))
        case .v6(let hi, let lo):
            var out: [UInt8] = []
            for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8((hi >> UInt64(s)) & 0xFF)) }
            for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8((lo >> UInt64(s)) & 0xFF)) }
            return out
        }
    }

    /// The Internet checksum (RFC 1071) over `a` then `b` (`a`, the pseudo-header, has an even length).
    static func checksum(_ a: [UInt8], _ b: [UInt8]) -> UInt16 {
        var sum: UInt64 = 0
        for part in [a, b] {
            part.withUnsafeBytes { raw in
                let n = raw.count
                var i = 0
                while i + 1 < n {
                    sum &+= UInt64(raw[i]) << 8 | UInt64(raw[i + 1])
                    i += 2
                }
                if i < n { sum &+= UInt64(raw[i]) << 8 }
            }
        }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(sum)
    }
}

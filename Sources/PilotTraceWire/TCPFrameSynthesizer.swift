/// Turns what one TCP connection carried into the frames a capture of it would show: the three-way handshake, data
/// segmented at the MSS with correct sequence and acknowledgment numbers, acknowledgments, FIN or RST.
///
/// The one TCP frame builder of the project: the proxy and the replay record relayed bytes with it (raw IP, every
/// header field a sender's stack fills in, see ``Format/recorded``), and the lab's traffic generator builds its
/// captures with it (Ethernet, bare headers, see ``Format/generated``).
///
/// Pure: bytes in, frames out; no clock (the caller stamps each frame). The frames go through the same
/// ``TCPPipeline`` as a live capture, so Wireshark and pilottrace read them alike.
///
/// RFC 9293 §3.1 (header), §3.4 (sequence numbers), §3.5 (FIN, RST); RFC 791 (IPv4), RFC 8200 (IPv6);
/// the checksum over the pseudo-header is RFC 9293 §3.1 / RFC 8200 §8.1.
///
/// ## Topics
/// - ``init(client:server:initialSequence:maximumSegmentSize:format:)``
/// - ``handshake()``
/// - ``data(_:from:)``
/// - ``ack(from:)``
/// - ``fin(from:peerAcknowledges:)``
/// - ``close(serverFirst:)``
/// - ``rst(from:)``
public struct TCPFrameSynthesizer: Sendable {
    /// How the frames are laid out: the link header in front, and whether the headers carry what a sender's stack
    /// fills in.
    public struct Format: Hashable, Sendable {
        /// What comes before the IP header.
        public enum Link: Hashable, Sendable {
            /// Nothing: `LINKTYPE_RAW`.
            case rawIP
            /// Ethernet II with zero MAC addresses and the EtherType of the IP version: `LINKTYPE_ETHERNET`.
            case ethernet

            /// The capture link type to write the frames with.
            public var linkType: LinkType { self == .rawIP ? .raw : .ethernet }
        }

        /// Which header fields are filled in.
        public enum Headers: Hashable, Sendable {
            /// What a sender's stack writes: IPv4 don't-fragment and an identification counter per direction, the
            /// IPv4 and TCP checksums, MSS and window-scale options on the SYNs. tshark validates such frames.
            case complete
            /// Those fields zero and no SYN options (what a capture on a host that offloads checksums shows):
            /// smaller frames, cheaper to make, that pilottrace decodes the same.
            case minimal
        }

        public var link: Link
        public var headers: Headers

        public init(link: Link, headers: Headers) {
            self.link = link
            self.headers = headers
        }

        /// Raw IP, complete headers: what the proxy and the replay record and `proxy --write` keeps as pcapng.
        public static let recorded = Format(link: .rawIP, headers: .complete)
        /// Ethernet, minimal headers: the lab generator's captures (`lab generate`, tests, benchmarks).
        public static let generated = Format(link: .ethernet, headers: .minimal)
    }

    public let client: Endpoint
    public let server: Endpoint
    /// Payload bytes per segment.
    public let maximumSegmentSize: Int
    public let format: Format
    /// The next sequence number of each side.
    public private(set) var nextSequence: (client: UInt32, server: UInt32)
    public private(set) var finished: (client: Bool, server: Bool) = (false, false)
    public private(set) var reset = false
    /// The next IPv4 identification of each side (complete headers only).
    var ipID: (client: UInt16, server: UInt16) = (1, 1)
    let isIPv6: Bool

    /// - Parameters:
    ///   - client: the side that connected (the app, or the replay).
    ///   - server: the side it connected to.
    ///   - initialSequence: the two initial sequence numbers (any values; wrap-around is handled).
    ///   - maximumSegmentSize: payload bytes per segment; by default 1460 over IPv4, 1440 over IPv6 (a 1500-byte
    ///     path).
    ///   - format: the link header and which header fields are filled in.
    public init(
        client: Endpoint, server: Endpoint, initialSequence: (client: UInt32, server: UInt32), maximumSegmentSize: Int? = nil,
        format: Format = .recorded
    ) {
        self.client = client
        self.server = server
        self.format = format
        isIPv6 = client.address.isIPv6 || server.address.isIPv6
        self.maximumSegmentSize = maximumSegmentSize ?? (isIPv6 ? 1440 : 1460)
        nextSequence = initialSequence
    }

    /// SYN, SYN-ACK, ACK. Each SYN consumes one sequence number; with complete headers the SYNs carry MSS and
    /// window-scale options.
    public mutating func handshake() -> [[UInt8]] {
        let isn = nextSequence
        var out: [[UInt8]] = []
        let mss = UInt16(maximumSegmentSize)
        // MSS (kind 2), NOP, window scale 7 (kind 3): RFC 9293 §3.1, RFC 7323 §2.
        let options: [UInt8] = format.headers == .complete ? [2, 4, UInt8(mss >> 8), UInt8(mss & 0xFF), 1, 3, 3, 7] : []
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
            out.append(
                frame(
                    from: direction, seq: seq, ack: ack, flags: end == bytes.count ? [.ack, .psh] : [.ack], options: [],
                    payload: bytes[offset..<end]))
            advance(direction, by: UInt32(end - offset))
            offset = end
        }
        return out
    }

    /// A bare ACK from one side, of everything the other side sent so far. Nothing after a RST.
    public mutating func ack(from direction: Direction) -> [[UInt8]] {
        guard !reset else { return [] }
        let (seq, ack) = numbers(direction)
        return [frame(from: direction, seq: seq, ack: ack, flags: [.ack], options: [], payload: [][...])]
    }

    /// One side closed its half: FIN (it consumes one sequence number), then the peer's ACK of it unless
    /// `peerAcknowledges` is false (the peer's own FIN will carry that ACK: FIN, FIN-ACK, ACK).
    public mutating func fin(from direction: Direction, peerAcknowledges: Bool = true) -> [[UInt8]] {
        guard !reset, !isFinished(direction) else { return [] }
        let (seq, ack) = numbers(direction)
        let f = frame(from: direction, seq: seq, ack: ack, flags: [.fin, .ack], options: [], payload: [][...])
        advance(direction, by: 1)
        if direction == .toServer { finished.client = true } else { finished.server = true }
        // The peer acknowledges the FIN (so tshark sees a clean close).
        return peerAcknowledges ? [f] + self.ack(from: direction.reversed) : [f]
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

    /// One frame, written into a single buffer: link header, IP header, TCP header and options, payload; then the
    /// checksums (complete headers).
    mutating func frame(from d: Direction, seq: UInt32, ack: UInt32, flags: TCPFlags, options: [UInt8], payload: ArraySlice<UInt8>) -> [UInt8] {
        let (src, dst) = d == .toServer ? (client, server) : (server, client)
        let complete = format.headers == .complete
        let ip = format.link == .ethernet ? 14 : 0
        let tcp = ip + (isIPv6 ? 40 : 20)
        let tcpHeaderLength = 20 + options.count
        let tcpLength = tcpHeaderLength + payload.count
        var f = [UInt8](repeating: 0, count: tcp + tcpHeaderLength)
        f.reserveCapacity(tcp + tcpLength)
        if format.link == .ethernet {
            // Ethernet II (IEEE 802.3 §3.2.6): zero MAC addresses, then the EtherType.
            Self.put16(&f, 12, isIPv6 ? 0x86DD : 0x0800)
        }
        if isIPv6 {
            f[ip] = 0x60  // version 6, traffic class and flow label 0
            Self.put16(&f, ip + 4, UInt16(tcpLength))
            f[ip + 6] = 6  // next header TCP
            f[ip + 7] = 64  // hop limit
            Self.put16Bytes(&f, ip + 8, src.address)
            Self.put16Bytes(&f, ip + 24, dst.address)
        } else {
            f[ip] = 0x45  // version 4, 20-byte header
            Self.put16(&f, ip + 2, UInt16(20 + tcpLength))
            if complete {
                let id: UInt16
                if d == .toServer { id = ipID.client; ipID.client &+= 1 } else { id = ipID.server; ipID.server &+= 1 }
                Self.put16(&f, ip + 4, id)
                f[ip + 6] = 0x40  // DF
            }
            f[ip + 8] = 64  // TTL
            f[ip + 9] = 6  // TCP
            Self.put4Bytes(&f, ip + 12, src.address)
            Self.put4Bytes(&f, ip + 16, dst.address)
            if complete {
                var sum: UInt64 = 0
                Self.add(f, ip..<tcp, to: &sum)
                Self.put16(&f, ip + 10, Self.fold(sum))
            }
        }
        Self.put16(&f, tcp, src.port)
        Self.put16(&f, tcp + 2, dst.port)
        Self.put32(&f, tcp + 4, seq)
        Self.put32(&f, tcp + 8, flags.contains(.ack) ? ack : 0)
        f[tcp + 12] = UInt8(tcpHeaderLength / 4) << 4
        f[tcp + 13] = flags.rawValue
        Self.put16(&f, tcp + 14, 0xFFFF)  // window (scaled by 2^7 after complete SYNs); checksum and urgent pointer 0
        for (i, b) in options.enumerated() { f[tcp + 20 + i] = b }
        f += payload
        if complete {
            // The pseudo-header: both addresses (as written above), the protocol and the TCP length.
            var sum: UInt64 = 6 + UInt64(tcpLength >> 16) + UInt64(tcpLength & 0xFFFF)
            Self.add(f, isIPv6 ? (ip + 8)..<(ip + 40) : (ip + 12)..<(ip + 20), to: &sum)
            Self.add(f, tcp..<f.count, to: &sum)
            Self.put16(&f, tcp + 16, Self.fold(sum))
        }
        return f
    }

    static func put16(_ a: inout [UInt8], _ at: Int, _ v: UInt16) {
        a[at] = UInt8(v >> 8)
        a[at + 1] = UInt8(v & 0xFF)
    }

    static func put32(_ a: inout [UInt8], _ at: Int, _ v: UInt32) {
        put16(&a, at, UInt16(v >> 16))
        put16(&a, at + 2, UInt16(v & 0xFFFF))
    }

    /// An IPv4 address in four bytes.
    static func put4Bytes(_ a: inout [UInt8], _ at: Int, _ address: IPAddress) {
        switch address {
        case .v4(let v): put32(&a, at, v)
        case .v6(_, let lo): put32(&a, at, UInt32(truncatingIfNeeded: lo))  // not reached: families match
        }
    }

    /// An address in sixteen bytes: IPv6, or IPv4-mapped (`::ffff:a.b.c.d`) when only the other side is IPv6.
    static func put16Bytes(_ a: inout [UInt8], _ at: Int, _ address: IPAddress) {
        switch address {
        case .v4(let v):
            put16(&a, at + 10, 0xFFFF)
            put32(&a, at + 12, v)
        case .v6(let hi, let lo):
            put32(&a, at, UInt32(hi >> 32))
            put32(&a, at + 4, UInt32(hi & 0xFFFF_FFFF))
            put32(&a, at + 8, UInt32(lo >> 32))
            put32(&a, at + 12, UInt32(lo & 0xFFFF_FFFF))
        }
    }

    /// Adds `range` of `a` to a one's-complement sum (RFC 1071) as big-endian 16-bit words, the last byte of an odd
    /// range padded with zero (so only the last range summed may have an odd length).
    static func add(_ a: [UInt8], _ range: Range<Int>, to sum: inout UInt64) {
        a.withUnsafeBytes { raw in
            var i = range.lowerBound
            while i + 1 < range.upperBound {
                sum &+= UInt64(raw[i]) << 8 | UInt64(raw[i + 1])
                i += 2
            }
            if i < range.upperBound { sum &+= UInt64(raw[i]) << 8 }
        }
    }

    /// The Internet checksum (RFC 1071) of a sum: folded to 16 bits, complemented.
    static func fold(_ sum: UInt64) -> UInt16 {
        var sum = sum
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(sum)
    }
}

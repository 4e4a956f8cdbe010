@testable import PilotTraceWire

/// Builds frames byte by byte for decoder tests.
enum Frame {
    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    /// A TCP header (20 bytes plus `options`, padded) followed by `payload`.
    static func tcp(
        src: UInt16, dst: UInt16, seq: UInt32, ack: UInt32 = 0, flags: TCPFlags, window: UInt16 = 65535,
        options: [UInt8] = [], payload: [UInt8] = []
    ) -> [UInt8] {
        var opts = options
        while opts.count % 4 != 0 { opts.append(0) }
        let offset = UInt8((20 + opts.count) / 4) << 4
        return be16(src) + be16(dst) + be32(seq) + be32(ack) + [offset, flags.rawValue] + be16(window) + [0, 0, 0, 0] + opts + payload
    }

    /// An IPv4 header (with `options`) around `payload`; `fragment` is (offset in bytes, more fragments).
    static func ipv4(
        src: UInt32 = 0x0A00_0001, dst: UInt32 = 0x0A00_0002, proto: UInt8 = 6, id: UInt16 = 1,
        fragment: (Int, Bool) = (0, false), options: [UInt8] = [], payload: [UInt8], totalLength: Int? = nil
    ) -> [UInt8] {
        var opts = options
        while opts.count % 4 != 0 { opts.append(0) }
        let ihl = 20 + opts.count
        let total = totalLength ?? (ihl + payload.count)
        let frag = UInt16(fragment.0 / 8) | (fragment.1 ? 0x2000 : 0)
        return [0x40 | UInt8(ihl / 4), 0] + be16(UInt16(total)) + be16(id) + be16(frag) + [64, proto, 0, 0]
            + be32(src) + be32(dst) + opts + payload
    }

    static let v6a: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
    static let v6b: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2]

    /// An IPv6 header; `extensions` are already-encoded extension headers, `first` the Next Header of the fixed header.
    static func ipv6(first: UInt8 = 6, extensions: [UInt8] = [], payload: [UInt8]) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(UInt16(extensions.count + payload.count)) + [first, 64] + v6a + v6b + extensions + payload
    }

    static func ethernet(type: UInt16, vlanTags: [UInt16] = [], payload: [UInt8]) -> [UInt8] {
        var f: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        for tpid in vlanTags { f += be16(tpid) + be16(100) }
        return f + be16(type) + payload
    }

    static func sll(protocol p: UInt16, payload: [UInt8]) -> [UInt8] {
        [0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0] + be16(p) + payload
    }

    static func sll2(protocol p: UInt16, payload: [UInt8]) -> [UInt8] {
        be16(p) + [0, 0] + be32(1) + [0, 1, 0, 6] + [1, 2, 3, 4, 5, 6, 0, 0] + payload
    }
}

/// Decodes one frame and returns a copy of the outcome's essentials.
struct Decoded: Equatable {
    var kind: String
    var src: Endpoint?
    var dst: Endpoint?
    var seq: UInt32?
    var flags: TCPFlags?
    var payload: [UInt8] = []
    var wireLength = 0
    var mss: UInt16?
    var windowScale: UInt8?
    var malformed: MalformedPacket?
}

func decode(_ decoder: inout PacketDecoder, _ bytes: [UInt8], link: LinkType, originalLength: Int? = nil) -> Decoded {
    bytes.withUnsafeBytes { raw in
        let record = CaptureRecord(
            timestamp: Timestamp(seconds: 1, nanoseconds: 0), linkType: link, data: raw,
            originalLength: originalLength ?? bytes.count)
        return decoder.decode(record) { outcome in
            switch outcome {
            case .tcp(let s):
                return Decoded(
                    kind: "tcp", src: s.source, dst: s.destination, seq: s.sequence, flags: s.flags,
                    payload: Array(s.payload), wireLength: s.wireLength, mss: s.maximumSegmentSize,
                    windowScale: s.windowScale)
            case .otherIP(let p): return Decoded(kind: "ip\(p)")
            case .fragmentHeld: return Decoded(kind: "fragment")
            case .notIP: return Decoded(kind: "notIP")
            case .unsupportedLinkType: return Decoded(kind: "unsupported")
            case .malformed(let m): return Decoded(kind: "malformed", malformed: m)
            }
        }
    }
}

func decode(_ bytes: [UInt8], link: LinkType, originalLength: Int? = nil) -> Decoded {
    var d = PacketDecoder()
    return decode(&d, bytes, link: link, originalLength: originalLength)
}

/// Decodes frames down to TCP segments: link layer, IPv4/IPv6 (with fragment reassembly), TCP.
///
/// A value type holding only the fragment table; feed it frames in capture order.
public struct PacketDecoder {
    var fragments: IPFragmentReassembler

    public init(fragmentLimits: IPFragmentReassembler.Limits = .init()) {
        self.fragments = IPFragmentReassembler(limits: fragmentLimits)
    }

    /// A placeholder that allocates nothing.
    static var empty: PacketDecoder { PacketDecoder() }

    /// Datagrams waiting for missing fragments.
    public var pendingFragmentedDatagrams: Int { fragments.count }

    /// Decodes `record` and passes the outcome to `body`. A `.tcp` segment's payload is valid only inside `body`.
    public mutating func decode<R>(_ record: CaptureRecord, _ body: (DecodeOutcome) -> R) -> R {
        let bytes = record.data
        switch Self.networkLayer(linkType: record.linkType, bytes) {
        case .other(let outcome):
            return body(outcome)
        case .ip(let offset, let kind):
            return decodeIP(bytes, from: offset, kind: kind, at: record.timestamp, body)
        }
    }

    enum NetworkKind { case ipv4, ipv6, byVersion }

    /// Finds where the IP header starts, following link headers and VLAN tags.
    static func networkLayer(linkType: LinkType, _ b: UnsafeRawBufferPointer) -> LinkResult {
        func ethertype(_ t: UInt16, at offset: Int) -> LinkResult {
            switch t {
            case 0x0800: .ip(offset, .ipv4)
            case 0x86DD: .ip(offset, .ipv6)
            default: .other(.notIP(etherType: t))
            }
        }
        switch linkType {
        case .ethernet:
            guard b.count >= 14 else { return .other(.malformed(.init(reason: .truncatedLinkHeader, offset: b.count))) }
            var type = b.be16(12)
            var offset = 14
            var tags = 0
            // 802.1Q, 802.1ad and the pre-standard 0x9100 QinQ tag, stacked.
            while type == 0x8100 || type == 0x88A8 || type == 0x9100 {
                tags += 1
                guard tags <= 8 else { return .other(.malformed(.init(reason: .tooManyTags, offset: offset))) }
                guard b.count >= offset + 4 else { return .other(.malformed(.init(reason: .truncatedLinkHeader, offset: b.count))) }
                type = b.be16(offset + 2)
                offset += 4
            }
            if type <= 1500 { return .other(.notIP(etherType: nil)) }  // 802.3 length field: LLC
            return ethertype(type, at: offset)
        case .linuxSLL:
            guard b.count >= 16 else { return .other(.malformed(.init(reason: .truncatedLinkHeader, offset: b.count))) }
            return ethertype(b.be16(14), at: 16)
        case .linuxSLL2:
            guard b.count >= 20 else { return .other(.malformed(.init(reason: .truncatedLinkHeader, offset: b.count))) }
            return ethertype(b.be16(0), at: 20)
        case .null, .loop:
            guard b.count >= 4 else { return .other(.malformed(.init(reason: .truncatedLinkHeader, offset: b.count))) }
            // NULL is in the writer's byte order, LOOP in network order; accept either.
            let be = b.be32(0), le = b.le32(0)
            let family = linkType == .loop ? be : (be < 0x10000 ? be : le)
            switch family {
            case 2: return .ip(4, .ipv4)
            case 10, 24, 28, 30: return .ip(4, .ipv6)  // Linux, NetBSD/OpenBSD, FreeBSD, Darwin
            default: return .other(.notIP(etherType: nil))
            }
        case .raw, .rawBSD12, .rawBSD14: return .ip(0, .byVersion)
        case .ipv4: return .ip(0, .ipv4)
        case .ipv6: return .ip(0, .ipv6)
        default: return .other(.unsupportedLinkType(linkType))
        }
    }

    enum LinkResult {
        case ip(Int, NetworkKind)
        case other(DecodeOutcome)
    }

    mutating func decodeIP<R>(_ b: UnsafeRawBufferPointer, from offset: Int, kind: NetworkKind, at ts: Timestamp, _ body: (DecodeOutcome) -> R) -> R {
        guard b.count > offset else { return body(.malformed(.init(reason: .truncatedIPHeader, offset: offset))) }
        let version = b[offset] >> 4
        switch (kind, version) {
        case (.ipv4, 4), (.byVersion, 4): return decodeIPv4(b, offset, ts, body)
        case (.ipv6, 6), (.byVersion, 6): return decodeIPv6(b, offset, ts, body)
        default: return body(.malformed(.init(reason: .badIPVersion, offset: offset)))
        }
    }

    /// RFC 791.
    mutating func decodeIPv4<R>(_ b: UnsafeRawBufferPointer, _ o: Int, _ ts: Timestamp, _ body: (DecodeOutcome) -> R) -> R {
        guard b.count >= o + 20 else { return body(.malformed(.init(reason: .truncatedIPHeader, offset: b.count))) }
        let ihl = Int(b[o] & 0x0f) * 4
        guard ihl >= 20 else { return body(.malformed(.init(reason: .badIPHeaderLength, offset: o))) }
        guard b.count >= o + ihl else { return body(.malformed(.init(reason: .truncatedIPHeader, offset: b.count))) }
        var total = Int(b.be16(o + 2))
        if total == 0 { total = b.count - o }  // TCP segmentation offload writes 0
        guard total >= ihl else { return body(.malformed(.init(reason: .badIPHeaderLength, offset: o + 2))) }
        let proto = b[o + 9]
        let src = IPAddress.v4(b.be32(o + 12)), dst = IPAddress.v4(b.be32(o + 16))
        let fragField = b.be16(o + 6)
        let more = fragField & 0x2000 != 0
        let fragOffset = Int(fragField & 0x1fff) * 8
        let payloadStart = o + ihl
        let payloadEnd = min(b.count, o + total)
        let payload = UnsafeRawBufferPointer(rebasing: b[payloadStart..<max(payloadStart, payloadEnd)])
        let wire = total - ihl
        if more || fragOffset > 0 {
            let key = IPFragmentReassembler.Key(source: src, destination: dst, identification: UInt32(b.be16(o + 4)), protocolNumber: proto)
            switch fragments.add(key: key, offset: fragOffset, more: more, payload: payload, wireLength: wire, at: ts) {
            case .held: return body(.fragmentHeld)
            case .invalid: return body(.malformed(.init(reason: .badFragment, offset: o + 6)))
            case .complete(let datagram):
                return datagram.withUnsafeBytes { d in
                    transport(proto, src: src, dst: dst, d, wireLength: d.count, offset: 0, body)
                }
            }
        }
        return transport(proto, src: src, dst: dst, payload, wireLength: wire, offset: payloadStart, body)
    }

    /// RFC 8200: skips extension headers, reassembles fragments (RFC 8200 §4.5).
    mutating func decodeIPv6<R>(_ b: UnsafeRawBufferPointer, _ o: Int, _ ts: Timestamp, _ body: (DecodeOutcome) -> R) -> R {
        guard b.count >= o + 40 else { return body(.malformed(.init(reason: .truncatedIPHeader, offset: b.count))) }
        let src = IPAddress.v6(b.be64(o + 8), b.be64(o + 16))
        let dst = IPAddress.v6(b.be64(o + 24), b.be64(o + 32))
        var next = b[o + 6]
        var p = o + 40
        let end = min(b.count, o + 40 + Int(b.be16(o + 4)))
        var wire = Int(b.be16(o + 4))  // bytes after the fixed header, on the wire
        var hops = 0
        while true {
            hops += 1
            guard hops <= 16 else { return body(.malformed(.init(reason: .extensionHeaderLoop, offset: p))) }
            switch next {
            case 0, 43, 60:  // hop-by-hop, routing, destination options
                guard end >= p + 2 else { return body(.malformed(.init(reason: .truncatedIPHeader, offset: p))) }
                let len = (Int(b[p + 1]) + 1) * 8
                next = b[p]; p += len; wire -= len
            case 51:  // authentication header
                guard end >= p + 2 else { return body(.malformed(.init(reason: .truncatedIPHeader, offset: p))) }
                let len = (Int(b[p + 1]) + 2) * 4
                next = b[p]; p += len; wire -= len
            case 44:  // fragment
                guard end >= p + 8 else { return body(.malformed(.init(reason: .truncatedIPHeader, offset: p))) }
                let field = b.be16(p + 2)
                let fragOffset = Int(field & 0xfff8)
                let more = field & 1 != 0
                let ident = b.be32(p + 4)
                let proto = b[p]
                p += 8; wire -= 8
                if fragOffset == 0 && !more { next = proto; continue }  // atomic fragment (RFC 6946)
                let payload = UnsafeRawBufferPointer(rebasing: b[min(p, end)..<end])
                let key = IPFragmentReassembler.Key(source: src, destination: dst, identification: ident, protocolNumber: proto)
                switch fragments.add(key: key, offset: fragOffset, more: more, payload: payload, wireLength: wire, at: ts) {
                case .held: return body(.fragmentHeld)
                case .invalid: return body(.malformed(.init(reason: .badFragment, offset: p - 6)))
                case .complete(let datagram):
                    return datagram.withUnsafeBytes { d in
                        transport(proto, src: src, dst: dst, d, wireLength: d.count, offset: 0, body)
                    }
                }
            default:
                guard p <= end else { return body(.malformed(.init(reason: .truncatedIPHeader, offset: end))) }
                let payload = UnsafeRawBufferPointer(rebasing: b[p..<end])
                return transport(next, src: src, dst: dst, payload, wireLength: wire, offset: p, body)
            }
        }
    }

    /// RFC 9293 §3.1.
    func transport<R>(
        _ proto: UInt8, src: IPAddress, dst: IPAddress, _ t: UnsafeRawBufferPointer, wireLength: Int, offset: Int, _ body: (DecodeOutcome) -> R
    ) -> R {
        guard proto == 6 else { return body(.otherIP(protocolNumber: proto)) }
        guard t.count >= 20 else { return body(.malformed(.init(reason: .truncatedTCPHeader, offset: offset + t.count))) }
        let dataOffset = Int(t[12] >> 4) * 4
        guard dataOffset >= 20 else { return body(.malformed(.init(reason: .badTCPHeaderLength, offset: offset + 12))) }
        var mss: UInt16?
        var scale: UInt8?
        // Options: parse what was captured; a header cut by the snapshot length keeps its fixed part.
        var i = 20
        let optionsEnd = min(dataOffset, t.count)
        while i < optionsEnd {
            let kind = t[i]
            if kind == 0 { break }
            if kind == 1 { i += 1; continue }
            guard i + 1 < optionsEnd else { break }
            let len = Int(t[i + 1])
            guard len >= 2, i + len <= optionsEnd else { break }
            if kind == 2 && len == 4 { mss = t.be16(i + 2) }
            if kind == 3 && len == 3 { scale = t[i + 2] }
            i += len
        }
        let payloadStart = min(dataOffset, t.count)
        let segment = TCPSegment(
            source: Endpoint(address: src, port: t.be16(0)),
            destination: Endpoint(address: dst, port: t.be16(2)),
            sequence: t.be32(4),
            acknowledgment: t.be32(8),
            flags: TCPFlags(rawValue: t[13]),
            window: t.be16(14),
            payload: UnsafeRawBufferPointer(rebasing: t[payloadStart...]),
            wireLength: max(0, wireLength - dataOffset),
            windowScale: scale,
            maximumSegmentSize: mss
        )
        return body(.tcp(segment))
    }
}

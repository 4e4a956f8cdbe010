/// Community ID flow hashing, version 1 (https://github.com/corelight/community-id-spec): one string per flow that
/// Zeek, Suricata, Wireshark (`communityid`), Arkime and Elastic compute the same way, so a flow found here can be
/// looked up in their logs.
///
/// The SHA-1 of: the seed (2 bytes), the smaller endpoint's address then the larger's (4 or 16 bytes each), the IP
/// protocol (1 byte) and a zero byte, then the two ports in the same order (2 bytes each), all in network byte order;
/// rendered as `1:` and the digest in base64. Endpoints are ordered by address, then by port when the addresses are
/// equal, so both directions of a flow get the same id.
public enum CommunityID {
    /// The IP protocol number of TCP.
    public static let tcp: UInt8 = 6

    /// The Community ID v1 of the flow between `a` and `b` (either order gives the same id).
    /// - Parameters:
    ///   - proto: the IP protocol number (6 for TCP, the only one pilottrace reassembles).
    ///   - seed: the spec's seed, 0 unless every tool that should agree uses another.
    ///   - base64: false gives the digest in lowercase hex instead (the spec's `--no-base64`, for troubleshooting).
    public static func v1(_ a: Endpoint, _ b: Endpoint, proto: UInt8 = tcp, seed: UInt16 = 0, base64: Bool = true) -> String {
        v1(a.address, a.port, b.address, b.port, proto: proto, seed: seed, base64: base64)
    }

    /// The Community ID v1 of a flow between two addresses, with ports (nil for protocols without them: only the
    /// addresses and the protocol are hashed then).
    public static func v1(
        _ sourceAddress: IPAddress, _ sourcePort: UInt16?, _ destinationAddress: IPAddress, _ destinationPort: UInt16?,
        proto: UInt8, seed: UInt16 = 0, base64: Bool = true
    ) -> String {
        var (sa, sp, da, dp) = (sourceAddress, sourcePort, destinationAddress, destinationPort)
        let sb = bytes(sa), db = bytes(da)
        if !lexicographicallyLess(sb, db) && (sb != db || (sp ?? 0) > (dp ?? 0)) {
            (sa, sp, da, dp) = (da, dp, sa, sp)
        }
        var input: [UInt8] = [UInt8(seed >> 8), UInt8(seed & 0xff)]
        input += bytes(sa)
        input += bytes(da)
        input += [proto, 0]
        if let sp, let dp { input += [UInt8(sp >> 8), UInt8(sp & 0xff), UInt8(dp >> 8), UInt8(dp & 0xff)] }
        let digest = SHA1.hash(input)
        return "1:" + (base64 ? encodeBase64(digest) : hex(digest))
    }

    /// The address in network byte order.
    static func bytes(_ a: IPAddress) -> [UInt8] {
        switch a {
        case .v4(let v): return (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) }
        case let .v6(hi, lo):
            return (0..<8).map { UInt8(truncatingIfNeeded: hi >> (56 - 8 * UInt64($0))) }
                + (0..<8).map { UInt8(truncatingIfNeeded: lo >> (56 - 8 * UInt64($0))) }
        }
    }

    static func lexicographicallyLess(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.lexicographicallyPrecedes(b) }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xf)]] }, as: UTF8.self)
    }

    /// RFC 4648 §4 base64, with padding.
    static func encodeBase64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let chunk = UInt32(bytes[i]) << 16 | (n > 1 ? UInt32(bytes[i + 1]) << 8 : 0) | (n > 2 ? UInt32(bytes[i + 2]) : 0)
            for k in 0..<4 {
                out.append(k <= n ? alphabet[Int((chunk >> (18 - 6 * UInt32(k))) & 0x3f)] : UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension ConnectionInfo {
    /// The connection's Community ID (v1, seed 0).
    public var communityID: String { CommunityID.v1(client, server) }
}

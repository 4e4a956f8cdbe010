import Testing

@testable import PilotTraceWire

/// Community ID v1 against the published vectors of the specification (corelight/community-id-spec, `baseline/`:
/// `baseline_deflt.json` with seed 0, `baseline_seed1.json` with seed 1, `baseline_nob64.json` without base64), and
/// SHA-1 against FIPS 180-2's examples.
@Suite struct CommunityIDTests {
    /// One flow of the baseline: protocol, addresses and ports as the spec's tables give them (for ICMP the ports are
    /// the type and code already mapped as Zeek maps them; nil for protocols without ports), and the three ids.
    struct Vector: Sendable, CustomStringConvertible {
        var proto: UInt8
        var source: String
        var sourcePort: UInt16?
        var destination: String
        var destinationPort: UInt16?
        var seed0: String
        var seed1: String
        var hex: String
        init(
            _ proto: UInt8, _ source: String, _ sourcePort: UInt16?, _ destination: String, _ destinationPort: UInt16?,
            _ seed0: String, _ seed1: String, _ hex: String
        ) {
            (self.proto, self.source, self.sourcePort, self.destination, self.destinationPort) = (proto, source, sourcePort, destination, destinationPort)
            (self.seed0, self.seed1, self.hex) = (seed0, seed1, hex)
        }
        var description: String { "proto \(proto) \(source) \(sourcePort.map(String.init) ?? "-") → \(destination) \(destinationPort.map(String.init) ?? "-")" }
    }

    static let vectors: [Vector] = [
        Vector(
            58, "fe80::200:86ff:fe05:80da", 135, "fe80::260:97ff:fe07:69ea", 136, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
            "1:7461f21af8cc7e58e0e81a69c26ddb8342cef136"),
        Vector(
            58, "fe80::260:97ff:fe07:69ea", 136, "fe80::200:86ff:fe05:80da", 135, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
            "1:7461f21af8cc7e58e0e81a69c26ddb8342cef136"),
        Vector(
            58, "fe80::260:97ff:fe07:69ea", 135, "fe80::200:86ff:fe05:80da", 136, "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
            "1:cdabf24ff71ecd0af57e6226602c189cc5db81c9"),
        Vector(
            58, "fe80::200:86ff:fe05:80da", 136, "fe80::260:97ff:fe07:69ea", 135, "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
            "1:cdabf24ff71ecd0af57e6226602c189cc5db81c9"),
        Vector(
            58, "3ffe:501:1800:2345::2", 3, "3ffe:507:0:1:200:86ff:fe05:80da", 0, "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=", "1:lVEtCZpYu84Xqaa++3lXFyuu2n4=",
            "1:d8e6d5060227dbca19be26d866164c06087b59d4"),
        Vector(
            58, "3ffe:501:410:0:2c0:dfff:fe47:33e", 1, "3ffe:507:0:1:200:86ff:fe05:80da", 4, "1:hLZd0XGWojozrvxqE0dWB1iM6R0=", "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8=",
            "1:84b65dd17196a23a33aefc6a13475607588ce91d"),
        Vector(
            58, "3ffe:507:0:1:200:86ff:fe05:80da", 128, "3ffe:501:0:1001::2", 129, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
            "1:f935be1ed2c7bd5d719c6855d65bfb5e826ba908"),
        Vector(
            58, "3ffe:501:0:1001::2", 129, "3ffe:507:0:1:200:86ff:fe05:80da", 128, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
            "1:f935be1ed2c7bd5d719c6855d65bfb5e826ba908"),
        Vector(
            58, "fe80::200:86ff:fe05:80da", 133, "ff02::2", 134, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8=",
            "1:84efac3781fe306e4c63ff2122b5cfa9ce19433d"),
        Vector(
            58, "fe80::260:97ff:fe07:69ea", 134, "ff02::1", 133, "1:pkvHqCL88/tg1k4cPigmZXUtL00=", "1:K/ee5UCqAMAQXDorP5nSa2CGLjc=",
            "1:a64bc7a822fcf3fb60d64e1c3e282665752d2f4d"),
        Vector(
            1, "192.168.0.89", 8, "192.168.0.1", 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
            "1:5f4b27617a60c22bfd4d9b6a83ae2c833527e839"),
        Vector(
            1, "192.168.0.1", 0, "192.168.0.89", 8, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
            "1:5f4b27617a60c22bfd4d9b6a83ae2c833527e839"),
        Vector(
            1, "10.0.0.1", 11, "10.0.0.2", 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM=", "1:XjUibYHaafLQ3pxQeiMI8g25q20=", "1:607c6d022ac21bfff43b391c540ba4a8a40df713"),
        Vector(
            6, "2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "2607:f8b0:400c:c03::1a", 25, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=", "1:fea15a78047e8057b52988cccd50ec32ffb0814e"),
        Vector(
            6, "2607:f8b0:400c:c03::1a", 25, "2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=", "1:fea15a78047e8057b52988cccd50ec32ffb0814e"),
        Vector(
            132, "192.168.170.8", 7, "192.168.170.56", 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
            "1:30fd84b5108050866f4f0e8cc491cb57b37b243b"),
        Vector(
            132, "192.168.170.56", 7, "192.168.170.8", 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
            "1:30fd84b5108050866f4f0e8cc491cb57b37b243b"),
        Vector(
            6, "128.232.110.120", 34855, "66.35.250.204", 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            "1:2d053da9994af81e45dca0e67afea6e4f3226eb8"),
        Vector(
            6, "66.35.250.204", 80, "128.232.110.120", 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            "1:2d053da9994af81e45dca0e67afea6e4f3226eb8"),
        Vector(
            17, "192.168.1.52", 54585, "8.8.8.8", 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
            "1:77f14fe445b7c22635bc29dd87095e451287a304"),
        Vector(
            17, "8.8.8.8", 53, "192.168.1.52", 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
            "1:77f14fe445b7c22635bc29dd87095e451287a304"),
        Vector(
            46, "10.1.12.1", nil, "10.1.12.2", nil, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI=",
            "1:28794b920a095bb89f513c934a0c957e4147ccac"),
        Vector(
            46, "10.1.12.2", nil, "10.1.12.1", nil, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI=",
            "1:28794b920a095bb89f513c934a0c957e4147ccac"),
    ]

    @Test(arguments: vectors)
    func matchesTheSpecBaseline(_ v: Vector) throws {
        let a = try #require(IPAddress(v.source)), b = try #require(IPAddress(v.destination))
        #expect(CommunityID.v1(a, v.sourcePort, b, v.destinationPort, proto: v.proto) == v.seed0)
        #expect(CommunityID.v1(a, v.sourcePort, b, v.destinationPort, proto: v.proto, seed: 1) == v.seed1)
        #expect(CommunityID.v1(a, v.sourcePort, b, v.destinationPort, proto: v.proto, base64: false) == v.hex)
    }

    @Test func aTCPConnectionHasTheSameIDBothWays() {
        let client = Endpoint(address: IPAddress("128.232.110.120")!, port: 34855)
        let server = Endpoint(address: IPAddress("66.35.250.204")!, port: 80)
        #expect(CommunityID.v1(client, server) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        #expect(CommunityID.v1(server, client) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        let info = ConnectionInfo(id: ConnectionID(rawValue: 1), client: client, server: server, roleEvidence: .syn, firstSeen: .zero)
        #expect(info.communityID == "1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
    }

    @Test func equalAddressesAreOrderedByPort() {
        // Loopback: both ends on 127.0.0.1, the smaller port first whichever end is the client.
        let a = Endpoint(address: IPAddress("127.0.0.1")!, port: 34506), b = Endpoint(address: IPAddress("127.0.0.1")!, port: 16789)
        #expect(CommunityID.v1(a, b) == CommunityID.v1(b, a))
    }

    @Test func sha1MatchesFIPSExamples() {
        func hex(_ s: String) -> String { CommunityID.hex(SHA1.hash(Array(s.utf8))) }
        #expect(hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(hex(String(repeating: "a", count: 1000)) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    @Test func base64PadsAsRFC4648() {
        #expect(CommunityID.encodeBase64(Array("f".utf8)) == "Zg==")
        #expect(CommunityID.encodeBase64(Array("fo".utf8)) == "Zm8=")
        #expect(CommunityID.encodeBase64(Array("foo".utf8)) == "Zm9v")
        #expect(CommunityID.encodeBase64(Array("foobar".utf8)) == "Zm9vYmFy")
    }
}

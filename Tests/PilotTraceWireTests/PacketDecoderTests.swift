import PilotTraceTestSupport
import Testing

@testable import PilotTraceWire

@Suite struct PacketDecoderTests {
    let segment = Frame.tcp(src: 40000, dst: 1883, seq: 1000, ack: 7, flags: [.ack, .psh], payload: Array("hello".utf8))
    var v4: [UInt8] { Frame.ipv4(payload: segment) }
    let client = Endpoint(address: IPAddress("10.0.0.1")!, port: 40000)
    let server = Endpoint(address: IPAddress("10.0.0.2")!, port: 1883)

    func expectHello(_ d: Decoded, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(d.kind == "tcp", sourceLocation: sourceLocation)
        #expect(d.payload == Array("hello".utf8), sourceLocation: sourceLocation)
        #expect(d.seq == 1000, sourceLocation: sourceLocation)
        #expect(d.flags == [.ack, .psh], sourceLocation: sourceLocation)
    }

    @Test func ethernetIPv4() {
        let d = decode(Frame.ethernet(type: 0x0800, payload: v4), link: .ethernet)
        expectHello(d)
        #expect(d.src == client)
        #expect(d.dst == server)
        #expect(d.wireLength == 5)
    }

    @Test(arguments: [[UInt16(0x8100)], [0x88A8, 0x8100], [0x9100, 0x8100, 0x8100]])
    func ethernetWithStackedVLANTags(tags: [UInt16]) {
        expectHello(decode(Frame.ethernet(type: 0x0800, vlanTags: tags, payload: v4), link: .ethernet))
    }

    @Test func ethernetPaddingIsNotPayload() {
        // A minimum-size Ethernet frame pads a short IP packet; the IP total length tells where it ends.
        let d = decode(Frame.ethernet(type: 0x0800, payload: v4 + [0, 0, 0, 0, 0, 0]), link: .ethernet)
        #expect(d.payload == Array("hello".utf8))
    }

    @Test func ethernetNonIPAndTruncatedTags() {
        #expect(decode(Frame.ethernet(type: 0x0806, payload: [1, 2, 3]), link: .ethernet).kind == "notIP")
        let cut = Array(Frame.ethernet(type: 0x0800, vlanTags: [0x8100], payload: [])[0..<15])
        #expect(decode(cut, link: .ethernet).malformed == MalformedPacket(reason: .truncatedLinkHeader, offset: 15))
        #expect(decode([1, 2, 3], link: .ethernet).malformed?.reason == .truncatedLinkHeader)
    }

    @Test func linuxCookedV1AndV2() {
        expectHello(decode(Frame.sll(protocol: 0x0800, payload: v4), link: .linuxSLL))
        expectHello(decode(Frame.sll2(protocol: 0x0800, payload: v4), link: .linuxSLL2))
        #expect(decode(Frame.sll2(protocol: 0x0806, payload: []), link: .linuxSLL2).kind == "notIP")
    }

    @Test func bsdLoopbackInEitherByteOrder() {
        expectHello(decode([2, 0, 0, 0] + v4, link: .null))  // little-endian writer
        expectHello(decode([0, 0, 0, 2] + v4, link: .null))  // big-endian writer
        expectHello(decode([0, 0, 0, 2] + v4, link: .loop))
        let v6 = Frame.ipv6(payload: segment)
        for family: UInt8 in [10, 24, 28, 30] { expectHello(decode([family, 0, 0, 0] + v6, link: .null)) }
    }

    @Test func rawIPLinkTypes() {
        let v6 = Frame.ipv6(payload: segment)
        for link in [LinkType.raw, .rawBSD12, .rawBSD14] {
            expectHello(decode(v4, link: link))
            expectHello(decode(v6, link: link))
        }
        expectHello(decode(v4, link: .ipv4))
        expectHello(decode(v6, link: .ipv6))
        #expect(decode(v6, link: .ipv4).malformed?.reason == .badIPVersion)
        #expect(decode(v4, link: LinkType(rawValue: 147)).kind == "unsupported")
    }

    @Test func ipv4OptionsAreSkipped() {
        let packet = Frame.ipv4(options: [0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00], payload: segment)  // router alert + NOPs
        expectHello(decode(packet, link: .ipv4))
    }

    @Test func ipv4HeaderProblemsAreMalformedWithOffsets() {
        var bad = v4
        bad[0] = 0x44  // IHL 16 bytes
        #expect(decode(bad, link: .ipv4).malformed == MalformedPacket(reason: .badIPHeaderLength, offset: 0))
        #expect(decode(Array(v4[0..<12]), link: .ipv4).malformed == MalformedPacket(reason: .truncatedIPHeader, offset: 12))
        #expect(decode(Frame.ipv4(proto: 17, payload: [1, 2, 3, 4, 5, 6, 7, 8]), link: .ipv4).kind == "ip17")
        let shortTCP = Frame.ipv4(payload: Array(segment[0..<10]))
        #expect(decode(shortTCP, link: .ipv4).malformed == MalformedPacket(reason: .truncatedTCPHeader, offset: 30))
        var badOffset = v4
        badOffset[20 + 12] = 0x30  // TCP data offset 12 bytes
        #expect(decode(badOffset, link: .ipv4).malformed == MalformedPacket(reason: .badTCPHeaderLength, offset: 32))
    }

    @Test func ipv4FragmentsReassembleInAnyOrderFirstCopyWins() {
        let datagram = segment + [UInt8](repeating: 0x41, count: 30)  // 20 + 5 + 30 = 55 bytes of TCP
        var decoder = PacketDecoder()
        let f1 = Frame.ipv4(id: 9, fragment: (0, true), payload: Array(datagram[0..<24]))
        let f2 = Frame.ipv4(id: 9, fragment: (24, true), payload: Array(datagram[24..<48]))
        let f3 = Frame.ipv4(id: 9, fragment: (48, false), payload: Array(datagram[48...]))
        // A conflicting copy of the middle piece arrives first: it is kept.
        var evil = Array(datagram[24..<48])
        evil[5] = 0x5A
        let f2evil = Frame.ipv4(id: 9, fragment: (24, true), payload: evil)
        #expect(decode(&decoder, f3, link: .ipv4).kind == "fragment")
        #expect(decode(&decoder, f2evil, link: .ipv4).kind == "fragment")
        #expect(decode(&decoder, f2, link: .ipv4).kind == "fragment")
        let d = decode(&decoder, f1, link: .ipv4)
        #expect(d.kind == "tcp")
        var expected = Array(datagram[20...])
        expected[24 + 5 - 20] = 0x5A
        #expect(d.payload == expected)
        #expect(decoder.pendingFragmentedDatagrams == 0)
    }

    @Test func fragmentsBeyond65535AreMalformed() {
        let f = Frame.ipv4(id: 3, fragment: (65528, false), payload: [UInt8](repeating: 0, count: 16))
        #expect(decode(f, link: .ipv4).malformed?.reason == .badFragment)
    }

    @Test func ipv6ExtensionHeadersAreSkipped() {
        // hop-by-hop (8 bytes) → destination options (16 bytes) → routing (8 bytes) → TCP
        let hop: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0]
        let dest: [UInt8] = [43, 1, 1, 12] + [UInt8](repeating: 0, count: 12)
        let routing: [UInt8] = [6, 0, 0, 0, 0, 0, 0, 0]
        let d = decode(Frame.ipv6(first: 0, extensions: hop + dest + routing, payload: segment), link: .ipv6)
        expectHello(d)
        #expect(d.src == Endpoint(address: IPAddress("2001:db8::1")!, port: 40000))
    }

    @Test func ipv6AtomicAndRealFragments() {
        let atomic: [UInt8] = [6, 0, 0, 0, 0, 0, 0, 7]
        expectHello(decode(Frame.ipv6(first: 44, extensions: atomic, payload: segment), link: .ipv6))

        var decoder = PacketDecoder()
        let first: [UInt8] = [6, 0, 0x00, 0x01, 0, 0, 0, 42]  // offset 0, more
        let second: [UInt8] = [6, 0, 0x00, 0x10, 0, 0, 0, 42]  // offset 16, last
        #expect(decode(&decoder, Frame.ipv6(first: 44, extensions: second, payload: Array(segment[16...])), link: .ipv6).kind == "fragment")
        expectHello(decode(&decoder, Frame.ipv6(first: 44, extensions: first, payload: Array(segment[0..<16])), link: .ipv6))
    }

    @Test func tcpOptionsAreRead() {
        let syn = Frame.tcp(src: 1, dst: 2, seq: 5, flags: .syn, options: [2, 4, 0x05, 0xB4, 1, 3, 3, 7])
        let d = decode(Frame.ipv4(payload: syn), link: .ipv4)
        #expect(d.mss == 1460)
        #expect(d.windowScale == 7)
        #expect(d.payload.isEmpty)
    }

    @Test func snapshotLengthCutKeepsWireLength() {
        let frame = Frame.ethernet(type: 0x0800, payload: v4)
        let d = decode(Array(frame[0..<(frame.count - 3)]), link: .ethernet, originalLength: frame.count)
        #expect(d.payload == Array("he".utf8))
        #expect(d.wireLength == 5)
    }

    @Test func tcpHeaderCutInsideOptionsStillDecodes() {
        let syn = Frame.tcp(src: 1, dst: 2, seq: 5, flags: .syn, options: [2, 4, 0x05, 0xB4, 1, 3, 3, 7])
        let packet = Frame.ipv4(payload: syn)
        let d = decode(Array(packet[0..<42]), link: .ipv4, originalLength: packet.count)
        #expect(d.kind == "tcp")
        #expect(d.seq == 5)
    }
}

@Suite struct PacketDecoderRobustnessTests {
    /// Random and mutated frames on every link type: every outcome is a value, nothing traps.
    @Test func randomAndMutatedFramesNeverCrash() {
        var rng = SplitMix64(seed: 7)
        let links: [LinkType] = [.ethernet, .linuxSLL, .linuxSLL2, .null, .loop, .raw, .ipv4, .ipv6, .rawBSD12]
        let tcp = Frame.tcp(src: 1, dst: 2, seq: 3, flags: .ack, options: [2, 4, 5, 0xb4], payload: Array("payload".utf8))
        let seeds: [[UInt8]] = [
            Frame.ethernet(type: 0x0800, vlanTags: [0x8100], payload: Frame.ipv4(fragment: (8, true), payload: tcp)),
            Frame.ethernet(type: 0x86DD, payload: Frame.ipv6(first: 0, extensions: [44, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 1, 0, 0, 0, 9], payload: tcp)),
            Frame.sll2(protocol: 0x0800, payload: Frame.ipv4(options: [1, 1, 1, 1], payload: tcp)),
        ]
        var decoder = PacketDecoder()
        var outcomes: [String: Int] = [:]
        for round in 0..<30_000 {
            var bytes: [UInt8]
            if round % 3 == 0 {
                bytes = (0..<Int.random(in: 0...120, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = seeds.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...6, using: &rng) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                if Bool.random(using: &rng) { bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng)) }
            }
            let link = round % 3 == 0 ? links.randomElement(using: &rng)! : (round % 3 == 1 ? .ethernet : links.randomElement(using: &rng)!)
            let d = decode(&decoder, bytes, link: link, originalLength: bytes.count + Int.random(in: 0...50, using: &rng))
            outcomes[d.kind, default: 0] += 1
            if let p = d.payload.first { _ = p }
        }
        // The mutations reach every kind of outcome, so the test exercises the error paths.
        #expect(outcomes["tcp", default: 0] > 100)
        #expect(outcomes["malformed", default: 0] > 100)
        #expect(outcomes["fragment", default: 0] > 0)
        #expect(decoder.pendingFragmentedDatagrams <= 4096)
    }
}

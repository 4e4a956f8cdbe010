import PilotTraceTestSupport
import Testing

@testable import PilotTraceWire

/// The synthesiser's two layouts (the recorder's raw IP with complete headers, the lab's Ethernet with minimal
/// ones), its bare ACK and the FIN, FIN-ACK, ACK close, read back through the decoder and the pipeline. Reading the
/// recorded layout through libpcap and tshark is in PilotTraceProxyTests' `TCPFrameSynthesizerTests`.
struct TCPFrameSynthesizerFormatTests {
    let client = Endpoint(address: IPAddress("10.0.0.10")!, port: 50_000)
    let server = Endpoint(address: IPAddress("10.1.0.1")!, port: 1883)

    func u16(_ f: [UInt8], _ i: Int) -> UInt16 { UInt16(f[i]) << 8 | UInt16(f[i + 1]) }
    func u32(_ f: [UInt8], _ i: Int) -> UInt32 { f[i..<i + 4].reduce(0) { $0 << 8 | UInt32($1) } }

    /// RFC 1071, written again here so the test does not trust the code under test: the sum of a correct header
    /// (checksum included) folds to 0xFFFF.
    func sumFolds(_ words: [UInt8]) -> Bool {
        var sum: UInt32 = 0
        for i in stride(from: 0, to: words.count, by: 2) { sum += UInt32(words[i]) << 8 | UInt32(i + 1 < words.count ? words[i + 1] : 0) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return sum == 0xFFFF
    }

    @Test func generatedFramesAreEthernetWithMinimalHeaders() throws {
        var s = TCPFrameSynthesizer(
            client: client, server: server, initialSequence: (client: 7, server: 9), maximumSegmentSize: 100,
            format: .generated)
        let frames = s.handshake() + s.data([UInt8](repeating: 0x30, count: 150), from: .toServer)
        #expect(frames.map(\.count) == [54, 54, 54, 154, 104])
        for f in frames {
            #expect(f[0..<12].allSatisfy { $0 == 0 })  // zero MAC addresses
            #expect(u16(f, 12) == 0x0800)  // IPv4
            #expect(f[14] == 0x45 && u16(f, 16) == UInt16(f.count - 14))
            #expect(u16(f, 18) == 0 && u16(f, 20) == 0)  // no identification, no DF
            #expect(f[22] == 64 && f[23] == 6)
            #expect(u16(f, 24) == 0 && u16(f, 50) == 0)  // no checksums
            #expect(f[46] == 0x50)  // no options, even on the SYNs
        }
        let syn = decode(frames[0], link: TCPFrameSynthesizer.Format.generated.link.linkType)
        #expect(syn.kind == "tcp" && syn.flags == [.syn] && syn.seq == 7 && syn.mss == nil)
        #expect(syn.src == client && syn.dst == server)
        let last = decode(frames[4], link: .ethernet)
        #expect(last.flags == [.ack, .psh] && last.seq == 108 && last.payload.count == 50)
    }

    @Test(arguments: [false, true]) func completeHeadersCarryChecksumsAndOptions(ipv6: Bool) throws {
        let (c, sv) =
            ipv6
            ? (Endpoint(address: IPAddress("2001:db8::10")!, port: 50_000), Endpoint(address: IPAddress("2001:db8::1")!, port: 1883))
            : (client, server)
        for link in [TCPFrameSynthesizer.Format.Link.rawIP, .ethernet] {
            var s = TCPFrameSynthesizer(client: c, server: sv, initialSequence: (client: 1, server: 2), format: .init(link: link, headers: .complete))
            let frames = s.handshake() + s.data(Array("odd length".utf8) + [1], from: .toClient) + s.close(serverFirst: false)
            let ip = link == .ethernet ? 14 : 0
            for f in frames {
                if link == .ethernet { #expect(u16(f, 12) == (ipv6 ? 0x86DD : 0x0800)) }
                let tcp = ip + (ipv6 ? 40 : 20)
                let (addresses, length) = ipv6 ? (Array(f[(ip + 8)..<(ip + 40)]), f.count - tcp) : (Array(f[(ip + 12)..<(ip + 20)]), f.count - tcp)
                if !ipv6 {
                    #expect(sumFolds(Array(f[ip..<tcp])), "IPv4 header checksum")
                    #expect(f[ip + 6] == 0x40)  // DF
                }
                let pseudo = addresses + [0, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 6]
                #expect(sumFolds(pseudo + Array(f[tcp...])), "TCP checksum")
            }
            let syn = decode(frames[0], link: link.linkType)
            #expect(syn.kind == "tcp" && syn.mss == (ipv6 ? 1440 : 1460) && syn.windowScale == 7)
            if !ipv6 {
                // Identification counts up per direction from 1: client SYN 1, ACK 2; server SYN-ACK 1, data 2.
                #expect([0, 2, 1, 3].map { u16(frames[$0], ip + 4) } == [1, 2, 1, 2])
            }
        }
    }

    @Test func aBareACKAndTheThreeFrameClose() {
        var s = TCPFrameSynthesizer(client: client, server: server, initialSequence: (client: 100, server: 900), format: .generated)
        _ = s.handshake()
        _ = s.data([1, 2, 3], from: .toServer)
        func numbers(_ f: [UInt8]) -> (UInt32, UInt32, UInt8) { (u32(f, 38), u32(f, 42), f[47]) }
        let ack = s.ack(from: .toClient)
        #expect(ack.count == 1 && numbers(ack[0]) == (901, 104, 0x10))
        let close = s.fin(from: .toServer, peerAcknowledges: false) + s.fin(from: .toClient, peerAcknowledges: false) + s.ack(from: .toServer)
        #expect(close.map(numbers).map(\.2) == [0x11, 0x11, 0x10])  // FIN, FIN-ACK, ACK
        #expect(numbers(close[0]) == (104, 901, 0x11))
        #expect(numbers(close[1]) == (901, 105, 0x11))  // acknowledges the client's FIN
        #expect(numbers(close[2]) == (105, 902, 0x10))
        #expect(s.isClosed)
        var r = TCPFrameSynthesizer(client: client, server: server, initialSequence: (client: 1, server: 2), format: .generated)
        _ = r.handshake()
        #expect(r.rst(from: .toServer).count == 1)
        #expect(r.ack(from: .toClient).isEmpty)  // nothing after a reset
    }

    @Test func generatedConversationReassembles() throws {
        var s = TCPFrameSynthesizer(
            client: client, server: server, initialSequence: (client: UInt32.max - 10, server: 5), maximumSegmentSize: 1448,
            format: .generated)
        var rng = SplitMix64(seed: 3)
        let up = (0..<4000).map { _ in rng.byte() }, down = (0..<700).map { _ in rng.byte() }
        var frames = s.handshake()
        frames += s.data(up, from: .toServer) + s.ack(from: .toClient)
        frames += s.data(down, from: .toClient) + s.ack(from: .toServer)
        frames += s.fin(from: .toServer, peerAcknowledges: false) + s.fin(from: .toClient, peerAcknowledges: false) + s.ack(from: .toServer)
        let r = Reassembled(frames, linkType: .ethernet)
        #expect(r.counters.malformed == 0 && r.gaps == 0)
        #expect(r.bytes.count == 1 && r.bytes.values.first == [.toServer: up, .toClient: down])
        #expect(r.closed.count == 1)
        let c = try #require(r.closed.first)
        #expect(c.handshakeComplete && c.closeReason == .fin)
        #expect(c.toServer.retransmissions == 0 && c.toClient.retransmissions == 0)
    }
}

import Foundation
import PilotTraceCapture
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceProxy

/// The synthesised frames read back through pilottrace's own reader and reassembler, and through tshark.
struct TCPFrameSynthesizerTests {
    let client = Endpoint(address: IPAddress("10.0.0.2")!, port: 50_123)
    let server = Endpoint(address: IPAddress("10.0.0.1")!, port: 8080)

    /// A conversation: handshake, a request in three segments, a response, FIN from the client, FIN back.
    func conversation(
        client: Endpoint, server: Endpoint, isn: (UInt32, UInt32), format: TCPFrameSynthesizer.Format = .recorded
    )
        -> (frames: [[UInt8]], up: [UInt8], down: [UInt8])
    {
        var s = TCPFrameSynthesizer(
            client: client, server: server, initialSequence: (client: isn.0, server: isn.1), maximumSegmentSize: 100,
            format: format)
        var rng = SplitMix64(seed: 7)
        let up = (0..<250).map { _ in rng.byte() }, down = (0..<99).map { _ in rng.byte() }
        var frames = s.handshake()
        frames += s.data(up, from: .toServer)
        frames += s.data(down, from: .toClient)
        frames += s.fin(from: .toServer)
        frames += s.fin(from: .toClient)
        #expect(s.isClosed)
        return (frames, up, down)
    }

    func check(client: Endpoint, server: Endpoint, isn: (UInt32, UInt32)) throws {
        let (frames, up, down) = conversation(client: client, server: server, isn: isn)
        // 3 handshake + 3 request segments + 1 response + (FIN + ACK) × 2
        #expect(frames.count == 11)
        let r = Reassembled(frames, linkType: .raw)
        #expect(r.counters.tcpSegments == 11)
        #expect(r.counters.malformed == 0)
        #expect(r.gaps == 0, "gap in synthesised stream")
        #expect(r.bytes.count == 1 && r.bytes.values.first == [.toServer: up, .toClient: down])
        let s = try #require(r.closed.first)
        #expect(s.info.client == client)
        #expect(s.info.server == server)
        #expect(s.handshakeComplete)
        #expect(s.closeReason == .fin)
        #expect(s.toServer.retransmissions == 0 && s.toClient.retransmissions == 0)
        #expect(s.toServer.payloadBytes == 250 && s.toClient.payloadBytes == 99)
    }

    @Test func framesReassembleToTheRelayedBytesOverIPv4() throws {
        try check(client: client, server: server, isn: (1000, 500_000))
    }

    @Test func sequenceNumbersWrapAround() throws {
        try check(client: client, server: server, isn: (UInt32.max - 120, UInt32.max - 5))
    }

    @Test func framesReassembleOverIPv6() throws {
        try check(client: Endpoint(address: IPAddress("::1")!, port: 40_000), server: Endpoint(address: IPAddress("::1")!, port: 8080), isn: (7, 9))
    }

    @Test func sequenceAndAcknowledgmentNumbersFollowTheBytes() {
        var s = TCPFrameSynthesizer(client: client, server: server, initialSequence: (client: 100, server: 900))
        let hs = s.handshake()
        func seqAck(_ f: [UInt8]) -> (UInt32, UInt32, UInt8) {
            func u32(_ i: Int) -> UInt32 { f[i..<i + 4].reduce(0) { $0 << 8 | UInt32($1) } }
            return (u32(24), u32(28), f[33])
        }
        #expect(seqAck(hs[0]) == (100, 0, 0x02))  // SYN
        #expect(seqAck(hs[1]) == (900, 101, 0x12))  // SYN-ACK
        #expect(seqAck(hs[2]) == (101, 901, 0x10))  // ACK
        let d = s.data([UInt8](repeating: 1, count: 3000), from: .toServer)
        #expect(d.count == 3)  // 1460 + 1460 + 80
        #expect(d.map { $0.count - 40 } == [1460, 1460, 80])
        #expect(d.map { seqAck($0).0 } == [101, 1561, 3021])
        #expect(seqAck(d[2]).2 == 0x18)  // PSH on the last
        let r = s.data([2, 3], from: .toClient)
        #expect(seqAck(r[0]) == (901, 3101, 0x18))
        let rst = s.rst(from: .toServer)
        #expect(seqAck(rst[0]) == (3101, 903, 0x14))
        #expect(s.data([1], from: .toClient).isEmpty)  // nothing after a reset
    }

    @Test func closeSendsTheOpenHalvesFINsInTheOrderAsked() {
        func flags(_ frames: [[UInt8]]) -> [UInt8] { frames.map { $0[33] } }
        var s = TCPFrameSynthesizer(client: client, server: server, initialSequence: (client: 1, server: 2))
        _ = s.handshake()
        let serverFirst = s.close(serverFirst: true)
        #expect(flags(serverFirst) == [0x11, 0x10, 0x11, 0x10])  // server FIN, ACK, client FIN, ACK
        func source(_ f: [UInt8]) -> [UInt8] { Array(f[12..<16]) }  // IPv4 source address
        let (srv, cli): ([UInt8], [UInt8]) = ([10, 0, 0, 1], [10, 0, 0, 2])
        #expect(serverFirst.map(source) == [srv, cli, cli, srv])
        #expect(s.isClosed)
        var t = TCPFrameSynthesizer(client: client, server: server, initialSequence: (client: 1, server: 2))
        _ = t.handshake()
        _ = t.fin(from: .toServer)
        #expect(t.close(serverFirst: false).count == 2)  // the client's half was closed: only the server's FIN and its ACK
    }

    @Test func aResetEndsTheConnectionAsRST() {
        var s = TCPFrameSynthesizer(client: client, server: server, initialSequence: (client: 1, server: 2))
        var frames = s.handshake()
        frames += s.data(Array("GET / HT".utf8), from: .toServer)
        frames += s.rst(from: .toServer)
        #expect(Reassembled(frames, linkType: .raw).closed.first?.closeReason == .rst)
    }

    @Test func pcapngOfSynthesisedFramesReadsBackAndTsharkAgrees() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-synth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.pcapng").path
        let (frames, up, _) = conversation(client: client, server: server, isn: (42, 4242))
        let w = try PcapngWriter(path: path, linkType: .raw, application: "pilottrace tests")
        for (i, f) in frames.enumerated() {
            try f.withUnsafeBytes { try w.write($0, originalLength: f.count, at: Timestamp(seconds: 1_800_000_000, nanoseconds: Int64(i) * 1_000_123)) }
        }
        try w.close(end: Timestamp(seconds: 1_800_000_001, nanoseconds: 0))

        // Our reader: the same frames, times to the nanosecond.
        let reader = try CaptureFileReader(path: path)
        var read: [[UInt8]] = [], times: [Timestamp] = []
        try reader.forEach { r in
            read.append(Array(r.data))
            times.append(r.timestamp)
        }
        #expect(reader.format == .pcapng)
        #expect(read == frames)
        #expect(times[1] == Timestamp(seconds: 1_800_000_000, nanoseconds: 1_000_123))

        let tshark = try #require(TestPaths.which("tshark"), "make test installs tshark (scripts/bootstrap)")
        // tshark: every checksum good, no TCP analysis flags (retransmission, lost segment, ACKed unseen…).
        let fields = try runProcess(
            tshark,
            [
                "-r", path, "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-T", "fields",
                "-e", "tcp.seq", "-e", "tcp.checksum.status", "-e", "ip.checksum.status", "-e", "tcp.analysis.flags",
                "-e", "tcp.len",
            ])
        #expect(fields.status == 0)
        let rows = fields.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.count == frames.count)
        for row in rows {
            #expect(row[1] == "1", "TCP checksum status \(row)")  // 1 = good (0 bad, 2 unverified)
            #expect(row[2] == "1", "IP checksum status \(row)")
            #expect(row[3].isEmpty, "TCP analysis flags \(row)")
        }
        #expect(rows.map { Int($0[4]) ?? -1 }.reduce(0, +) == up.count + 99)
        let conv = try runProcess(tshark, ["-r", path, "-q", "-z", "conv,tcp"])
        #expect(conv.stdout.contains("10.0.0.2:50123") && conv.stdout.contains("10.0.0.1:8080"))
    }

    /// The lab generator's layout (Ethernet, minimal headers: zero checksums, no SYN options) as tshark reads it: the
    /// same clean conversation, no TCP analysis flags.
    @Test func tsharkReadsTheGeneratedLayoutAsACleanConversation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-synth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("g.pcapng").path
        let (frames, up, down) = conversation(client: client, server: server, isn: (UInt32.max - 3, 77), format: .generated)
        let w = try PcapngWriter(path: path, linkType: TCPFrameSynthesizer.Format.generated.link.linkType, application: "pilottrace tests")
        for (i, f) in frames.enumerated() {
            try f.withUnsafeBytes { try w.write($0, originalLength: f.count, at: Timestamp(seconds: 1_800_000_000, nanoseconds: Int64(i) * 1_000_000)) }
        }
        try w.close(end: Timestamp(seconds: 1_800_000_001, nanoseconds: 0))

        let tshark = try #require(TestPaths.which("tshark"), "make test installs tshark (scripts/bootstrap)")
        let fields = try runProcess(tshark, ["-r", path, "-T", "fields", "-e", "eth.type", "-e", "tcp.analysis.flags", "-e", "tcp.len"])
        #expect(fields.status == 0)
        let rows = fields.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.count == frames.count)
        for row in rows {
            #expect(row[0] == "0x0800", "EtherType \(row)")
            #expect(row[1].isEmpty, "TCP analysis flags \(row)")
        }
        #expect(rows.map { Int($0[2]) ?? -1 }.reduce(0, +) == up.count + down.count)
    }
}

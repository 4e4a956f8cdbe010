import PilotTraceTestSupport
import Testing

@testable import PilotTraceWire

/// Drives a reassembler with hand-made segments and collects what it says.
struct ReassemblyHarness: ~Copyable {
    var reassembler: TCPReassembler
    var events: [StreamEvent] = []
    let client = Endpoint(address: IPAddress("192.0.2.1")!, port: 50000)
    let server = Endpoint(address: IPAddress("192.0.2.2")!, port: 1883)
    var clock: Int64 = 1_000_000_000

    init(configuration: TCPReassembler.Configuration = .init()) {
        reassembler = TCPReassembler(configuration: configuration)
    }

    mutating func send(
        _ dir: Direction, seq: UInt32, ack: UInt32 = 0, flags: TCPFlags = .ack, _ payload: [UInt8] = [],
        wireLength: Int? = nil, from: Endpoint? = nil, to: Endpoint? = nil, at seconds: Double? = nil,
        frame: CaptureFrame = .unknown
    ) {
        if let seconds { clock = Int64(seconds * 1e9) } else { clock += 1_000_000 }
        let (s, d) = dir == .toServer ? (client, server) : (server, client)
        payload.withUnsafeBytes { raw in
            let seg = TCPSegment(
                source: from ?? s, destination: to ?? d, sequence: seq, acknowledgment: ack, flags: flags,
                window: 1000, payload: raw, wireLength: wireLength ?? payload.count)
            reassembler.process(seg, at: Timestamp(nanoseconds: clock), frame: frame, frameLength: 54 + payload.count, into: &events)
        }
    }

    mutating func handshake(clientISN: UInt32 = 100, serverISN: UInt32 = 5000) {
        send(.toServer, seq: clientISN, flags: .syn)
        send(.toClient, seq: serverISN, ack: clientISN &+ 1, flags: [.syn, .ack])
        send(.toServer, seq: clientISN &+ 1, ack: serverISN &+ 1)
    }

    mutating func finish() { reassembler.finish(into: &events) }

    /// The bytes delivered in `dir` (gaps as `nil` runs are left out) and the gaps' lengths.
    func stream(_ dir: Direction, connection: UInt64 = 1) -> (bytes: [UInt8], gaps: [Int]) {
        var bytes: [UInt8] = [], gaps: [Int] = []
        for e in events {
            switch e {
            case let .data(id, d, b, _, _) where id.rawValue == connection && d == dir: bytes += b
            case let .gap(id, d, n, _) where id.rawValue == connection && d == dir: gaps.append(n)
            default: break
            }
        }
        return (bytes, gaps)
    }

    var summaries: [ConnectionSummary] { events.compactMap { if case .closed(let s) = $0 { s } else { nil } } }
    var conflicts: Int { events.filter { if case .conflict = $0 { true } else { false } }.count }
    func ends(_ dir: Direction) -> Int { events.filter { if case .end(_, dir, _) = $0 { true } else { false } }.count }
}

@Suite struct TCPReassemblerTests {
    let message = Array("GET /manage/api/v1/workspaces/current HTTP/1.1\r\nHost: cloud\r\n\r\n".utf8)

    @Test func inOrderStreamAndCleanClose() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, message)
        h.send(.toClient, seq: 5001, ack: 101 + UInt32(message.count), Array("HTTP/1.1 200 OK\r\n\r\n".utf8))
        h.send(.toServer, seq: 101 + UInt32(message.count), flags: [.fin, .ack])
        h.send(.toClient, seq: 5020, flags: [.fin, .ack])
        h.send(.toServer, seq: 102 + UInt32(message.count), ack: 5021)
        h.finish()
        #expect(h.stream(.toServer).bytes == message)
        #expect(h.stream(.toClient).bytes == Array("HTTP/1.1 200 OK\r\n\r\n".utf8))
        #expect(h.ends(.toServer) == 1 && h.ends(.toClient) == 1)
        let s = try! #require(h.summaries.first)
        #expect(s.handshakeComplete)
        #expect(s.closeReason == .fin)
        #expect(s.info.roleEvidence == .syn)
        #expect(s.toServer.packets == 5 && s.toClient.packets == 3)
        #expect(s.completeness == 31)
        #expect(s.toServer.gaps == 0 && s.toServer.retransmissions == 0)
    }

    /// Cuts a stream into random segments, reorders, duplicates and overlaps them: the exact stream comes back.
    @Test(arguments: [UInt32(100), 0xFFFF_FF00])  // the second ISN wraps the sequence space
    func randomSegmentationReorderDuplicationAndOverlap(isn: UInt32) {
        var rng = SplitMix64(seed: 0x5EED_0000 &+ UInt64(isn))
        for round in 0..<300 {
            let length = Int.random(in: 1...6000, using: &rng)
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var segments: [(Int, Int)] = []  // offset, length
            var at = 0
            while at < length {
                let n = min(length - at, Int.random(in: 1...700, using: &rng))
                segments.append((at, n))
                at += n
            }
            // Overlapping copies of random ranges, and exact duplicates.
            for _ in 0..<Int.random(in: 0...6, using: &rng) {
                let a = Int.random(in: 0..<length, using: &rng)
                segments.append((a, Int.random(in: 1...(length - a), using: &rng)))
            }
            for _ in 0..<Int.random(in: 0...4, using: &rng) { segments.append(segments.randomElement(using: &rng)!) }
            segments.shuffle(using: &rng)
            var h = ReassemblyHarness()
            h.handshake(clientISN: isn)
            for (offset, n) in segments {
                h.send(.toServer, seq: isn &+ 1 &+ UInt32(offset), Array(data[offset..<(offset + n)]))
            }
            h.send(.toServer, seq: isn &+ 1 &+ UInt32(length), flags: [.fin, .ack])
            h.finish()
            let (bytes, gaps) = h.stream(.toServer)
            #expect(gaps.isEmpty, "round \(round)")
            #expect(bytes == data, "round \(round): \(bytes.count) of \(data.count) bytes")
            #expect(h.conflicts == 0, "round \(round)")
            #expect(h.ends(.toServer) == 1, "round \(round)")
            #expect(h.reassembler.bufferedBytes == 0)
        }
    }

    @Test func conflictingOverlapKeepsTheFirstCopyAndIsReported() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("AAAAAAAAAA".utf8))
        h.send(.toServer, seq: 105, Array("BBBBBBBBBB".utf8))  // overlaps 6 delivered bytes, conflicting
        // Out of order, then a conflicting copy of the buffered piece.
        h.send(.toServer, seq: 130, Array("CCCC".utf8))
        h.send(.toServer, seq: 128, Array("xxDDDD".utf8))
        h.send(.toServer, seq: 115, Array("0123456789abc".utf8))
        h.finish()
        #expect(h.stream(.toServer).bytes == Array("AAAAAAAAAABBBB0123456789abcxxCCCC".utf8))
        #expect(h.conflicts == 2)
        #expect(h.summaries[0].toServer.conflicts == 2)
        #expect(h.summaries[0].toServer.overlaps == 2)
    }

    @Test("After a direction's FIN its conflict window is freed: a later retransmission is counted, not compared")
    func conflictWindowIsFreedAtTheFIN() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, message)
        // Before the FIN a conflicting copy is reported.
        h.send(.toServer, seq: 101, Array(repeating: UInt8(ascii: "X"), count: 8))
        #expect(h.conflicts == 1)
        h.send(.toServer, seq: 101 + UInt32(message.count), flags: [.fin, .ack])
        #expect(h.ends(.toServer) == 1)
        // After it, the direction keeps no bytes: the same conflicting copy is only a retransmission.
        h.send(.toServer, seq: 101, Array(repeating: UInt8(ascii: "X"), count: 8))
        h.finish()
        #expect(h.conflicts == 1)
        #expect(h.stream(.toServer).bytes == message)
        #expect(h.summaries[0].toServer.retransmissions == 2)
        #expect(h.summaries[0].toServer.conflicts == 1)
    }

    @Test("Once the peer acknowledges every delivered byte the window is freed; a partial acknowledgment keeps it")
    func conflictWindowIsFreedAtTheFullAcknowledgment() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, message)
        // The server acknowledged only part of the message: the window stays, a conflicting copy is reported.
        h.send(.toClient, seq: 5001, ack: 105)
        h.send(.toServer, seq: 101, Array(repeating: UInt8(ascii: "X"), count: 8))
        #expect(h.conflicts == 1)
        // It acknowledges all of it: the same conflicting copy is only counted as a retransmission.
        h.send(.toClient, seq: 5001, ack: 101 + UInt32(message.count))
        h.send(.toServer, seq: 101, Array(repeating: UInt8(ascii: "X"), count: 8))
        #expect(h.conflicts == 1)
        // New bytes start a new window, compared again until they are acknowledged.
        let more = Array("more bytes".utf8)
        h.send(.toServer, seq: 101 + UInt32(message.count), more)
        h.send(.toServer, seq: 101 + UInt32(message.count), Array(repeating: UInt8(ascii: "Y"), count: more.count))
        #expect(h.conflicts == 2)
        // An acknowledgment far beyond what was sent (forged, or of another stream) frees nothing.
        h.send(.toClient, seq: 5001, ack: 101 + UInt32(message.count) + 5000)
        h.send(.toServer, seq: 101 + UInt32(message.count), Array(repeating: UInt8(ascii: "Y"), count: more.count))
        h.finish()
        #expect(h.conflicts == 3)
        #expect(h.stream(.toServer).bytes == message + more)
        #expect(h.summaries[0].toServer.conflicts == 3)
        #expect(h.summaries[0].toServer.retransmissions == 4)
    }

    @Test func recentBytesReleaseFreesTheRing() {
        var recent = RecentBytes(capacity: 16)
        recent.append(Array(0..<20))
        #expect(recent.count == 16)
        recent.release()
        #expect(recent.count == 0)
        recent.append([1, 2, 3])
        #expect(recent.count == 3)
        #expect([UInt8]([1, 2, 3]).withUnsafeBytes { recent.matches($0, at: 0) })
    }

    @Test func faithfulRetransmissionIsDroppedSilently() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, message)
        h.send(.toServer, seq: 101, message)
        h.finish()
        #expect(h.stream(.toServer).bytes == message)
        #expect(h.conflicts == 0)
        #expect(h.summaries[0].toServer.retransmissions == 1)
    }

    @Test func missingSegmentBecomesAGapWhenTheFinArrives() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("hello ".utf8))
        h.send(.toServer, seq: 117, Array("world".utf8))  // 10 bytes missing before it
        h.send(.toServer, seq: 122, flags: [.fin, .ack])
        #expect(h.stream(.toServer).gaps.isEmpty)  // still hoping for the hole to be filled
        h.finish()
        let (bytes, gaps) = h.stream(.toServer)
        #expect(bytes == Array("hello world".utf8))
        #expect(gaps == [10])
        #expect(h.ends(.toServer) == 1)
    }

    @Test func anAckBeyondTheHoleDeclaresTheGapAtOnce() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("abc".utf8))
        h.send(.toServer, seq: 110, Array("xyz".utf8))
        h.send(.toClient, seq: 5001, ack: 113)  // the server got bytes we never saw
        let (bytes, gaps) = h.stream(.toServer)
        #expect(bytes == Array("abcxyz".utf8))
        #expect(gaps == [6])
    }

    @Test func bufferLimitDeclaresAGap() {
        var config = TCPReassembler.Configuration()
        config.maxBufferedPerDirection = 1000
        var h = ReassemblyHarness(configuration: config)
        h.handshake()
        for i in 0..<5 { h.send(.toServer, seq: 1101 + UInt32(i * 300), [UInt8](repeating: UInt8(i), count: 300)) }
        let (bytes, gaps) = h.stream(.toServer)
        #expect(gaps == [1000])
        #expect(bytes.count == 1500)
        #expect(h.reassembler.bufferedBytes == 0)
    }

    @Test func snapshotLengthCutBytesAreAGap() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("abcd".utf8), wireLength: 10)
        h.send(.toServer, seq: 111, Array("next".utf8))
        let (bytes, gaps) = h.stream(.toServer)
        #expect(bytes == Array("abcdnext".utf8))
        #expect(gaps == [6])
    }

    @Test func keepAliveAndZeroWindowProbe() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("ab".utf8))
        h.send(.toServer, seq: 102, [0x00])  // keep-alive: one garbage byte at next-1
        h.send(.toServer, seq: 103, Array("c".utf8))  // zero-window probe: the next byte alone
        h.send(.toServer, seq: 103, Array("cdef".utf8))  // then the full segment
        h.finish()
        #expect(h.stream(.toServer).bytes == Array("abcdef".utf8))
        #expect(h.conflicts == 0)
        #expect(h.summaries[0].toServer.retransmissions == 0)
    }

    @Test func dataInTheSYNIsDelivered() {
        var h = ReassemblyHarness()
        h.send(.toServer, seq: 100, flags: .syn, Array("GET / HTTP/1.1\r\n".utf8))
        h.send(.toClient, seq: 5000, ack: 117, flags: [.syn, .ack])
        h.send(.toServer, seq: 117, ack: 5001, Array("\r\n".utf8))
        h.finish()
        #expect(h.stream(.toServer).bytes == Array("GET / HTTP/1.1\r\n\r\n".utf8))
    }

    @Test func midStreamPickUpGuessesTheServerFromThePort() {
        var h = ReassemblyHarness()
        h.send(.toClient, seq: 9000, Array("reply".utf8))  // the server speaks first in this capture
        h.send(.toServer, seq: 300, Array("request".utf8))
        h.finish()
        let s = h.summaries[0]
        #expect(s.info.client == h.client)
        #expect(s.info.roleEvidence == .portHeuristic)
        #expect(s.info.midstream)
        #expect(s.closeReason == .captureEnd)
        #expect(h.stream(.toClient).bytes == Array("reply".utf8))
        #expect(h.stream(.toServer).bytes == Array("request".utf8))
    }

    /// A broker on an ephemeral port (higher than its mid-stream client's): the port guess would be wrong, but the
    /// broker was the server of a connection whose handshake was captured.
    @Test func midStreamPickUpTrustsAServerSeenInAHandshake() {
        var h = ReassemblyHarness()
        let broker = Endpoint(address: IPAddress("192.0.2.2")!, port: 60_027)
        let device = Endpoint(address: IPAddress("192.0.2.7")!, port: 41_000)
        let backend = Endpoint(address: IPAddress("192.0.2.9")!, port: 33_000)
        h.send(.toServer, seq: 100, flags: .syn, from: device, to: broker)
        h.send(.toClient, seq: 5000, ack: 101, flags: [.syn, .ack], from: broker, to: device)
        h.send(.toClient, seq: 9000, Array("publish".utf8), from: broker, to: backend)  // the backend's connection, mid-stream
        h.send(
            .toClient, seq: 7000, Array("x".utf8), from: Endpoint(address: IPAddress("192.0.2.3")!, port: 60_001),
            to: Endpoint(address: IPAddress("192.0.2.4")!, port: 33_001))  // nothing known: the lower port serves
        h.finish()
        let midstream = h.summaries.first { $0.info.client == backend || $0.info.server == backend }
        #expect(midstream?.info.server == broker)
        #expect(midstream?.info.roleEvidence == .knownServer)
        let unknown = h.summaries.first { $0.info.server.port == 33_001 || $0.info.client.port == 33_001 }
        #expect(unknown?.info.server.port == 33_001)
        #expect(unknown?.info.roleEvidence == .portHeuristic)
    }

    @Test func synAckOnlyStillTellsTheRoles() {
        var h = ReassemblyHarness()
        h.send(.toClient, seq: 5000, ack: 101, flags: [.syn, .ack])
        h.send(.toServer, seq: 101, ack: 5001, Array("x".utf8))
        h.finish()
        #expect(h.summaries[0].info.roleEvidence == .synAck)
        #expect(h.summaries[0].info.client == h.client)
        #expect(h.stream(.toServer).bytes == [UInt8(ascii: "x")])
    }

    @Test func portReuseAfterCloseStartsANewConnection() {
        var h = ReassemblyHarness()
        h.handshake(clientISN: 100)
        h.send(.toServer, seq: 101, Array("one".utf8))
        h.send(.toServer, seq: 104, flags: [.fin, .ack])
        h.send(.toClient, seq: 5001, flags: [.fin, .ack])
        h.handshake(clientISN: 90_000)
        h.send(.toServer, seq: 90_001, Array("two".utf8))
        h.finish()
        #expect(h.summaries.map(\.info.id.rawValue) == [1, 2])
        #expect(h.summaries.map(\.closeReason) == [.fin, .captureEnd])
        #expect(h.stream(.toServer, connection: 1).bytes == Array("one".utf8))
        #expect(h.stream(.toServer, connection: 2).bytes == Array("two".utf8))
    }

    @Test func newSYNWithAnotherISNOnAnOpenConnectionIsPortReuse() {
        var h = ReassemblyHarness()
        h.handshake(clientISN: 100)
        h.handshake(clientISN: 7_000_000)
        h.send(.toServer, seq: 100, flags: .syn)  // not a retransmission of the current SYN either
        h.finish()
        #expect(h.summaries.map(\.closeReason) == [.portReuse, .portReuse, .captureEnd])
    }

    @Test func retransmittedSYNIsTheSameConnection() {
        var h = ReassemblyHarness()
        h.send(.toServer, seq: 100, flags: .syn)
        h.send(.toServer, seq: 100, flags: .syn)
        h.finish()
        #expect(h.summaries.count == 1)
        #expect(h.summaries[0].toServer.packets == 2)
    }

    @Test func rstClosesAndItsPayloadIsNotStreamData() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("abc".utf8))
        h.send(.toClient, seq: 5001, flags: [.rst, .ack], Array("diagnostic".utf8))
        h.finish()
        #expect(h.summaries[0].closeReason == .rst)
        #expect(h.stream(.toClient).bytes.isEmpty)
        #expect(h.summaries[0].completeness & 32 == 32)
    }

    @Test func idleAndLingeringConnectionsAreReleasedByCaptureTime() {
        var config = TCPReassembler.Configuration()
        config.idleTimeout = 60
        config.closeLinger = 5
        var h = ReassemblyHarness(configuration: config)
        h.send(.toServer, seq: 100, flags: .syn, at: 10)
        // Another connection, closed.
        let other = Endpoint(address: IPAddress("192.0.2.9")!, port: 40000)
        h.send(.toServer, seq: 1, flags: [.fin, .ack], from: other, to: h.server, at: 11)
        h.send(.toClient, seq: 1, flags: [.fin, .ack], from: h.server, to: other, at: 11)
        #expect(h.reassembler.openConnections == 2)
        h.send(.toServer, seq: 101, Array("x".utf8), at: 20)  // 9 s later: the closed one has lingered long enough
        #expect(h.reassembler.openConnections == 1)
        #expect(h.summaries.map(\.closeReason) == [.fin])
        h.send(.toClient, seq: 1, from: IPAddress("192.0.2.7").map { Endpoint(address: $0, port: 80) }, to: h.client, at: 81)
        #expect(h.summaries.map(\.closeReason) == [.fin, .idle])
    }

    @Test func manyShortConnectionsDoNotAccumulate() {
        var config = TCPReassembler.Configuration()
        config.closeLinger = 1
        var h = ReassemblyHarness(configuration: config)
        for i in 0..<5000 {
            let c = Endpoint(address: .v4(0x0A00_0000 | UInt32(i)), port: 40000)
            let t = Double(i) * 0.01 + 1
            h.send(.toServer, seq: 1, flags: .syn, from: c, to: h.server, at: t)
            h.send(.toServer, seq: 2, flags: [.fin, .ack], Array("bye".utf8), from: c, to: h.server, at: t)
            h.send(.toClient, seq: 9, flags: [.rst, .ack], from: h.server, to: c, at: t)
            h.events.removeAll(keepingCapacity: true)
        }
        #expect(h.reassembler.openConnections < 300)
    }
}

@Suite struct TCPReassemblerRobustnessTests {
    @Test func aSegmentBeyondAnyWindowIsDroppedNotBuffered() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("abc".utf8))
        h.send(.toServer, seq: 101 &+ 0x7000_0000, Array("spoofed".utf8))
        h.send(.toServer, seq: 104, Array("def".utf8))
        h.finish()
        #expect(h.stream(.toServer).bytes == Array("abcdef".utf8))
        #expect(h.stream(.toServer).gaps.isEmpty)
        #expect(h.summaries[0].toServer.outOfWindow == 1)
    }

    /// Random segments (random flags, sequence numbers, lengths, endpoints): no crash, buffers stay bounded.
    @Test func randomSegmentsNeverBreakTheBounds() {
        var config = TCPReassembler.Configuration()
        config.maxBufferedPerDirection = 64 << 10
        config.maxBufferedTotal = 256 << 10
        var h = ReassemblyHarness(configuration: config)
        var rng = SplitMix64(seed: 42)
        let endpoints = (0..<6).map { Endpoint(address: .v4(0x0A00_0000 | UInt32($0)), port: UInt16(1000 + $0)) }
        for i in 0..<20_000 {
            let from = endpoints.randomElement(using: &rng)!, to = endpoints.randomElement(using: &rng)!
            let n = Int.random(in: 0...1500, using: &rng)
            let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: n)
            let base = UInt32.random(in: 0...3, using: &rng) * 0x4000_0000
            h.send(
                .toServer, seq: base &+ UInt32.random(in: 0...200_000, using: &rng), ack: UInt32.random(in: 0...UInt32.max, using: &rng),
                flags: TCPFlags(rawValue: UInt8.random(in: 0...255, using: &rng)), payload,
                wireLength: n + Int.random(in: 0...3, using: &rng) * 100, from: from, to: to, at: Double(i) * 0.01)
            #expect(h.reassembler.bufferedBytes <= config.maxBufferedTotal + 1500)
            h.events.removeAll(keepingCapacity: true)
        }
        h.finish()
        #expect(h.reassembler.bufferedBytes == 0)
        #expect(h.reassembler.openConnections == 0)
    }
}

import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Every decoded message knows the capture frames that held its first and last bytes, whatever the segmentation:
/// the streams are cut whole, byte by byte and at random, each piece is given a frame of its own, and each message's
/// frames are checked against the pieces that held its first and last stream offsets.
@Suite struct CaptureFrameTests {
    typealias Split = HTTPTestSupport.Split

    /// A direction's stream cut into pieces, each carried by the next frame number (from `firstFrame` on).
    struct Cut {
        var pieces: [[UInt8]]
        var frames: [CaptureFrame]
        /// Stream offset of each piece's first byte.
        var starts: [Int]

        init(_ bytes: [UInt8], _ split: Split, seed: UInt64 = 1, firstFrame: Int = 1, every: Int = 1) {
            var rng = SplitMix64(seed: seed &+ { if case .random(let s) = split { s } else { 0 } }())
            pieces = HTTPTestSupport.pieces(bytes, split, &rng)
            frames = pieces.indices.map { CaptureFrame(file: 0, number: firstFrame + $0 * every) }
            var offset = 0
            starts = pieces.map { p in
                defer { offset += p.count }; return offset
            }
        }

        /// The frame of the piece holding stream offset `o`.
        func frame(at o: Int) -> CaptureFrame {
            frames[starts.lastIndex { $0 <= o }!]
        }

        func span(offset: Int, length: Int) -> FrameSpan {
            FrameSpan(first: frame(at: offset), last: frame(at: offset + max(length, 1) - 1))
        }
    }

    static let splits = HTTPTestSupport.splits

    // MARK: - MQTT

    static let mqttStream: [UInt8] =
        MQTTWire.connect(clientID: "5YSZL260021E9A", username: "pilot", password: "pilot123")
        + MQTTWire.subscribe(id: 1, ["sys/product/5YSZL260021E9A/status_reply", "thing/product/5YSZL260021E9A/services"])
        + MQTTWire.publish("sys/product/5YSZL260021E9A/status", Array(repeating: UInt8(ascii: "x"), count: 700), qos: 1, id: 2)
        + MQTTWire.pingReq
        + MQTTWire.publish("thing/product/5YSZL260021E9A/osd", [], qos: 0)
        + MQTTWire.publish("thing/product/5YSZL260021E9A/osd", Array(repeating: 7, count: 3000), qos: 0)
        + MQTTWire.disconnect

    @Test func mqttPacketsKnowTheirFirstAndLastFrames() throws {
        for split in Self.splits {
            let cut = Cut(Self.mqttStream, split, seed: 11, firstFrame: 40, every: 3)
            var decoder = MQTTStreamDecoder()
            var records: [MQTTPacketRecord] = []
            for (piece, frame) in zip(cut.pieces, cut.frames) {
                decoder.feed(piece, frame: frame)
                while let r = try decoder.next() { records.append(r) }
            }
            #expect(records.count == 7)
            for r in records {
                #expect(r.frames == cut.span(offset: r.offset, length: r.length), "\(r.packet.type) at \(r.offset), fed \(split)")
            }
            // What the decoder keeps to name frames stays small: one mark per piece of the packet in progress.
            #expect(decoder.frameMarks.count <= 2)
        }
    }

    @Test func aPacketInOneSegmentHasOneFrame() throws {
        var decoder = MQTTStreamDecoder()
        decoder.feed(MQTTWire.connAck() + MQTTWire.pubAck(id: 3), frame: CaptureFrame(file: 2, number: 9))
        let a = try #require(try decoder.next()), b = try #require(try decoder.next())
        #expect(a.frames == FrameSpan(CaptureFrame(file: 2, number: 9)) && b.frames == a.frames)
    }

    @Test func byteByByteMarksStayBounded() throws {
        // A 3000-byte payload fed byte by byte in 3000 frames: marks are dropped as the payload streams through.
        let packet = MQTTWire.publish("t", Array(repeating: 1, count: 3000))
        var decoder = MQTTStreamDecoder()
        var most = 0
        var record: MQTTPacketRecord?
        for (i, b) in packet.enumerated() {
            decoder.feed([b], frame: CaptureFrame(number: 100 + i))
            // Never more marks than bytes held (plus the one being decoded); once the payload streams, one or two.
            #expect(decoder.frameMarks.count <= decoder.bufferedByteCount + 1)
            if let r = try decoder.next() { record = r }
            if i >= 10 { most = max(most, decoder.frameMarks.count) }
        }
        #expect(most <= 2)
        #expect(record?.frames == FrameSpan(first: CaptureFrame(number: 100), last: CaptureFrame(number: 100 + packet.count - 1)))
    }

    // MARK: - HTTP

    static let requests: [UInt8] = Array(
        """
        GET /pilot-login HTTP/1.1\r\nHost: cloud\r\n\r\n\
        POST /manage/api/v1/login HTTP/1.1\r\nHost: cloud\r\nContent-Type: application/json\r\nContent-Length: 44\r\n\r\n\
        {"username":"pilot","password":"pilot123"}\r\n\
        GET /manage/api/v1/users/current HTTP/1.1\r\nHost: cloud\r\nx-auth-token: abc\r\n\r\n
        """.utf8)
    static let responses: [UInt8] =
        Array(
            """
            HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n\
            5\r\n{"cod\r\n12\r\ne":0,"message":"ok"\r\n1\r\n}\r\n0\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: \(1500)\r\n\r\n
            """.utf8) + Array(repeating: UInt8(ascii: "z"), count: 1500)

    @Test func httpMessagesKnowTheirFirstAndLastFrames() {
        for split in Self.splits {
            // Requests in odd frames, responses in even ones, interleaved as a capture would have them.
            let up = Cut(Self.requests, split, seed: 5, firstFrame: 1, every: 2)
            let down = Cut(Self.responses, split, seed: 6, firstFrame: 2, every: 2)
            var decoder = HTTPConnectionDecoder()
            var events: [HTTPConnectionEvent] = []
            for i in 0..<max(up.pieces.count, down.pieces.count) {
                if i < up.pieces.count { decoder.feed(.toServer, up.pieces[i], at: HTTPTestSupport.time(0), frame: up.frames[i]) }
                if i < down.pieces.count { decoder.feed(.toClient, down.pieces[i], at: HTTPTestSupport.time(0), frame: down.frames[i]) }
                events += decoder.drainEvents()
            }
            decoder.end(.toServer, at: HTTPTestSupport.time(1))
            decoder.end(.toClient, at: HTTPTestSupport.time(1))
            events += decoder.drainEvents()
            let requests = HTTPTestSupport.requests(events), responses = HTTPTestSupport.responses(events)
            #expect(requests.count == 3 && responses.count == 3)
            for r in requests { #expect(r.span.frames == up.span(offset: r.span.offset, length: r.span.length), "\(r.method) fed \(split)") }
            for r in responses { #expect(r.span.frames == down.span(offset: r.span.offset, length: r.span.length), "\(r.status) fed \(split)") }
        }
    }

    @Test func aMessageEndingInLostBytesNamesTheLastFrameThatHeldAny() {
        var decoder = HTTPConnectionDecoder()
        decoder.feed(.toClient, Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8), at: .zero, frame: CaptureFrame(number: 3))
        decoder.gap(.toClient, length: 7, at: .zero)
        let response = HTTPTestSupport.responses(decoder.drainEvents()).first
        #expect(response?.incomplete?.reason == .gap)
        #expect(response?.span.frames == FrameSpan(CaptureFrame(number: 3)))
    }

    // MARK: - WebSocket

    static let webSocketStream: [UInt8] =
        HTTPTestSupport.frame(opcode: 1, payload: Array(#"{"method":"update_topo"}"#.utf8))
        + HTTPTestSupport.frame(fin: false, opcode: 2, payload: Array(repeating: 1, count: 300))
        + HTTPTestSupport.frame(opcode: 9, payload: [1, 2])  // a ping between the fragments
        + HTTPTestSupport.frame(opcode: 0, payload: Array(repeating: 2, count: 70_000))
        + HTTPTestSupport.frame(opcode: 2, payload: [])
        + HTTPTestSupport.frame(opcode: 8, payload: [0x03, 0xE8])

    @Test func webSocketMessagesKnowTheirFirstAndLastFrames() {
        for split in Self.splits {
            let cut = Cut(Self.webSocketStream, split, seed: 3, firstFrame: 7)
            var decoder = WebSocketFrameDecoder(direction: .toClient)
            var messages: [WebSocketMessage] = []
            for (piece, frame) in zip(cut.pieces, cut.frames) {
                decoder.feed(piece, at: .zero, frame: frame)
                for case .message(let m) in decoder.drainEvents() { messages.append(m) }
            }
            #expect(messages.map(\.opcode) == [.text, .ping, .binary, .binary, .close])
            for m in messages {
                #expect(m.frames == cut.span(offset: m.offset, length: m.endOffset - m.offset), "\(m.opcode) at \(m.offset), fed \(split)")
            }
        }
    }

    // MARK: - Through the stream analyzer

    @Test func theAnalyzerCarriesTheReassemblersFramesToMQTTPackets() {
        for split in Self.splits {
            let up = Cut(Self.mqttStream, split, seed: 9, firstFrame: 1, every: 2)
            let down = Cut(
                MQTTWire.connAck() + MQTTWire.subAck(id: 1, count: 2) + MQTTWire.pubAck(id: 2) + MQTTWire.pingResp, split,
                seed: 10, firstFrame: 2, every: 2)
            var h = AnalyzerHarness()
            for i in 0..<max(up.pieces.count, down.pieces.count) {
                if i < up.pieces.count { h.send(.toServer, up.pieces[i], frame: up.frames[i]) }
                if i < down.pieces.count { h.send(.toClient, down.pieces[i], frame: down.frames[i]) }
            }
            var count = 0
            for case let .mqtt(_, dir, record, _, _) in h.out {
                let cut = dir == .toServer ? up : down
                #expect(record.frames == cut.span(offset: record.offset, length: record.length), "\(record.packet.type) fed \(split)")
                count += 1
            }
            #expect(count == 11)
        }
    }

    @Test func mqttOverWebSocketTakesTheFramesOfTheMessagesThatCarryIt() {
        // CONNECT split across two WebSocket messages, each in two capture frames; a PINGREQ in a third message.
        let connect = MQTTWire.connect311(clientID: "5YSZL260021E9A")
        let key: [UInt8] = [1, 2, 3, 4]
        let upgrade = Array(
            "GET /mqtt HTTP/1.1\r\nHost: c\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n".utf8)
        let first = HTTPTestSupport.frame(opcode: 2, payload: Array(connect[..<10]), mask: key)
        let second = HTTPTestSupport.frame(opcode: 2, payload: Array(connect[10...]), mask: key)
        let third = HTTPTestSupport.frame(opcode: 2, payload: MQTTWire.pingReq, mask: key)
        var h = AnalyzerHarness(serverPort: 80)
        h.send(.toServer, upgrade, frame: CaptureFrame(number: 1))
        h.send(
            .toClient, Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n".utf8),
            frame: CaptureFrame(number: 2))
        h.send(.toServer, Array(first[..<5]), frame: CaptureFrame(number: 3))
        h.send(.toServer, Array(first[5...]), frame: CaptureFrame(number: 4))
        h.send(.toServer, Array(second[..<3]), frame: CaptureFrame(number: 5))
        h.send(.toServer, Array(second[3...]), frame: CaptureFrame(number: 6))
        h.send(.toServer, third, frame: CaptureFrame(number: 7))
        let records = h.out.compactMap { e -> MQTTPacketRecord? in if case let .mqtt(_, _, r, _, true) = e { r } else { nil } }
        #expect(records.map(\.packet.type) == [.connect, .pingReq])
        #expect(records.first?.frames == FrameSpan(first: CaptureFrame(number: 3), last: CaptureFrame(number: 6)))
        #expect(records.last?.frames == FrameSpan(CaptureFrame(number: 7)))
    }
}

extension AnalyzerHarness {
    /// Bytes carried by capture frame `frame`.
    mutating func send(_ dir: Direction, _ bytes: [UInt8], frame: CaptureFrame) {
        t += 1_000_000
        analyzer.consume(.data(info.id, dir, bytes, Timestamp(nanoseconds: t), frame: frame), into: &out)
    }
}

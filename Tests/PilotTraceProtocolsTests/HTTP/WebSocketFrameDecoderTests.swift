import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// RFC 6455 framing, each vector fed whole, byte by byte and in random splits.
@Suite struct WebSocketFrameDecoderTests {
    typealias T = HTTPTestSupport
    let b = HTTPTestSupport.bytes
    let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    @Test func rfcExamples() throws {
        // RFC 6455 §5.7: a single-frame unmasked text message, and the same masked.
        let unmasked: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
        let masked: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        let m1 = T.wsMessages(T.decodeWebSocket(unmasked))
        let m2 = T.wsMessages(T.decodeWebSocket(masked, direction: .toServer))
        #expect(m1.map(\.text) == ["Hello"])
        #expect(m2.map(\.text) == ["Hello"])
        #expect(m1.first?.masked == false)
        #expect(m2.first?.masked == true)
        #expect(m2.first?.direction == .toServer)
        #expect(m1.first?.offset == 0 && m1.first?.endOffset == 7)
        #expect(m2.first?.length == 5)
        // A fragmented unmasked text message, then unmasked ping and pong.
        let fragmented: [UInt8] = [0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F]
        let ping: [UInt8] = [0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
        let pong: [UInt8] = [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        let events = T.decodeWebSocket(fragmented + ping + pong)
        let ms = T.wsMessages(events)
        #expect(ms.map(\.opcode) == [.text, .ping, .pong])
        try #require(ms.count > 2)
        #expect(ms[0].text == "Hello")
        #expect(ms[0].frameCount == 2)
        #expect(ms[1].payload == b("Hello"))
        #expect(ms[2].payload == b("Hello"))
        #expect(ms[1].offset == 9)
    }

    @Test func sixteenAndSixtyFourBitLengths() throws {
        let medium = (0..<300).map { UInt8($0 & 0xFF) }
        let large = (0..<70_000).map { UInt8(($0 * 7) & 0xFF) }
        let bytes =
            T.frame(opcode: 2, payload: medium, mask: key) + T.frame(opcode: 2, payload: large)
            + T.frame(opcode: 2, payload: [1, 2, 3], lengthBytes: 8)
        #expect(bytes[1] == 0x80 | 126)
        let events = T.decodeWebSocket(bytes, direction: .toServer)
        let ms = T.wsMessages(events)
        try #require(ms.count == 3)
        #expect(ms[0].payload == medium)
        #expect(ms[1].payload == large)
        #expect(ms[1].length == 70_000)
        #expect(ms[2].payload == [1, 2, 3])
        #expect(ms[2].anomalies.contains(.nonMinimalLength))
        #expect(T.wsErrors(events).isEmpty)
    }

    @Test func maskExpectationsAreChecked() throws {
        let config = WebSocketFrameDecoder.Configuration(expectMasked: true)
        let ms = T.wsMessages(T.decodeWebSocket(T.frame(opcode: 1, payload: b("x")) + T.frame(opcode: 1, payload: b("y"), mask: key), configuration: config))
        #expect(ms.map(\.anomalies) == [[.unmaskedClientFrame], []])
        let server = WebSocketFrameDecoder.Configuration(expectMasked: false)
        let ms2 = T.wsMessages(T.decodeWebSocket(T.frame(opcode: 1, payload: b("x"), mask: key), configuration: server))
        #expect(ms2.first?.anomalies == [.maskedServerFrame])
    }

    @Test func fragmentedTextWithPingInterleaved() throws {
        let json = #"{"biz_code":"device_osd","version":"1.0","timestamp":1700000000000,"data":{"host":{"latitude":22.5}}}"#
        let parts = [Array(b(json)[0..<20]), Array(b(json)[20..<50]), Array(b(json)[50...])]
        let bytes =
            T.frame(fin: false, opcode: 1, payload: parts[0], mask: key)
            + T.frame(opcode: 9, payload: b("keepalive"), mask: key)
            + T.frame(fin: false, opcode: 0, payload: parts[1], mask: key)
            + T.frame(opcode: 10, payload: [], mask: key)
            + T.frame(opcode: 0, payload: parts[2], mask: key)
        let ms = T.wsMessages(T.decodeWebSocket(bytes, direction: .toServer))
        #expect(ms.map(\.opcode) == [.ping, .pong, .text])
        try #require(ms.count > 2)
        #expect(ms[0].payload == b("keepalive"))
        #expect(ms[1].payload.isEmpty)
        let text = ms[2]
        #expect(text.text == json)
        #expect(text.frameCount == 3)
        #expect(text.offset == 0)
        #expect(text.endOffset == bytes.count)
        #expect(text.json?["biz_code"]?.stringValue == "device_osd")
        #expect(text.json?["data"]?["host"]?["latitude"]?.doubleValue == 22.5)
    }

    @Test func closeCodes() throws {
        func close(_ code: UInt16?, _ reason: String = "") -> [UInt8] {
            var payload: [UInt8] = []
            if let code { payload = [UInt8(code >> 8), UInt8(code & 0xFF)] + b(reason) }
            return T.frame(opcode: 8, payload: payload)
        }
        let events = T.decodeWebSocket(close(1000, "bye") + close(1001) + close(nil) + close(1005) + close(4001, "app") + T.frame(opcode: 8, payload: [0x03]))
        let ms = T.wsMessages(events)
        let kinds = ms.map(\.kind)
        #expect(
            kinds == [
                .close(code: .normalClosure, reason: "bye"), .close(code: .goingAway, reason: ""), .close(code: nil, reason: ""),
                .close(code: .noStatusReceived, reason: ""), .close(code: WebSocketCloseCode(rawValue: 4001), reason: "app"),
                .close(code: nil, reason: ""),
            ])
        try #require(ms.count > 4)
        #expect(ms[3].anomalies == [.invalidCloseCode])
        #expect(ms[4].anomalies.isEmpty)
        #expect(T.wsErrors(events).map(\.code) == [.invalidClosePayload])
        #expect(WebSocketCloseCode.normalClosure.name == "normal closure")
        #expect(WebSocketCloseCode.messageTooBig.description == "1009 (message too big)")
        #expect(WebSocketCloseCode(rawValue: 1011).name == "internal error")
        #expect(!WebSocketCloseCode.abnormalClosure.isValidOnWire)
        #expect(!WebSocketCloseCode.tlsHandshake.isValidOnWire)
    }

    @Test func reservedOpcodeIsSkippedWithATypedError() throws {
        let bytes = T.frame(opcode: 3, payload: b("zzz")) + T.frame(opcode: 0xB, payload: []) + T.frame(opcode: 1, payload: b("after"))
        let events = T.decodeWebSocket(bytes)
        #expect(T.wsErrors(events).map(\.code) == [.reservedOpcode, .reservedOpcode])
        #expect(T.wsErrors(events).map(\.offset) == [0, 5])
        #expect(T.wsMessages(events).map(\.text) == ["after"])
    }

    @Test func controlFrameRulesAndContinuationErrors() throws {
        let bytes =
            T.frame(opcode: 9, payload: [UInt8](repeating: 1, count: 126))
            + T.frame(fin: false, opcode: 9, payload: [1])
            + T.frame(opcode: 0, payload: b("orphan"))
            + T.frame(fin: false, opcode: 1, payload: b("first "))
            + T.frame(opcode: 2, payload: [9])
        let events = T.decodeWebSocket(bytes)
        #expect(T.wsErrors(events).map(\.code) == [.controlFrameTooLong, .fragmentedControlFrame, .unexpectedContinuation, .expectedContinuation])
        let ms = T.wsMessages(events)
        #expect(ms.map(\.opcode) == [.text, .binary])
        try #require(ms.count > 1)
        #expect(ms[0].incomplete && ms[0].text == "first ")
        #expect(ms[1].payload == [9])
    }

    @Test func sixtyFourBitLengthWithTheHighBitSetStopsDecoding() throws {
        let bytes: [UInt8] = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1] + b("rest of the stream")
        var decoder = WebSocketFrameDecoder(direction: .toClient)
        decoder.feed(bytes, at: T.time(0))
        let events = decoder.drainEvents()
        #expect(T.wsErrors(events).map(\.code) == [.payloadLengthTooLarge])
        #expect(decoder.isStopped)
        #expect(decoder.skippedBytes == 18)
        #expect(T.decodeWebSocket(bytes) == events)
    }

    @Test func messageCapTruncatesAndCountsAcrossFragments() throws {
        let config = WebSocketFrameDecoder.Configuration(maxMessageBytes: 10)
        let bytes =
            T.frame(fin: false, opcode: 2, payload: [UInt8](repeating: 1, count: 8), mask: key)
            + T.frame(opcode: 0, payload: [UInt8](repeating: 2, count: 8), mask: key)
        var decoder = WebSocketFrameDecoder(direction: .toServer, configuration: config)
        var peak = 0
        for byte in bytes {
            decoder.feed([byte], at: T.time(0))
            peak = max(peak, decoder.bufferedByteCount)
        }
        #expect(peak <= 14)
        let m = try #require(T.wsMessages(decoder.drainEvents()).first)
        #expect(m.payload == [1, 1, 1, 1, 1, 1, 1, 1, 2, 2])
        #expect(m.length == 16)
        #expect(m.truncated)
        #expect(T.decodeWebSocket(bytes, configuration: config, direction: .toServer) == [.message(m)])
    }

    @Test func gapInsideAPayloadKeepsSyncElsewhereStops() throws {
        var decoder = WebSocketFrameDecoder(direction: .toClient)
        let first = T.frame(opcode: 2, payload: [UInt8](repeating: 7, count: 20))
        decoder.feed(Array(first[0..<7]), at: T.time(0))
        decoder.gap(length: 10, at: T.time(1))
        decoder.feed(Array(first[17...]) + T.frame(opcode: 1, payload: b("next")), at: T.time(2))
        var ms = T.wsMessages(decoder.drainEvents())
        try #require(ms.count == 2)
        #expect(ms[0].incomplete && ms[0].lostBytes == 10 && ms[0].length == 20)
        #expect(ms[0].payload.count == 10)
        #expect(ms[0].firstByteAt == T.time(0) && ms[0].lastByteAt == T.time(2))
        #expect(ms[1].text == "next" && !ms[1].incomplete)
        decoder.feed([0x81], at: T.time(3))
        decoder.gap(length: 5, at: T.time(4))
        let events = decoder.drainEvents()
        #expect(T.wsErrors(events).map(\.code) == [.lostSynchronisation])
        #expect(decoder.isStopped)
        decoder.feed(T.frame(opcode: 1, payload: b("ignored")), at: T.time(5))
        ms = T.wsMessages(decoder.drainEvents())
        #expect(ms.isEmpty)
    }

    @Test func endMidMessageEmitsItIncomplete() throws {
        let events = T.decodeWebSocket(T.frame(fin: false, opcode: 1, payload: b("partial")) + [0x80, 0x05, 0x41])
        let ms = T.wsMessages(events)
        try #require(ms.count == 1)
        #expect(ms[0].incomplete)
        #expect(ms[0].text == "partialA")
    }

    @Test func invalidUTF8TextIsFlagged() throws {
        let ms = T.wsMessages(T.decodeWebSocket(T.frame(opcode: 1, payload: [0x61, 0xC3, 0x28])))
        #expect(ms.first?.anomalies == [.invalidUTF8])
    }

    @Test func permessageDeflateMessagesAreInflated() throws {
        let text = #"{"method":"flighttask_progress","data":{"progress":{"percent":50}}}"#
        var compressed = T.deflate(b(text), windowBits: -15)
        // RFC 7692 §7.2.1: the sender removes the trailing empty block; with Z_FINISH there is none, so just send.
        let config = WebSocketFrameDecoder.Configuration(permessageDeflate: true)
        let ms = T.wsMessages(T.decodeWebSocket(T.frame(rsv: 4, opcode: 1, payload: compressed), configuration: config))
        #expect(ms.first?.compressed == true)
        #expect(ms.first?.text == text)
        #expect(ms.first?.json?["data"]?["progress"]?["percent"]?.int64Value == 50)
        compressed = [0xFF, 0xFF]
        let bad = T.wsMessages(T.decodeWebSocket(T.frame(rsv: 4, opcode: 1, payload: compressed), configuration: config))
        #expect(bad.first?.anomalies.contains(.decompressionFailed) == true)
        let unnegotiated = T.wsMessages(T.decodeWebSocket(T.frame(rsv: 4, opcode: 1, payload: b("x"))))
        #expect(unnegotiated.first?.anomalies == [.reservedBitsSet])
    }
}

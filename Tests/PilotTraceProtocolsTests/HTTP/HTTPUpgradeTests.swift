import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// `101 Switching Protocols` to WebSocket: both directions switch after the 101's head.
@Suite struct HTTPUpgradeTests {
    typealias T = HTTPTestSupport
    let b = HTTPTestSupport.bytes
    let key: [UInt8] = [0x11, 0x22, 0x33, 0x44]

    let upgradeRequest = HTTPTestSupport.bytes(
        "GET /mqtt?x-auth-token=eyJ0eXAiOiJKV1Qi.secret HTTP/1.1\r\nHost: cloud.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    let switching = HTTPTestSupport.bytes(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    )

    /// MQTT CONNECT (3.1.1, client id "pilot") as a binary WebSocket message.
    let mqttConnect: [UInt8] = [0x10, 0x11, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x05, 0x70, 0x69, 0x6C, 0x6F, 0x74]

    @Test func switchesBothDirectionsToWebSocket() throws {
        let push = #"{"biz_code":"device_osd","version":"1.0","timestamp":1700000000000,"data":{"sn":"1581F5FHB22A"}}"#
        let events = T.decode([
            .data(.toServer, upgradeRequest),
            .data(.toClient, switching + T.frame(opcode: 1, payload: b(push))),
            .data(.toServer, T.frame(opcode: 2, payload: mqttConnect, mask: key)),
            .data(.toClient, T.frame(opcode: 2, payload: [0x20, 0x02, 0x00, 0x00])),
            .data(.toServer, T.frame(opcode: 8, payload: [0x03, 0xE8], mask: key)),
        ])
        #expect(T.errors(events).isEmpty)
        guard events.count == 7, case .request(let req) = events[0], case .response(let res) = events[1],
            case .upgrade(let upgrade) = events[2]
        else {
            Issue.record("unexpected events \(events)")
            return
        }
        #expect(req.headers["upgrade"] == "websocket")
        #expect(res.status == 101)
        #expect(res.requestIndex == 0)
        #expect(res.framing == .tunnel)
        #expect(upgrade.isWebSocket)
        #expect(upgrade.subprotocol == "mqtt")
        #expect(upgrade.target == "/mqtt?x-auth-token=eyJ0eXAiOiJKV1Qi.secret")
        #expect(upgrade.requestIndex == 0)
        #expect(upgrade.toServerOffset == upgradeRequest.count)
        #expect(upgrade.toClientOffset == switching.count)
        #expect(upgrade.display() == "upgrade to websocket (subprotocol mqtt) for /mqtt?x-auth-token=***")

        let ws = T.webSocketMessages(events)
        #expect(ws.map(\.direction) == [.toClient, .toServer, .toClient, .toServer])
        try #require(ws.count > 3)
        #expect(ws[0].json?["biz_code"]?.stringValue == "device_osd")
        #expect(ws[0].offset == switching.count)
        #expect(ws[1].payload == mqttConnect)
        #expect(ws[1].masked)
        #expect(ws[1].offset == upgradeRequest.count)
        #expect(ws[1].anomalies.isEmpty)
        #expect(ws[2].payload == [0x20, 0x02, 0x00, 0x00])
        #expect(ws[3].kind == .close(code: .normalClosure, reason: ""))
        #expect(ws[0].display().contains("\"biz_code\": \"device_osd\""))
        #expect(ws[1].display() == "→ binary 19 bytes")
        #expect(ws[1].display(showSecrets: true).contains("10 11 00 04 4d 51 54 54"))
        #expect(ws[3].display() == "→ close 2 bytes code 1000 (normal closure)")
        var decoder = HTTPConnectionDecoder()
        decoder.feed(.toServer, upgradeRequest, at: T.time(0))
        decoder.feed(.toClient, switching, at: T.time(1))
        #expect(decoder.upgrade?.subprotocol == "mqtt")
    }

    @Test func clientFramesBeforeThe101AreHeldUntilItArrives() throws {
        // The client's first frame is captured before the server's 101 (it may be, across directions).
        let events = T.decode([
            .data(.toServer, upgradeRequest + T.frame(opcode: 2, payload: mqttConnect, mask: key)),
            .data(.toClient, switching),
            .data(.toServer, T.frame(opcode: 9, payload: [], mask: key)),
        ])
        #expect(T.errors(events).isEmpty)
        let ws = T.webSocketMessages(events)
        #expect(ws.map(\.opcode) == [.binary, .ping])
        try #require(ws.count > 0)
        #expect(ws[0].payload == mqttConnect)
        #expect(ws[0].firstByteAt == T.time(0))
    }

    @Test func refusedUpgradeStaysHTTP() throws {
        let events = T.decode([
            .data(.toServer, upgradeRequest),
            .data(.toServer, b("GET /next HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")),
        ])
        #expect(T.errors(events).isEmpty)
        #expect(T.requests(events).map(\.head.path) == ["/mqtt", "/next"])
        #expect(T.responses(events).map(\.requestIndex) == [0, 1])
        #expect(!events.contains { if case .upgrade = $0 { true } else { false } })
    }

    @Test func upgradeRequestWithoutAnyResponseIsReleasedAtTheEnd() throws {
        var decoder = HTTPConnectionDecoder()
        decoder.feed(.toServer, upgradeRequest + b("GET /after HTTP/1.1\r\n\r\n"), at: T.time(0))
        #expect(T.requests(decoder.drainEvents()).count == 1)
        decoder.end(.toClient, at: T.time(1))
        #expect(T.requests(decoder.drainEvents()).map(\.head.path) == ["/after"])
    }

    @Test func webSocketBytesAreBoundedAfterTheSwitch() throws {
        var decoder = HTTPConnectionDecoder(configuration: HTTPDecoderConfiguration(maxWebSocketMessageBytes: 1000))
        decoder.feed(.toServer, upgradeRequest, at: T.time(0))
        decoder.feed(.toClient, switching, at: T.time(1))
        let big = T.frame(opcode: 2, payload: [UInt8](repeating: 0xAB, count: 200_000))
        var peak = 0
        var k = 0
        while k < big.count {
            let n = min(1500, big.count - k)
            decoder.feed(.toClient, Array(big[k..<(k + n)]), at: T.time(2))
            peak = max(peak, decoder.bufferedByteCount)
            k += n
        }
        #expect(peak <= 1000 + 14)
        let ws = T.webSocketMessages(decoder.drainEvents())
        #expect(ws.count == 1)
        #expect(ws.first?.truncated == true)
        #expect(ws.first?.length == 200_000)
        #expect(decoder.statistics.toClient.upgradedBytes == big.count)
    }
}

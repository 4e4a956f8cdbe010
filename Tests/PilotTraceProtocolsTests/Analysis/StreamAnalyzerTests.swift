import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Feeds hand-made stream events to a StreamAnalyzer, as the reassembler would.
struct AnalyzerHarness: ~Copyable {
    var analyzer = StreamAnalyzer()
    var out: [MessageEvent] = []
    let info: ConnectionInfo
    var t: Int64 = 1_000_000_000

    init(midstream: Bool = false, serverPort: UInt16 = 1883, clientPort: UInt16 = 50_000) {
        info = ConnectionInfo(
            id: ConnectionID(rawValue: 1),
            client: Endpoint(address: IPAddress("10.0.0.1")!, port: clientPort),
            server: Endpoint(address: IPAddress("10.0.0.2")!, port: serverPort),
            roleEvidence: midstream ? .portHeuristic : .syn, firstSeen: Timestamp(nanoseconds: 1))
        analyzer.consume(.opened(info), into: &out)
    }

    mutating func send(_ dir: Direction, _ bytes: [UInt8]) {
        t += 1_000_000
        analyzer.consume(.data(info.id, dir, bytes, Timestamp(nanoseconds: t)), into: &out)
    }

    mutating func gap(_ dir: Direction, _ n: Int) {
        analyzer.consume(.gap(info.id, dir, length: n, Timestamp(nanoseconds: t)), into: &out)
    }

    mutating func close() {
        let summary = ConnectionSummary(
            info: info, lastSeen: Timestamp(nanoseconds: t), synSeen: !info.midstream, synAckSeen: true,
            handshakeAckSeen: true, toServer: DirectionStats(), toClient: DirectionStats(), closeReason: .fin)
        analyzer.consume(.end(info.id, .toServer, Timestamp(nanoseconds: t)), into: &out)
        analyzer.consume(.end(info.id, .toClient, Timestamp(nanoseconds: t)), into: &out)
        analyzer.consume(.closed(summary), into: &out)
    }

    var classification: Classification? {
        for case .classified(_, let c) in out { return c }
        return nil
    }

    var classifiedInfo: ConnectionInfo? {
        for case .classified(let i, _) in out { return i }
        return nil
    }

    func mqtt(overWebSocket ws: Bool? = nil) -> [(Direction, MQTTPacketType)] {
        out.compactMap {
            if case let .mqtt(_, d, r, _, w) = $0, ws == nil || ws == w { return (d, r.packet.type) }
            return nil
        }
    }

    var mqttErrors: Int { out.filter { if case .mqttError = $0 { true } else { false } }.count }

    var http: [String] {
        out.compactMap {
            switch $0 {
            case .http(_, .request(let r)): "request \(r.method) \(r.head.path)"
            case .http(_, .response(let r)): "response \(r.status)"
            default: nil
            }
        }
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A WebSocket frame (RFC 6455 §5.2), masked when sent by the client.
func wsFrame(_ opcode: UInt8, _ payload: [UInt8], masked: Bool) -> [UInt8] {
    var f: [UInt8] = [0x80 | opcode]
    precondition(payload.count < 126)
    f.append((masked ? 0x80 : 0) | UInt8(payload.count))
    guard masked else { return f + payload }
    let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
    f += key
    f += payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    return f
}

@Suite struct StreamAnalyzerTests {
    @Test func httpByItsRequestLineOnAnyPort() {
        var h = AnalyzerHarness(serverPort: 1883)  // the port says MQTT; the bytes say HTTP
        h.send(.toServer, bytes("POST /manage/api/v1/login HTTP/1.1\r\nHost: cloud\r\nContent-Length: 2\r\n\r\n{}"))
        h.send(.toClient, bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        h.close()
        #expect(h.classification?.appProtocol == .http)
        #expect(h.classification?.evidence == .firstBytes)
        #expect(h.http == ["request POST /manage/api/v1/login", "response 200"])
    }

    @Test func mqttByItsConnectWithTheVersionFromIt() {
        var h = AnalyzerHarness(serverPort: 8080)
        h.send(.toServer, MQTTWire.connect5(clientID: "5YSZL260021E9A"))
        h.send(.toClient, [0x20, 0x03, 0x00, 0x00, 0x00])  // v5 CONNACK with empty properties
        h.send(.toServer, MQTTWire.pingReq)
        h.close()
        #expect(h.classification?.appProtocol == .mqtt)
        #expect(h.classification?.note.contains("MQTT 5.0") == true)
        #expect(h.mqtt().map(\.1) == [.connect, .connAck, .pingReq])
        #expect(h.mqttErrors == 0)
    }

    @Test func detectionWaitsForEnoughBytes() {
        var h = AnalyzerHarness()
        let connect = MQTTWire.connect311()
        h.send(.toServer, Array(connect[0..<3]))
        #expect(h.classification == nil)
        h.send(.toServer, Array(connect[3...]))
        #expect(h.classification?.appProtocol == .mqtt)
        #expect(h.mqtt().map(\.1) == [.connect])
    }

    @Test func tlsIsNamedAndPointsToTheProxy() {
        var h = AnalyzerHarness(serverPort: 8883)
        h.send(.toServer, TLSClientHelloTests.hello)
        h.close()
        let c = h.classification
        #expect(c?.appProtocol == .tls)
        #expect(c?.tls?.serverName == "mqtt.cloud.example")
        #expect(c?.note.contains("pilottrace proxy") == true)
        #expect(h.mqtt().isEmpty && h.http.isEmpty)
    }

    @Test func unknownBytesKeepOnlyAPortHint() {
        var h = AnalyzerHarness(serverPort: 1883)
        h.send(.toServer, bytes("SSH-2.0-OpenSSH_9.2\r\n"))
        h.close()
        #expect(h.classification?.appProtocol == .unknown)
        #expect(h.classification?.evidence == .portHint)
        #expect(h.classification?.note.contains("port 1883 suggests MQTT") == true)
        var none = AnalyzerHarness(serverPort: 40_000)
        none.send(.toServer, [0x00, 0x01, 0x02, 0x03])
        none.close()
        #expect(none.classification?.evidence == ClassificationEvidence.none)
    }

    @Test func midstreamMQTTNeedsSeveralWellFormedPackets() {
        var h = AnalyzerHarness(midstream: true)
        h.send(.toServer, MQTTWire.publish("thing/product/SN/osd", bytes("{}")))
        #expect(h.classification == nil)
        h.send(.toServer, MQTTWire.publish("thing/product/SN/osd", bytes("{}")) + MQTTWire.pingReq)
        #expect(h.classification?.appProtocol == .mqtt)
        #expect(h.classification?.evidence == .midstream)
        let packets = h.out.compactMap { if case let .mqtt(_, _, r, _, _) = $0 { r } else { nil } }
        #expect(packets.count == 3)
        #expect(packets.allSatisfy { $0.versionAssumed })
    }

    @Test func midstreamPingExchangeOnTheMQTTPort() {
        var h = AnalyzerHarness(midstream: true)
        h.send(.toServer, MQTTWire.pingReq)
        h.send(.toClient, MQTTWire.pingResp)
        h.close()
        #expect(h.classification?.appProtocol == .mqtt)
        #expect(h.mqtt().map(\.1) == [.pingReq, .pingResp])
        var elsewhere = AnalyzerHarness(midstream: true, serverPort: 45_000)
        elsewhere.send(.toServer, MQTTWire.pingReq)
        elsewhere.send(.toClient, MQTTWire.pingResp)
        elsewhere.close()
        #expect(elsewhere.classification?.appProtocol == .unknown)
    }

    @Test func midstreamHTTPCorrectsTheRolesTheTCPLayerGuessed() {
        // Both ports ephemeral: the lower one was taken as the server, but the requests come from it.
        var h = AnalyzerHarness(midstream: true, serverPort: 39_976, clientPort: 64_000)
        h.send(.toClient, bytes("GET /api/queues HTTP/1.1\r\nHost: x\r\n\r\n"))
        h.send(.toServer, bytes("HTTP/1.1 204 No Content\r\n\r\n"))
        h.close()
        #expect(h.classification?.rolesReversed == true)
        #expect(h.classifiedInfo?.server.port == 64_000)
        #expect(h.http == ["request GET /api/queues", "response 204"])
    }

    @Test func midstreamHTTPResynchronisesAtTheNextRequest() {
        var h = AnalyzerHarness(midstream: true, serverPort: 80)
        h.send(.toServer, bytes("tail of an earlier body\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"))
        h.send(.toClient, bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        h.close()
        #expect(h.classification?.evidence == .midstream)
        #expect(h.http == ["request GET /next", "response 200"])
    }

    @Test func aGapBeforeAnyByteIsALateStartNotADesync() {
        // The CONNECT was not captured; the server's replies and the client's later packets still decode.
        var h = AnalyzerHarness()
        h.gap(.toServer, 16)
        h.send(.toClient, [0x20, 0x02, 0x00, 0x00] + [0x90, 0x03, 0x00, 0x01, 0x01] + MQTTWire.pingResp)
        h.send(.toServer, MQTTWire.pingReq)
        h.close()
        #expect(h.classification?.appProtocol == .mqtt)
        #expect(h.mqtt().map(\.1) == [.connAck, .subAck, .pingResp, .pingReq])
        #expect(h.mqttErrors == 0)
    }

    @Test func mqttOverWebSocketGoesThroughTheMQTTDecoder() {
        var h = AnalyzerHarness(serverPort: 8083)
        h.send(
            .toServer,
            bytes(
                "GET /mqtt HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"))
        h.send(
            .toClient,
            bytes(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"))
        h.send(.toServer, wsFrame(0x2, MQTTWire.connect311(clientID: "5YSZL260021E9A"), masked: true))
        h.send(.toClient, wsFrame(0x2, [0x20, 0x02, 0x00, 0x00], masked: false))
        h.send(.toServer, wsFrame(0x2, MQTTWire.publish("sys/product/5YSZL260021E9A/status", bytes("{\"method\":\"update_topo\"}")), masked: true))
        h.send(.toClient, bytes("") + wsFrame(0x1, bytes("{\"biz_code\":\"device_osd\"}"), masked: false))
        h.close()
        #expect(h.classification?.appProtocol == .http)
        #expect(h.mqtt(overWebSocket: true).map(\.1) == [.connect, .connAck, .publish])
        #expect(h.mqtt(overWebSocket: false).isEmpty)
        let texts = h.out.compactMap { if case .http(_, .webSocket(let m)) = $0, case .text = m.kind { m.json } else { nil } }
        #expect(texts.count == 1)
    }

    @Test func detectionBuffersAreBounded() {
        var h = AnalyzerHarness(serverPort: 40_000)
        let junk = [UInt8](repeating: 0xAB, count: 10_000)
        for _ in 0..<20 { h.send(.toServer, junk) }  // never recognisable
        #expect(h.classification?.appProtocol == .unknown)
        #expect(h.analyzer.connections[h.info.id]?.queued.isEmpty == true)
    }
}

typealias ClassificationEvidence = Classification.Evidence

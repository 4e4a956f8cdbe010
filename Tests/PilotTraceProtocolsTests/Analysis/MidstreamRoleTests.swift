import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Who is the server of a connection picked up mid-stream when both ports are ephemeral (docs/flows.md).
@Suite struct MidstreamRoleTests {
    static let broker = Endpoint(address: IPAddress("10.0.0.2")!, port: 61_883)
    static func ep(_ a: String, _ p: UInt16) -> Endpoint { Endpoint(address: IPAddress(a)!, port: p) }
    static func t(_ ms: Int64) -> Timestamp { Timestamp(nanoseconds: 1_000_000_000 + ms * 1_000_000) }
    static func osd(_ sn: String) -> [UInt8] { MQTTWire.publish("thing/product/\(sn)/osd", Array(#"{"data":{}}"#.utf8)) }

    /// A connection as the TCP layer guessed it without a handshake: the lower port taken as the server's.
    static func guessed(_ id: UInt64, _ a: Endpoint, _ b: Endpoint) -> ConnectionInfo {
        let (server, client) = a.port < b.port ? (a, b) : (b, a)
        return ConnectionInfo(id: ConnectionID(rawValue: id), client: client, server: server, roleEvidence: .portHeuristic, firstSeen: t(0))
    }

    static func classified(_ out: [MessageEvent], _ id: UInt64) -> (ConnectionInfo, Classification)? {
        for case .classified(let info, let c) in out where info.id.rawValue == id { return (info, c) }
        return nil
    }

    @Test func theEndpointSharedWithAnotherConnectionIsTheServer() {
        var a = StreamAnalyzer()
        var out: [MessageEvent] = []
        let device = Self.ep("10.0.0.5", 40_000), backend = Self.ep("10.0.0.9", 50_000)
        let d = Self.guessed(1, device, Self.broker)  // 40000 < 61883: the device is taken for the server
        let b = Self.guessed(2, backend, Self.broker)  // 50000 < 61883: the backend too
        #expect(d.server == device && b.server == backend)
        a.consume(.opened(d), into: &out)
        a.consume(.opened(b), into: &out)
        // The device publishes (from the side taken as the server); the broker relays to the backend.
        for i in 0..<3 {
            a.consume(.data(d.id, .toClient, Self.osd("RC1"), Self.t(Int64(i) * 2000)), into: &out)
            a.consume(.data(b.id, .toServer, Self.osd("RC1"), Self.t(Int64(i) * 2000 + 1)), into: &out)
        }
        let (dInfo, dClass) = Self.classified(out, 1)!
        let (bInfo, bClass) = Self.classified(out, 2)!
        #expect(dInfo.client == device && dInfo.server == Self.broker)
        #expect(bInfo.client == backend && bInfo.server == Self.broker)
        #expect(dClass.rolesReversed && bClass.rolesReversed)
        #expect(dClass.note.contains("roles from the endpoints"))
        // The device's PUBLISHes now go to the server, as MQTT has them.
        let devicePublishes = out.compactMap { e -> Direction? in
            if case let .mqtt(id, dir, _, _, _) = e, id == d.id { return dir }
            return nil
        }
        #expect(devicePublishes == [.toServer, .toServer, .toServer])
    }

    @Test func aPacketOnlyAClientSendsDecidesAtOnce() {
        var a = StreamAnalyzer()
        var out: [MessageEvent] = []
        let d = Self.guessed(1, Self.ep("10.0.0.5", 40_000), Self.broker)
        a.consume(.opened(d), into: &out)
        // PINGREQ from the side taken as the server, PINGRESP back, then a PUBLISH: three packets.
        a.consume(.data(d.id, .toClient, [0xC0, 0x00], Self.t(0)), into: &out)
        a.consume(.data(d.id, .toServer, [0xD0, 0x00], Self.t(1)), into: &out)
        a.consume(.data(d.id, .toClient, Self.osd("RC1") + [0xC0, 0x00], Self.t(2)), into: &out)
        let (info, c) = Self.classified(out, 1)!
        #expect(c.rolesReversed && c.rolesFromContent)
        #expect(info.server == Self.broker)
        #expect(c.note.contains("PINGREQ") || c.note.contains("PINGRESP"))
    }

    @Test func aBrokerHandedOutInMqttAddrIsTheServer() {
        var a = StreamAnalyzer()
        var out: [MessageEvent] = []
        // The login over HTTP (handshake seen) hands out the broker's address.
        let http = ConnectionInfo(
            id: ConnectionID(rawValue: 1), client: Self.ep("10.0.0.5", 39_000), server: Self.ep("10.0.0.2", 6789),
            roleEvidence: .syn, firstSeen: Self.t(0))
        a.consume(.opened(http), into: &out)
        let body = #"{"code":0,"message":"success","data":{"mqtt_addr":"tcp://10.0.0.2:61883","mqtt_username":"pilot"}}"#
        a.consume(.data(http.id, .toServer, Array("GET /manage/api/v1/users/current HTTP/1.1\r\nHost: c\r\n\r\n".utf8), Self.t(1)), into: &out)
        a.consume(
            .data(
                http.id, .toClient, Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8),
                Self.t(2)), into: &out)
        #expect(a.knownServers.contains(Self.broker))
        let d = Self.guessed(2, Self.ep("10.0.0.5", 40_000), Self.broker)
        a.consume(.opened(d), into: &out)
        for i in 0..<3 { a.consume(.data(d.id, .toClient, Self.osd("RC1"), Self.t(10 + Int64(i))), into: &out) }
        let (info, _) = Self.classified(out, 2)!
        #expect(info.server == Self.broker)
    }

    @Test func withNothingToGoOnTheGuessStandsAfterAWait() {
        var a = StreamAnalyzer()
        var out: [MessageEvent] = []
        let d = Self.guessed(1, Self.ep("10.0.0.5", 40_000), Self.broker)
        a.consume(.opened(d), into: &out)
        for i in 0..<3 { a.consume(.data(d.id, .toClient, Self.osd("RC1"), Self.t(Int64(i) * 1000)), into: &out) }
        #expect(Self.classified(out, 1) == nil)  // waiting for another connection to the same broker
        a.consume(.data(d.id, .toClient, Self.osd("RC1"), Self.t(6000)), into: &out)
        let (info, c) = Self.classified(out, 1)!
        #expect(!c.rolesReversed && info == d)
        #expect(out.contains { if case .mqtt = $0 { return true } else { return false } })
    }

    @Test func mqttAddrParsing() {
        func broker(_ addr: String) -> Endpoint? {
            let body = Array(#"{"code":0,"data":{"mqtt_addr":"\#(addr)"}}"#.utf8)
            var d = HTTPConnectionDecoder()
            d.feed(.toServer, Array("GET / HTTP/1.1\r\n\r\n".utf8), at: Self.t(0))
            d.feed(.toClient, Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body, at: Self.t(1))
            for case .response(let r) in d.drainEvents() { return StreamAnalyzer.handedOutBroker(r) }
            return nil
        }
        #expect(broker("tcp://10.0.0.2:1883") == Self.ep("10.0.0.2", 1883))
        #expect(broker("ws://[::1]:8083/mqtt") == Endpoint(address: IPAddress("::1")!, port: 8083))
        #expect(broker("tcp://broker.example:1883") == nil)  // a name, not an address: nothing to compare with
        #expect(broker("10.0.0.2") == nil)
    }
}

import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

@Suite struct MQTTConnectionDecoderTests {
    typealias W = MQTTWire

    @Test func clientConnectSetsTheVersionOfBothDirections() throws {
        var c = MQTTConnectionDecoder(configuration: .init(defaultVersion: .v3_1_1))
        #expect(!c.versionKnown && c.version == .v3_1_1)
        c.feed(direction: .toServer, bytes: W.connect5())
        // A v5 CONNACK with properties would be malformed as 3.1.1 (trailing bytes).
        c.feed(direction: .toClient, bytes: W.packet(0x20, [0x00, 0x00] + W.props(W.topicAliasMaximumBytes(5))))
        c.feed(direction: .toServer, bytes: W.hex("40 03 0001 10"))
        let up = c.drain(direction: .toServer)
        let down = c.drain(direction: .toClient)
        #expect(c.versionKnown && c.version == .v5)
        #expect(up.compactMap(\.record).map(\.version) == [.v5, .v5])
        #expect(up.allSatisfy { $0.record?.versionAssumed == false })
        let connack = try #require(down.first?.record)
        #expect(connack.version == .v5 && !connack.versionAssumed)
        guard case .connAck(let a) = connack.packet else { Issue.record("not CONNACK"); return }
        #expect(a.properties.first(.topicAliasMaximum)?.integerValue == 5)
        #expect(c.drain(direction: .toServer).isEmpty)  // drained
    }

    @Test func withoutConnectTheDefaultIsAssumed() throws {
        var c = MQTTConnectionDecoder(configuration: .init(defaultVersion: .v5))
        c.feed(direction: .toClient, bytes: W.hex("40 03 0001 97"))
        c.feed(direction: .toServer, bytes: W.pingReq)
        let down = try #require(c.drain(direction: .toClient).first?.record)
        #expect(down.version == .v5 && down.versionAssumed)
        #expect(down.summary() == "PUBACK id=1 rc=0x97 (Quota exceeded)")
        #expect(c.drain(direction: .toServer).first?.record?.versionAssumed == true)
        #expect(!c.versionKnown)
    }

    @Test func connect31AllowsDupOnSubscribe() {
        var c = MQTTConnectionDecoder()
        c.feed(
            direction: .toServer,
            bytes: W.packet(0x10, W.str("MQIsdp") + [3, 0x02] + W.u16(10) + W.str("c"))
                + W.hex("8a 06 0001 0001 74 00"))
        c.feed(direction: .toClient, bytes: W.hex("20 02 00 00"))
        #expect(c.drain(direction: .toServer).compactMap(\.record).map(\.packet.type) == [.connect, .subscribe])
        #expect(c.drain(direction: .toClient).compactMap(\.record).map(\.version) == [.v3_1])
    }

    @Test func topicAliasesArePerDirection() throws {
        var c = MQTTConnectionDecoder()
        c.feed(direction: .toServer, bytes: W.connect5())
        c.feed(direction: .toServer, bytes: W.publish("up/topic", [1], v5props: W.props(W.topicAlias(1))))
        c.feed(direction: .toClient, bytes: W.publish("down/topic", [2], v5props: W.props(W.topicAlias(1))))
        c.feed(direction: .toServer, bytes: W.publish("", [3], v5props: W.props(W.topicAlias(1))))
        c.feed(direction: .toClient, bytes: W.publish("", [4], v5props: W.props(W.topicAlias(1))))
        func topics(_ d: Direction) -> [String] {
            c.drain(direction: d).compactMap { if case .publish(let p)? = $0.record?.packet { p.topic } else { nil } }
        }
        #expect(topics(.toServer) == ["up/topic", "up/topic"])
        #expect(topics(.toClient) == ["down/topic", "down/topic"])
        #expect(c.decoder(.toServer).topicAliases[1] == "up/topic")
    }

    @Test func anErrorInOneDirectionLeavesTheOtherRunning() throws {
        var c = MQTTConnectionDecoder()
        c.feed(direction: .toServer, bytes: W.connect311() + W.hex("c1 00") + W.pingReq)
        c.feed(direction: .toClient, bytes: W.hex("20 02 00 00") + W.pingResp)
        let up = c.drain(direction: .toServer)
        #expect(up.count == 2)
        #expect(up.last?.error?.code == .reservedFlags)
        #expect(up.last?.error?.offset == W.connect311().count)
        #expect(c.decoder(.toServer).isDesynchronised)
        #expect(
            c.drain(direction: .toClient).compactMap(\.record).map(\.packet) == [
                .connAck(MQTTConnAck(sessionPresent: false, returnCode: .connectReturnCode(0), properties: .init())), .pingResp,
            ])
        c.gap(direction: .toClient, length: 10)
        c.feed(direction: .toClient, bytes: W.pingResp)
        #expect(c.drain(direction: .toClient).isEmpty)
        #expect(c.decoder(.toClient).isDesynchronised && c.decoder(.toClient).gapBytes == 10)
        #expect(c.decoder(.toClient).desyncBytes == 2)
    }

    @Test func chunkingDoesNotChangeConnectionResults() {
        let up =
            W.connect5() + W.publish("a", [1, 2], qos: 1, id: 1, v5props: W.props(W.topicAlias(2)))
            + W.publish("", [3], v5props: W.props(W.topicAlias(2))) + W.hex("e0 00")
        let down = W.packet(0x20, [0, 0] + W.props()) + W.hex("40 02 0001")
        func run(_ chunk: Int) -> ([MQTTStreamEvent], [MQTTStreamEvent]) {
            var c = MQTTConnectionDecoder()
            var a: [MQTTStreamEvent] = [], b: [MQTTStreamEvent] = []
            var i = 0, j = 0
            while i < up.count || j < down.count {
                // The CONNECT is complete before any server byte, as in a capture.
                let n = i < W.connect5().count ? W.connect5().count : chunk
                if i < up.count {
                    c.feed(direction: .toServer, bytes: Array(up[i..<min(up.count, i + n)]))
                    i += n
                }
                if j < down.count {
                    c.feed(direction: .toClient, bytes: Array(down[j..<min(down.count, j + chunk)]))
                    j += chunk
                }
                a += c.drain(direction: .toServer)
                b += c.drain(direction: .toClient)
            }
            return (a, b)
        }
        let whole = run(1000)
        #expect(whole.0.count == 4 && whole.1.count == 2)
        #expect(whole.0.allSatisfy { $0.error == nil } && whole.1.allSatisfy { $0.error == nil })
        for chunk in [1, 2, 3, 5] { #expect(run(chunk) == whole) }
    }
}

import PilotTraceTestSupport
import Testing

@testable import PilotTraceProtocols

@Suite struct MQTTDetectionTests {
    typealias W = MQTTWire

    static let connects: [[UInt8]] = [
        W.connect311(),
        W.connect5(properties: W.props(W.sessionExpiry(10))),
        W.packet(0x10, W.str("MQIsdp") + [3, 0x02] + W.u16(10) + W.str("c")),
    ]

    @Test func recognisesEveryVersionAndAsksForMoreOnPrefixes() {
        for connect in Self.connects {
            #expect(MQTTStreamDecoder.looksLikeConnect(connect) == true)
            #expect(MQTTStreamDecoder.looksLikeConnect(connect + [0xFF, 0xFF]) == true)
            // Every prefix up to the flags byte is undecided, never wrongly rejected.
            let decidedAt = connect[3] == 4 ? 10 : 12  // fixed header (2) + name (2 + n) + level + flags
            for n in 0..<decidedAt {
                #expect(MQTTStreamDecoder.looksLikeConnect(Array(connect.prefix(n))) == nil, "prefix \(n)")
            }
            #expect(MQTTStreamDecoder.looksLikeConnect(Array(connect.prefix(decidedAt))) == true)
        }
    }

    @Test func rejectsOtherProtocolsAndBadConnects() {
        #expect(MQTTStreamDecoder.looksLikeConnect(Array("GET / HTTP/1.1\r\n".utf8)) == false)
        #expect(MQTTStreamDecoder.looksLikeConnect([0x16, 0x03, 0x01, 0x02, 0x00]) == false)  // TLS
        #expect(MQTTStreamDecoder.looksLikeConnect(W.pingReq) == false)
        #expect(MQTTStreamDecoder.looksLikeConnect(W.hex("10 ff ff ff ff 01")) == false)
        func connect(_ name: String, _ level: UInt8, flags: UInt8 = 2) -> [UInt8] {
            W.packet(0x10, W.str(name) + [level, flags] + W.u16(0) + W.str("c"))
        }
        #expect(MQTTStreamDecoder.looksLikeConnect(connect("MQTT", 3)) == false)
        #expect(MQTTStreamDecoder.looksLikeConnect(connect("MQIsdp", 4)) == false)
        #expect(MQTTStreamDecoder.looksLikeConnect(connect("MQTX", 4)) == false)
        #expect(MQTTStreamDecoder.looksLikeConnect(connect("AMQP", 4)) == false)
        #expect(MQTTStreamDecoder.looksLikeConnect(connect("MQTT", 4, flags: 0x03)) == false)
        // A first mismatching name byte decides before the rest arrives.
        #expect(MQTTStreamDecoder.looksLikeConnect(W.hex("10 10 00 04 4e")) == false)
        // Remaining Length too small to hold a CONNECT.
        #expect(MQTTStreamDecoder.looksLikeConnect(W.hex("10 06 00 04 4d515454")) == false)
    }

    @Test func plausibleStreams() {
        let v311 =
            W.publish("a", [1], qos: 1, id: 1) + W.hex("40 02 0001") + W.pingReq + W.pingResp
            + W.publish("b", [2, 3])
        #expect(MQTTStreamDecoder.plausibleStream(v311, minimumPackets: 5))
        #expect(!MQTTStreamDecoder.plausibleStream(v311, minimumPackets: 6))
        // A trailing partial packet is allowed.
        #expect(MQTTStreamDecoder.plausibleStream(v311 + [0x30, 0x20, 0x00], minimumPackets: 5))
        // Only parseable as 5.0 (PUBACK with a reason code and properties): found by the fallback.
        let v5 =
            W.packet(0x40, W.u16(1) + [0x10] + W.props(W.reasonString("x"))) + W.pingReq
            + W.publish("t", [], v5props: W.props())
        #expect(MQTTStreamDecoder.plausibleStream(v5, minimumPackets: 3))
        #expect(
            !MQTTStreamDecoder.plausibleStream(
                Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8),
                minimumPackets: 2))
        #expect(!MQTTStreamDecoder.plausibleStream([], minimumPackets: 1))
        #expect(!MQTTStreamDecoder.plausibleStream(W.pingReq + W.hex("00 00") + W.pingReq, minimumPackets: 2))
    }

    @Test func randomBytesAreRarelyPlausible() {
        var rng = MQTTTestRNG(seed: 42)
        var plausible = 0
        for _ in 0..<500 {
            let bytes = (0..<rng.int(16...200)).map { _ in rng.byte() }
            if MQTTStreamDecoder.plausibleStream(bytes, minimumPackets: 3) { plausible += 1 }
        }
        #expect(plausible < 10)
    }
}

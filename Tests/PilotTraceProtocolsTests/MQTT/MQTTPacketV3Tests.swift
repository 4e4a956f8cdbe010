import PilotTraceTestSupport
import Testing

@testable import PilotTraceProtocols

/// Byte-level tests of every MQTT 3.1.1 and 3.1 packet type; each vector is decoded byte by byte, whole and in
/// random splits by the harness.
@Suite struct MQTTPacketV3Tests {
    typealias W = MQTTWire

    @Test(
        "Summaries quote text exactly as Swift's debugDescription does, with or without the printable-ASCII fast path",
        arguments: [
            "", "thing/product/1ZNBJ7R0010078/osd", "a\"b", "back\\slash", "tab\there", "line\nfeed", "del\u{7F}",
            "nul\u{0}", "ünïcode/🛩", " leading and trailing ", "~!@#$%^&*()_+{}|:<>?`-=[];',./",
        ])
    func quotedMatchesDebugDescription(_ text: String) {
        #expect(MQTTText.quoted(text) == text.debugDescription)
    }

    @Test("A PUBLISH summary is the same text from the byte-writing fast path and the general one")
    func publishSummaryFastPathMatchesTheGeneralOne() {
        let topics = ["thing/product/1ZNBJ7R0010078/osd", "a/b", "", "sys/product/SN/status_reply"]
        for topic in topics {
            for (qos, id) in [(MQTTQoS.atMostOnce, nil), (.atLeastOnce, UInt16(1)), (.exactlyOnce, UInt16(65535))] {
                for (dup, retain) in [(false, false), (true, false), (false, true), (true, true)] {
                    for (stored, length) in [(0, 0), (5, 5), (10, 100_000)] {
                        let p = MQTTPublish(
                            dup: dup, qos: qos, retain: retain, topic: topic, topicSource: .literal,
                            packetIdentifier: id, properties: MQTTProperties(),
                            payload: MQTTPayload(stored: Array(repeating: 0x41, count: stored), length: length))
                        let general = MQTTPacket.publish(p).generalSummary(showSecrets: false)
                        #expect(MQTTPacket.publishSummary(p) == general)
                        #expect(MQTTPacket.publish(p).summary == general)
                    }
                }
            }
        }
        // Text that needs escaping, an alias or a reason string takes the general path.
        let quoted = MQTTPublish(
            dup: false, qos: .atMostOnce, retain: false, topic: "a\"b", topicSource: .literal,
            packetIdentifier: nil, properties: MQTTProperties(), payload: MQTTPayload(stored: [], length: 0))
        #expect(MQTTPacket.publishSummary(quoted) == nil)
        #expect(MQTTPacket.publish(quoted).summary == #"PUBLISH topic="a\"b" qos=0 payload=0B"#)
        var aliased = quoted
        aliased.topic = "a/b"
        aliased.topicSource = .resolvedFromAlias(3)
        #expect(MQTTPacket.publishSummary(aliased) == nil)
        var reasoned = aliased
        reasoned.topicSource = .literal
        reasoned.properties = MQTTProperties([MQTTProperty(.reasonString, .string("why"))])
        #expect(MQTTPacket.publishSummary(reasoned) == nil)
        #expect(MQTTPacket.publish(reasoned).summary == #"PUBLISH topic="a/b" qos=0 payload=0B reason="why""#)
    }

    @Test func connect311WithCredentialsFromHex() throws {
        // 10 19 | 00 04 "MQTT" | 04 | flags C2 (user, password, clean) | keep alive 60 | "cid" | "user" | "pw"
        let bytes = W.hex("10 19 0004 4d515454 04 c2 003c 0003 636964 0004 75736572 0002 7077")
        let packet = try #require(MQTTHarness.single(bytes))
        guard case .connect(let c) = packet else { Issue.record("not CONNECT"); return }
        #expect(c.protocolName == "MQTT")
        #expect(c.version == .v3_1_1)
        #expect(c.cleanSession)
        #expect(c.keepAlive == 60)
        #expect(c.clientIdentifier == "cid")
        #expect(c.username == "user")
        #expect(c.password == MQTTPayload(stored: Array("pw".utf8), length: 2))
        #expect(c.will == nil)
        #expect(c.properties.isEmpty)
        #expect(packet.summary == #"CONNECT MQTT 3.1.1 client-id="cid" clean-session keep-alive=60 username=present password=<hidden>"#)
        #expect(packet.summary(showSecrets: true).contains(#"username="user" password="pw""#))
        #expect(!packet.summary.contains("pw\""))
    }

    @Test func connect311WithWill() throws {
        // Will flag, will QoS 1, will retain, no clean session.
        let flags: UInt8 = 0x04 | (1 << 3) | 0x20
        let bytes = W.packet(
            0x10,
            W.str("MQTT") + [4, flags] + W.u16(10) + W.str("dev-1") + W.str("status/dev-1")
                + W.bin(Array("offline".utf8)))
        let packet = try #require(MQTTHarness.single(bytes))
        guard case .connect(let c) = packet else { Issue.record("not CONNECT"); return }
        #expect(!c.cleanSession)
        #expect(
            c.will
                == MQTTWill(
                    qos: .atLeastOnce, retain: true, properties: MQTTProperties(), topic: "status/dev-1",
                    payload: MQTTPayload(stored: Array("offline".utf8), length: 7)))
        #expect(c.username == nil && c.password == nil)
        #expect(packet.summary.contains(#"will=(topic="status/dev-1" qos=1 retain payload=7B)"#))
    }

    @Test func connect31MQIsdp() throws {
        // MQTT 3.1: protocol name MQIsdp, level 3; password without user name is decoded as sent.
        let bytes = W.packet(0x10, W.str("MQIsdp") + [3, 0x42] + W.u16(30) + W.str("old-client") + W.bin([1, 2, 3]))
        let packet = try #require(MQTTHarness.single(bytes))
        guard case .connect(let c) = packet else { Issue.record("not CONNECT"); return }
        #expect(c.version == .v3_1)
        #expect(c.protocolName == "MQIsdp")
        #expect(c.password?.stored == [1, 2, 3])
        #expect(packet.summary.hasPrefix("CONNECT MQIsdp 3.1 "))
        #expect(packet.summary(showSecrets: true).contains("password=0x010203"))
    }

    @Test func connAck311AndItsReturnCodes() throws {
        let accepted = try #require(MQTTHarness.single(W.hex("20 02 01 00")))
        #expect(
            accepted
                == .connAck(
                    MQTTConnAck(
                        sessionPresent: true, returnCode: .connectReturnCode(0),
                        properties: MQTTProperties())))
        #expect(accepted.summary == "CONNACK session-present rc=0x00 (Connection Accepted)")
        let names = (0...6).map { MQTTReasonCode.connectReturnCode(UInt8($0)).name }
        #expect(
            names == [
                "Connection Accepted", "Connection Refused, unacceptable protocol version",
                "Connection Refused, identifier rejected", "Connection Refused, Server unavailable",
                "Connection Refused, bad user name or password", "Connection Refused, not authorized",
                "Reserved",
            ])
        let refused = try #require(MQTTHarness.single(W.hex("20 02 00 05")))
        guard case .connAck(let a) = refused else { Issue.record("not CONNACK"); return }
        #expect(a.returnCode.rawValue == 5 && !a.returnCode.isSuccess && !a.sessionPresent)
    }

    @Test func connAck31IgnoresTheUnusedFirstByte() throws {
        let packet = try #require(MQTTHarness.single(W.hex("20 02 7f 02"), version: .v3_1))
        guard case .connAck(let a) = packet else { Issue.record("not CONNACK"); return }
        #expect(!a.sessionPresent)
        #expect(a.returnCode.name == "Connection Refused, identifier rejected")
    }

    @Test func publishQoS0AndQoS1AndQoS2() throws {
        let q0 = try #require(MQTTHarness.single(W.hex("30 0a 0003 612f62 68656c6c6f")))
        #expect(
            q0
                == .publish(
                    MQTTPublish(
                        dup: false, qos: .atMostOnce, retain: false, topic: "a/b", topicSource: .literal,
                        packetIdentifier: nil, properties: MQTTProperties(),
                        payload: MQTTPayload(stored: Array("hello".utf8), length: 5))))
        #expect(q0.summary == #"PUBLISH topic="a/b" qos=0 payload=5B"#)

        let q1 = try #require(MQTTHarness.single(W.hex("32 0c 0003 612f62 0007 68656c6c6f")))
        guard case .publish(let p1) = q1 else { Issue.record("not PUBLISH"); return }
        #expect(p1.qos == .atLeastOnce && p1.packetIdentifier == 7 && p1.payload.text == "hello")

        // DUP, QoS 2, RETAIN; empty payload.
        let q2 = try #require(MQTTHarness.single(W.hex("3d 07 0003 612f62 1234")))
        guard case .publish(let p2) = q2 else { Issue.record("not PUBLISH"); return }
        #expect(p2.dup && p2.retain && p2.qos == .exactlyOnce && p2.packetIdentifier == 0x1234)
        #expect(p2.payload == MQTTPayload(stored: [], length: 0))
        #expect(q2.summary == #"PUBLISH topic="a/b" qos=2 id=4660 dup retain payload=0B"#)
    }

    @Test func publishResponses() throws {
        let cases: [([UInt8], MQTTPacket)] = [
            (W.hex("40 02 0001"), .pubAck(MQTTPublishResponse(packetIdentifier: 1, reasonCode: nil, properties: .init()))),
            (W.hex("50 02 0002"), .pubRec(MQTTPublishResponse(packetIdentifier: 2, reasonCode: nil, properties: .init()))),
            (W.hex("62 02 0003"), .pubRel(MQTTPublishResponse(packetIdentifier: 3, reasonCode: nil, properties: .init()))),
            (W.hex("70 02 0004"), .pubComp(MQTTPublishResponse(packetIdentifier: 4, reasonCode: nil, properties: .init()))),
        ]
        for (bytes, expected) in cases {
            #expect(MQTTHarness.single(bytes) == expected)
            #expect(MQTTHarness.single(bytes, version: .v3_1) == expected)
        }
        #expect(cases[2].1.summary == "PUBREL id=3")
    }

    @Test func subscribeAndSubAck() throws {
        let sub = try #require(MQTTHarness.single(W.hex("82 0e 0001 0003 612f23 01 0003 622f2b 02")))
        guard case .subscribe(let s) = sub else { Issue.record("not SUBSCRIBE"); return }
        #expect(s.packetIdentifier == 1)
        #expect(s.subscriptions.map(\.topicFilter) == ["a/#", "b/+"])
        #expect(s.subscriptions.map(\.qos) == [.atLeastOnce, .exactlyOnce])
        #expect(sub.summary == #"SUBSCRIBE id=1 filters=["a/#" qos=1, "b/+" qos=2]"#)

        let ack = try #require(MQTTHarness.single(W.hex("90 04 0001 01 80")))
        guard case .subAck(let a) = ack else { Issue.record("not SUBACK"); return }
        #expect(a.returnCodes.map(\.rawValue) == [0x01, 0x80])
        #expect(a.returnCodes.map(\.name) == ["Success - Maximum QoS 1", "Failure"])
        #expect(ack.summary == "SUBACK id=1 codes=[0x01 (Success - Maximum QoS 1), 0x80 (Failure)]")
    }

    @Test func subscribeWithDupIsAcceptedOnlyIn31() throws {
        let bytes = W.hex("8a 08 0009 0003 612f62 00")
        let packet = try #require(MQTTHarness.single(bytes, version: .v3_1))
        #expect(packet.packetIdentifier == 9)
        MQTTHarness.expectError(bytes, version: .v3_1_1, .reservedFlags, at: 0)
    }

    @Test func unsubscribeAndUnsubAck() throws {
        let unsub = try #require(MQTTHarness.single(W.hex("a2 0c 0002 0003 612f23 0003 622f2b")))
        #expect(unsub == .unsubscribe(MQTTUnsubscribe(packetIdentifier: 2, properties: .init(), topicFilters: ["a/#", "b/+"])))
        #expect(unsub.summary == #"UNSUBSCRIBE id=2 filters=["a/#", "b/+"]"#)
        let ack = try #require(MQTTHarness.single(W.hex("b0 02 0002")))
        #expect(ack == .unsubAck(MQTTUnsubAck(packetIdentifier: 2, properties: .init(), reasonCodes: [])))
        #expect(ack.summary == "UNSUBACK id=2")
    }

    @Test func pingAndDisconnect() {
        #expect(MQTTHarness.single(W.hex("c0 00")) == .pingReq)
        #expect(MQTTHarness.single(W.hex("d0 00")) == .pingResp)
        #expect(MQTTHarness.single(W.hex("e0 00")) == .disconnect(MQTTDisconnect(reasonCode: nil, properties: .init())))
        #expect(MQTTPacket.pingReq.summary == "PINGREQ")
        #expect(MQTTPacket.disconnect(MQTTDisconnect(reasonCode: nil, properties: .init())).summary == "DISCONNECT")
    }

    @Test func utf8TopicsAndMultiByteRemainingLength() throws {
        // A 200-byte payload makes the Remaining Length two bytes; the topic has multi-byte UTF-8.
        let payload = (0..<200).map { UInt8($0) }
        let bytes = W.publish("無人機/状態", payload, qos: 1, id: 42)
        #expect(bytes[1] & 0x80 != 0)
        let packet = try #require(MQTTHarness.single(bytes))
        guard case .publish(let p) = packet else { Issue.record("not PUBLISH"); return }
        #expect(p.topic == "無人機/状態")
        #expect(p.payload.stored == payload && p.payload.text == nil)
    }

    @Test func everyV3PacketTypeInOneStream() {
        let stream =
            W.connect311() + W.hex("20 02 00 00") + W.publish("t", [1], qos: 1, id: 5) + W.hex("40 02 0005")
            + W.publish("t", [2], qos: 2, id: 6) + W.hex("50 02 0006") + W.hex("62 02 0006") + W.hex("70 02 0006")
            + W.hex("82 06 0001 0001 74 00") + W.hex("90 03 0001 00") + W.hex("a2 05 0002 0001 74")
            + W.hex("b0 02 0002") + W.pingReq + W.pingResp + W.hex("e0 00")
        let out = MQTTHarness.decodeAllWays(stream)
        #expect(out.error == nil)
        #expect(
            out.records.map(\.packet.type) == [
                .connect, .connAck, .publish, .pubAck, .publish, .pubRec, .pubRel,
                .pubComp, .subscribe, .subAck, .unsubscribe, .unsubAck, .pingReq,
                .pingResp, .disconnect,
            ])
        #expect(out.records.allSatisfy { $0.version == .v3_1_1 && !$0.versionAssumed })
        #expect(out.packetsDecoded == 15)
        #expect(out.consumed == stream.count)
    }
}

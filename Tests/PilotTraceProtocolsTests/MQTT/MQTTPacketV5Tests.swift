import PilotTraceTestSupport
import Testing

@testable import PilotTraceProtocols

/// Byte-level tests of every MQTT 5.0 packet type and of properties.
@Suite struct MQTTPacketV5Tests {
    typealias W = MQTTWire

    @Test func connectWithPropertiesWillPropertiesAndCredentials() throws {
        let flags: UInt8 = 0x80 | 0x40 | 0x04 | (2 << 3) | 0x02
        let props = W.props(W.sessionExpiry(3600), [0x21] + W.u16(20), W.userProperty("sn", "1581F"))
        let willProps = W.props([0x18] + W.u32(5), [0x03] + W.str("application/json"))
        let body =
            W.str("MQTT") + [5, flags] + W.u16(45) + props + W.str("pilot-2") + willProps + W.str("will/t")
            + W.bin([0x7B, 0x7D]) + W.str("dji") + W.bin(Array("s3cret".utf8))
        let packet = try #require(MQTTHarness.single(W.packet(0x10, body)))
        guard case .connect(let c) = packet else { Issue.record("not CONNECT"); return }
        #expect(c.version == .v5 && c.cleanSession && c.keepAlive == 45)
        #expect(c.properties.sessionExpiryInterval == 3600)
        #expect(c.properties.first(.receiveMaximum)?.value == .twoByteInteger(20))
        #expect(c.properties.userProperties.map { "\($0.name)=\($0.value)" } == ["sn=1581F"])
        let will = try #require(c.will)
        #expect(will.qos == .exactlyOnce && !will.retain && will.topic == "will/t" && will.payload.text == "{}")
        #expect(
            will.properties.all == [
                MQTTProperty(.willDelayInterval, .fourByteInteger(5)),
                MQTTProperty(.contentType, .string("application/json")),
            ])
        #expect(c.username == "dji" && c.password?.text == "s3cret")
        #expect(
            packet.summary
                == #"CONNECT MQTT 5.0 client-id="pilot-2" clean-start keep-alive=45 username=present password=<hidden> will=(topic="will/t" qos=2 payload=2B) session-expiry=3600 user-properties=1"#
        )
        #expect(!packet.summary.contains("s3cret"))
        #expect(packet.summary(showSecrets: true).contains(#"password="s3cret""#))
    }

    @Test func connAckWithReasonCodeAndProperties() throws {
        let body: [UInt8] = [0x01, 0x00] + W.props([0x12] + W.str("auto-1"), W.sessionExpiry(60), W.topicAliasMaximumBytes(10))
        let packet = try #require(MQTTHarness.single(W.packet(0x20, body), version: .v5))
        guard case .connAck(let a) = packet else { Issue.record("not CONNACK"); return }
        #expect(a.sessionPresent && a.returnCode == .v5(0, in: .connAck) && a.returnCode.name == "Success")
        #expect(a.properties.first(.topicAliasMaximum)?.integerValue == 10)
        #expect(packet.summary == #"CONNACK session-present rc=0x00 (Success) assigned-client-id="auto-1" session-expiry=60"#)

        let refused = try #require(
            MQTTHarness.single(
                W.packet(0x20, [0x00, 0x86] + W.props(W.reasonString("bad creds"))),
                version: .v5))
        #expect(refused.summary == #"CONNACK rc=0x86 (Bad User Name or Password) reason="bad creds""#)
        // A CONNACK without the Property Length is read leniently as having no properties.
        #expect(
            MQTTHarness.single(W.hex("20 02 00 87"), version: .v5)
                == .connAck(MQTTConnAck(sessionPresent: false, returnCode: .v5(0x87, in: .connAck), properties: .init())))
    }

    @Test func publishWithPropertiesAndTopicAliasResolution() throws {
        let bind = W.publish(
            "thing/product/SN1/osd", Array("{}".utf8), qos: 1, id: 3,
            v5props: W.props(W.topicAlias(4), [0x01, 0x01], W.userProperty("k", "v")))
        let use = W.publish("", Array("{\"a\":1}".utf8), v5props: W.props(W.topicAlias(4), [0x02] + W.u32(30)))
        let unknown = W.publish("", [1], v5props: W.props(W.topicAlias(9)))
        let rebind = W.publish("other", [], v5props: W.props(W.topicAlias(4)))
        let again = W.publish("", [], v5props: W.props(W.topicAlias(4)))
        let out = MQTTHarness.decodeAllWays(bind + use + unknown + rebind + again, .init(defaultVersion: .v5))
        #expect(out.error == nil)
        let publishes: [MQTTPublish] = out.records.compactMap { if case .publish(let p) = $0.packet { p } else { nil } }
        try #require(publishes.count == 5)
        #expect(publishes[0].topic == "thing/product/SN1/osd" && publishes[0].topicSource == .literalBoundToAlias(4))
        #expect(publishes[0].properties.first(.payloadFormatIndicator)?.value == .byte(1))
        #expect(publishes[0].packetIdentifier == 3)
        #expect(publishes[1].topic == "thing/product/SN1/osd" && publishes[1].topicSource == .resolvedFromAlias(4))
        #expect(publishes[1].topicResolvedFromAlias)
        #expect(publishes[1].properties.messageExpiryInterval == 30)
        #expect(publishes[1].payload.text == "{\"a\":1}")
        #expect(publishes[2].topic == "" && publishes[2].topicSource == .unresolvedAlias(9))
        #expect(publishes[3].topicSource == .literalBoundToAlias(4))
        #expect(publishes[4].topic == "other" && publishes[4].topicSource == .resolvedFromAlias(4))
        #expect(out.records[1].packet.summary == #"PUBLISH topic="thing/product/SN1/osd" alias=4(resolved) qos=0 payload=7B"#)
    }

    @Test func publishResponsesWithOmittedAndPresentReasonCodes() throws {
        // Remaining Length 2: Success, no properties (§3.4.2.1).
        #expect(
            MQTTHarness.single(W.hex("40 02 0001"), version: .v5)
                == .pubAck(MQTTPublishResponse(packetIdentifier: 1, reasonCode: .v5(0, in: .pubAck), properties: .init())))
        // Remaining Length 3: reason code, no properties.
        let noMatch = try #require(MQTTHarness.single(W.hex("40 03 0001 10"), version: .v5))
        #expect(noMatch.summary == "PUBACK id=1 rc=0x10 (No matching subscribers)")
        // Reason code and a reason string.
        let rec = try #require(
            MQTTHarness.single(
                W.packet(0x50, W.u16(2) + [0x80] + W.props(W.reasonString("quota"))),
                version: .v5))
        guard case .pubRec(let r) = rec else { Issue.record("not PUBREC"); return }
        #expect(r.reasonCode?.name == "Unspecified error" && r.properties.reasonString == "quota")
        let rel = try #require(MQTTHarness.single(W.packet(0x62, W.u16(3) + [0x92] + W.props()), version: .v5))
        #expect(rel.summary == "PUBREL id=3 rc=0x92 (Packet Identifier not found)")
        let comp = try #require(
            MQTTHarness.single(
                W.packet(0x70, W.u16(4) + [0x00] + W.props(W.userProperty("a", "b"))),
                version: .v5))
        #expect(comp.summary == "PUBCOMP id=4 rc=0x00 (Success) user-properties=1")
    }

    @Test func subscribeOptionsAndSubAckReasonCodes() throws {
        // QoS 1 + No Local + Retain As Published + Retain Handling 2; then QoS 0, Retain Handling 1.
        let body =
            W.u16(10) + W.props([0x0B, 0x81, 0x01]) + W.str("a/#") + [0x01 | 0x04 | 0x08 | 0x20]
            + W.str("$share/g/b") + [0x10]
        let packet = try #require(MQTTHarness.single(W.packet(0x82, body), version: .v5))
        guard case .subscribe(let s) = packet else { Issue.record("not SUBSCRIBE"); return }
        #expect(s.properties.subscriptionIdentifiers == [129])
        #expect(
            s.subscriptions[0]
                == MQTTSubscription(
                    topicFilter: "a/#", qos: .atLeastOnce, noLocal: true,
                    retainAsPublished: true, retainHandling: 2, options: 0x2D))
        #expect(s.subscriptions[1].qos == .atMostOnce && s.subscriptions[1].retainHandling == 1 && !s.subscriptions[1].noLocal)

        let ack = try #require(
            MQTTHarness.single(
                W.packet(0x90, W.u16(10) + W.props() + [0x00, 0x01, 0x02, 0x87, 0xA2]),
                version: .v5))
        guard case .subAck(let a) = ack else { Issue.record("not SUBACK"); return }
        #expect(
            a.returnCodes.map(\.name) == [
                "Granted QoS 0", "Granted QoS 1", "Granted QoS 2", "Not authorized",
                "Wildcard Subscriptions not supported",
            ])
    }

    @Test func unsubscribeAndUnsubAckReasonCodes() throws {
        let unsub = try #require(
            MQTTHarness.single(
                W.packet(0xA2, W.u16(11) + W.props(W.userProperty("x", "y")) + W.str("a/#")), version: .v5))
        guard case .unsubscribe(let u) = unsub else { Issue.record("not UNSUBSCRIBE"); return }
        #expect(u.topicFilters == ["a/#"] && u.properties.userProperties.count == 1)
        let ack = try #require(MQTTHarness.single(W.packet(0xB0, W.u16(11) + W.props() + [0x00, 0x11]), version: .v5))
        #expect(
            ack
                == .unsubAck(
                    MQTTUnsubAck(
                        packetIdentifier: 11, properties: .init(),
                        reasonCodes: [.v5(0, in: .unsubAck), .v5(0x11, in: .unsubAck)])))
        #expect(ack.summary == "UNSUBACK id=11 codes=[0x00 (Success), 0x11 (No subscription existed)]")
    }

    @Test func disconnectVariants() throws {
        #expect(
            MQTTHarness.single(W.hex("e0 00"), version: .v5)
                == .disconnect(MQTTDisconnect(reasonCode: .v5(0, in: .disconnect), properties: .init())))
        #expect(MQTTHarness.single(W.hex("e0 00"), version: .v5)?.summary == "DISCONNECT rc=0x00 (Normal disconnection)")
        #expect(MQTTHarness.single(W.hex("e0 01 8e"), version: .v5)?.summary == "DISCONNECT rc=0x8e (Session taken over)")
        let withProps = try #require(
            MQTTHarness.single(
                W.packet(0xE0, [0x04] + W.props(W.sessionExpiry(0), W.reasonString("bye"))), version: .v5))
        guard case .disconnect(let d) = withProps else { Issue.record("not DISCONNECT"); return }
        #expect(d.reasonCode?.name == "Disconnect with Will Message")
        #expect(d.properties.sessionExpiryInterval == 0 && d.properties.reasonString == "bye")
    }

    @Test func authPacket() throws {
        #expect(
            MQTTHarness.single(W.hex("f0 00"), version: .v5)
                == .auth(MQTTAuth(reasonCode: .v5(0, in: .auth), properties: .init())))
        let auth = try #require(
            MQTTHarness.single(
                W.packet(0xF0, [0x18] + W.props([0x15] + W.str("SCRAM-SHA-1"), [0x16] + W.bin([0xDE, 0xAD]))), version: .v5))
        #expect(auth.summary == #"AUTH rc=0x18 (Continue authentication) method="SCRAM-SHA-1" data=<hidden>"#)
        #expect(auth.summary(showSecrets: true).contains("data=0xdead"))
    }

    @Test func everyPropertyTypeDecodes() throws {
        // One property of each value type, on a PUBLISH.
        let props = W.props(
            [0x01, 0x00],  // byte
            [0x23] + W.u16(0),  // two-byte integer (alias 0: not bound)
            [0x02] + W.u32(0xFFFF_FFFF),  // four-byte integer
            [0x0B, 0xFF, 0xFF, 0xFF, 0x7F],  // variable byte integer, four bytes
            [0x08] + W.str("reply/here"),  // string
            [0x09] + W.bin([0, 1, 2]),  // binary
            W.userProperty("", "é"))  // string pair, empty name allowed
        let packet = try #require(MQTTHarness.single(W.publish("t", [9], v5props: props), version: .v5))
        guard case .publish(let p) = packet else { Issue.record("not PUBLISH"); return }
        #expect(
            p.properties.all.map(\.value) == [
                .byte(0), .twoByteInteger(0), .fourByteInteger(0xFFFF_FFFF), .variableByteInteger(268_435_455),
                .string("reply/here"), .binary([0, 1, 2]), .stringPair(name: "", value: "é"),
            ])
        #expect(p.topicSource == .literal)
        #expect(p.properties.responseTopic == "reply/here")
        #expect(MQTTPropertyIdentifier.topicAlias.name == "Topic Alias")
        #expect(MQTTPropertyIdentifier(rawValue: 0x05).valueType == nil)
    }

    @Test func reasonCodeTableNames() {
        #expect(MQTTReasonCode.v5(0x00, in: .pubAck).name == "Success")
        #expect(MQTTReasonCode.v5(0x00, in: .disconnect).name == "Normal disconnection")
        #expect(MQTTReasonCode.v5(0x00, in: .subAck).name == "Granted QoS 0")
        #expect(MQTTReasonCode.v5(0x81, in: .disconnect).name == "Malformed Packet")
        #expect(MQTTReasonCode.v5(0x97, in: .pubAck).name == "Quota exceeded")
        #expect(MQTTReasonCode.v5(0x9C, in: .connAck).name == "Use another server")
        #expect(MQTTReasonCode.v5(0x03, in: .pubAck).name == "Unknown reason code")
        #expect(MQTTReasonCode.v5(0x87, in: .connAck).description == "0x87 (Not authorized)")
        #expect(MQTTReasonCode.subscribeReturnCode(0x02).name == "Success - Maximum QoS 2")
    }
}

extension MQTTWire {
    static func topicAliasMaximumBytes(_ n: UInt16) -> [UInt8] { [0x22] + u16(n) }
}

import PilotTraceTestSupport
import Testing

@testable import PilotTraceProtocols

/// Every malformation yields a typed error with the stream offset of the offending field. Each bad packet is
/// placed after a PINGREQ (so offsets are stream offsets, not packet offsets) and decoded all three ways; the
/// `at:` offsets below are relative to the bad packet's first byte.
@Suite struct MQTTErrorTests {
    typealias W = MQTTWire

    @Test func remainingLengthOverFourBytes() throws {
        // MQTT 3.1.1 §2.2.3: the fourth byte must not have its continuation bit set.
        let error = try #require(MQTTHarness.expectError(W.hex("30 ff ff ff ff 01"), .remainingLengthTooLong, at: 1))
        #expect(error.description.contains("remaining-length-too-long at offset 3"))
        #expect(!error.message.isEmpty)
        // Four continuation-free bytes encode the maximum, which the default limit rejects.
        MQTTHarness.expectError(W.hex("30 ff ff ff 7f"), .packetTooLarge, at: 1)
    }

    @Test func remainingLengthStillIncompleteIsNotAnError() throws {
        var d = MQTTStreamDecoder()
        d.feed(W.hex("30 ff ff ff"))
        #expect(try d.next() == nil)
        #expect(!d.isDesynchronised && d.errorCount == 0 && d.bufferedByteCount == 4)
    }

    @Test func packetOverTheConfiguredMaximum() {
        let config = MQTTStreamDecoder.Configuration(maxRemainingLength: 100)
        MQTTHarness.expectError([0x30, 101], .packetTooLarge, at: 1, configuration: config)
        MQTTHarness.expectError([0x82, 0xE5, 0x00], .packetTooLarge, at: 1, configuration: config)  // 101, two bytes
        let exact = W.packet(0x30, W.str("t") + [UInt8](repeating: 7, count: 97))
        let out = MQTTHarness.decodeAllWays(exact, config)
        #expect(out.error == nil && out.records.count == 1)
    }

    @Test func lengthsPastThePacketEnd() {
        MQTTHarness.expectError(W.hex("30 05 0009 616263"), .lengthPastEnd, at: 2)  // topic
        MQTTHarness.expectError(W.hex("32 03 0001 61"), .lengthPastEnd, at: 5)  // packet identifier
        MQTTHarness.expectError(W.hex("40 01 00"), .lengthPastEnd, at: 2)  // PUBACK id
        MQTTHarness.expectError(W.hex("82 07 0001 0003 612f62"), .lengthPastEnd, at: 9)  // options byte
        MQTTHarness.expectError(W.hex("a2 05 0001 0009 61"), .lengthPastEnd, at: 4)  // unsubscribe filter
        let clientID = W.packet(0x10, W.str("MQTT") + [4, 2] + W.u16(60) + [0x00, 0x10, 0x61])
        MQTTHarness.expectError(clientID, .lengthPastEnd, at: 12)
        let password = W.packet(0x10, W.str("MQTT") + [4, 0xC2] + W.u16(0) + W.str("c") + W.str("u") + [0, 5, 0x61])
        MQTTHarness.expectError(password, .lengthPastEnd, at: 18)
        let willPayload = W.packet(0x10, W.str("MQTT") + [4, 0x06] + W.u16(0) + W.str("c") + W.str("w") + [0, 9])
        MQTTHarness.expectError(willPayload, .lengthPastEnd, at: 18)
        // A property value running past its property block (Topic Alias needs two bytes, one is left).
        MQTTHarness.expectError(W.hex("40 06 0001 00 02 23 00"), version: .v5, .lengthPastEnd, at: 7)
    }

    @Test func invalidUTF8() {
        MQTTHarness.expectError(W.hex("30 05 0003 61ff62"), .invalidUTF8, at: 2)  // invalid byte
        MQTTHarness.expectError(W.hex("30 05 0003 610062"), .invalidUTF8, at: 2)  // U+0000
        let overlong = W.packet(0x10, W.str("MQTT") + [4, 2] + W.u16(0) + [0, 2, 0xC0, 0x80])
        MQTTHarness.expectError(overlong, .invalidUTF8, at: 12)
        MQTTHarness.expectError(W.hex("82 08 0001 0003 61eda0 00"), .invalidUTF8, at: 4)  // truncated sequence
        // A surrogate (U+D800) in a v5 User Property value.
        let surrogate = W.publish("t", [], v5props: W.props([0x26] + W.str("k") + [0, 3, 0xED, 0xA0, 0x80]))
        MQTTHarness.expectError(surrogate, version: .v5, .invalidUTF8, at: 10)
    }

    @Test func reservedFixedHeaderFlags() {
        MQTTHarness.expectError(W.hex("63 02 0001"), .reservedFlags, at: 0)  // PUBREL must be 0010
        MQTTHarness.expectError(W.hex("60 02 0001"), .reservedFlags, at: 0)
        MQTTHarness.expectError(W.hex("41 02 0001"), .reservedFlags, at: 0)  // PUBACK must be 0000
        MQTTHarness.expectError(W.hex("80 06 0001 0001 74 00"), .reservedFlags, at: 0)
        MQTTHarness.expectError(W.hex("a0 05 0001 0001 74"), .reservedFlags, at: 0)
        MQTTHarness.expectError(W.hex("c1 00"), .reservedFlags, at: 0)
        MQTTHarness.expectError(W.hex("28 02 0000"), version: .v5, .reservedFlags, at: 0)
        // MQTT 3.1 allows the DUP bit on PUBREL, but not the RETAIN bit.
        MQTTHarness.expectError(W.hex("6b 02 0001"), version: .v3_1, .reservedFlags, at: 0)
        #expect(MQTTHarness.single(W.hex("6a 02 0001"), version: .v3_1)?.type == .pubRel)
    }

    @Test func qos3() {
        MQTTHarness.expectError(W.hex("36 05 0003 612f62"), .invalidQoS, at: 0)
        let will = W.packet(0x10, W.str("MQTT") + [4, 0x04 | 0x18] + W.u16(0) + W.str("c") + W.str("w") + W.bin([]))
        MQTTHarness.expectError(will, .invalidQoS, at: 9)
        MQTTHarness.expectError(W.hex("82 06 0001 0001 74 03"), .invalidQoS, at: 7)
        MQTTHarness.expectError(W.hex("82 07 0001 00 0001 74 03"), version: .v5, .invalidQoS, at: 8)
    }

    @Test func reservedPacketTypes() {
        MQTTHarness.expectError(W.hex("00 00"), .reservedPacketType, at: 0)
        MQTTHarness.expectError(W.hex("00 00"), version: .v5, .reservedPacketType, at: 0)
        MQTTHarness.expectError(W.hex("f0 00"), version: .v3_1_1, .reservedPacketType, at: 0)
        MQTTHarness.expectError(W.hex("f0 00"), version: .v3_1, .reservedPacketType, at: 0)
        #expect(MQTTHarness.single(W.hex("f0 00"), version: .v5)?.type == .auth)
    }

    @Test func unknownProtocolNameOrLevel() {
        func connect(_ name: String, _ level: UInt8) -> [UInt8] {
            W.packet(0x10, W.str(name) + [level, 2] + W.u16(0) + W.str("c"))
        }
        MQTTHarness.expectError(connect("MQTX", 4), .unknownProtocol, at: 2)
        MQTTHarness.expectError(connect("mqtt", 4), .unknownProtocol, at: 2)
        MQTTHarness.expectError(connect("MQTT", 3), .unknownProtocol, at: 8)
        MQTTHarness.expectError(connect("MQTT", 6), .unknownProtocol, at: 8)
        MQTTHarness.expectError(connect("MQIsdp", 4), .unknownProtocol, at: 10)
    }

    @Test func propertyLengthOverrunsThePacket() {
        MQTTHarness.expectError(W.hex("40 05 0001 00 09 26"), version: .v5, .propertyLengthPastEnd, at: 5)
        MQTTHarness.expectError(W.hex("30 05 0001 74 0a 01"), version: .v5, .propertyLengthPastEnd, at: 5)
        let connect = W.packet(0x10, W.str("MQTT") + [5, 2] + W.u16(0) + [0x7F] + W.str("c"))
        MQTTHarness.expectError(connect, .propertyLengthPastEnd, at: 12)
        // Five-byte Property Length (on the PUBLISH path, which streams payloads) and Subscription Identifier.
        MQTTHarness.expectError(W.hex("30 08 0001 74 80808080 01"), version: .v5, .malformedVariableByteInteger, at: 5)
        MQTTHarness.expectError(W.hex("40 07 0001 00 80808080"), version: .v5, .malformedVariableByteInteger, at: 5)
        MQTTHarness.expectError(W.hex("30 09 0001 74 05 0b 80808080"), version: .v5, .malformedVariableByteInteger, at: 7)
    }

    @Test func unknownPropertyIdentifier() {
        MQTTHarness.expectError(W.hex("40 06 0001 00 02 05 00"), version: .v5, .unknownProperty, at: 6)
        MQTTHarness.expectError(W.hex("40 06 0001 00 02 8001"), version: .v5, .unknownProperty, at: 6)  // 128 as VBI
        // Topic Alias is fine on a PUBLISH, Unknown 0x00 is not.
        MQTTHarness.expectError(W.hex("30 06 0001 74 02 00 00"), version: .v5, .unknownProperty, at: 6)
    }

    @Test func trailingBytes() {
        MQTTHarness.expectError(W.hex("c0 01 00"), .trailingBytes, at: 2)
        MQTTHarness.expectError(W.hex("d0 01 00"), version: .v5, .trailingBytes, at: 2)
        MQTTHarness.expectError(W.hex("40 03 0001 00"), .trailingBytes, at: 4)  // 3.1.1 PUBACK is 2 bytes
        MQTTHarness.expectError(W.hex("20 03 0000 00"), .trailingBytes, at: 4)
        MQTTHarness.expectError(W.hex("b0 03 0001 00"), .trailingBytes, at: 4)
        MQTTHarness.expectError(W.hex("e0 01 00"), .trailingBytes, at: 2)  // 3.1.1 DISCONNECT is empty
        MQTTHarness.expectError(connectWithExtraByte(), .trailingBytes, at: 19)
    }

    func connectWithExtraByte() -> [UInt8] {
        // Remaining Length 18: 6 + 1 + 1 + 2 + 7 ("pilot"), then one extra byte at offset 2 + 17 = 19.
        W.packet(0x10, W.str("MQTT") + [4, 0x02] + W.u16(60) + W.str("pilot") + [0x00])
    }

    @Test func reservedBitsInsideThePacket() {
        MQTTHarness.expectError(W.packet(0x10, W.str("MQTT") + [4, 0x03] + W.u16(0) + W.str("c")), .reservedBits, at: 9)
        MQTTHarness.expectError(W.hex("20 02 02 00"), .reservedBits, at: 2)
        MQTTHarness.expectError(W.hex("20 03 80 00 00"), version: .v5, .reservedBits, at: 2)
        MQTTHarness.expectError(W.hex("82 06 0001 0001 74 05"), .reservedBits, at: 7)
        MQTTHarness.expectError(W.hex("82 07 0001 00 0001 74 40"), version: .v5, .reservedBits, at: 8)
        // MQTT 3.1 leaves the CONNECT reserved bit unchecked.
        let connect31 = W.packet(0x10, W.str("MQIsdp") + [3, 0x03] + W.u16(0) + W.str("c"))
        #expect(MQTTHarness.single(connect31)?.type == .connect)
    }

    @Test func willFlagsWithoutWill() {
        MQTTHarness.expectError(W.packet(0x10, W.str("MQTT") + [4, 0x22] + W.u16(0) + W.str("c")), .invalidConnectFlags, at: 9)
        MQTTHarness.expectError(W.packet(0x10, W.str("MQTT") + [4, 0x0A] + W.u16(0) + W.str("c")), .invalidConnectFlags, at: 9)
    }

    @Test func retainHandling3() {
        MQTTHarness.expectError(W.hex("82 07 0001 00 0001 74 30"), version: .v5, .invalidSubscriptionOptions, at: 8)
    }

    @Test func subscribeWithoutTopicFilters() {
        MQTTHarness.expectError(W.hex("82 02 0001"), .missingTopicFilter, at: 4)
        MQTTHarness.expectError(W.hex("a2 02 0001"), .missingTopicFilter, at: 4)
        MQTTHarness.expectError(W.hex("82 03 0001 00"), version: .v5, .missingTopicFilter, at: 5)
    }

    @Test func twoStageAPIReportsTheSameErrors() throws {
        let bytes = W.pingReq + W.hex("40 06 0001 00 02 05 00")
        let frame = try #require(try MQTTFrame.read(bytes, at: 2, streamOffset: 1002))
        #expect(frame.body.count == 6)
        #expect(
            throws: MQTTError(
                .unknownProperty, offset: 1008, packetOffset: 1002,
                "property identifier 5 is not defined (§2.2.2.2)")
        ) {
            _ = try MQTTPacket.parse(frame, version: .v5)
        }
        #expect(try MQTTFrame.read(W.hex("40 06 0001"), at: 0) == nil)
        #expect(throws: MQTTError.self) { _ = try MQTTFrame.read(W.hex("30 80 80 80 80")) }
    }
}

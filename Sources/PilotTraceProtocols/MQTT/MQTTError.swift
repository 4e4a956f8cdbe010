/// A malformed MQTT byte sequence: what was wrong, where in the stream, and a readable message.
///
/// Wire errors only; transport problems (gaps, resets) are reported by the stream decoders as state, never as
/// an `MQTTError`. `Code` is a struct rather than an enum so that codes can be added without breaking clients.
///
/// `offset` is the stream offset of the first byte of the offending field (a length prefix, a flags byte, a
/// property identifier); `packetOffset` is the stream offset of the packet's first byte.
public struct MQTTError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of malformation was found; compare with the static members.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// MQTT 3.1.1 §2.2.3 / 5.0 §1.5.5: the Remaining Length is at most four bytes; the fourth had its
        /// continuation bit set.
        public static let remainingLengthTooLong = Code(rawValue: "remaining-length-too-long")
        /// The Remaining Length exceeds the decoder's configured maximum packet size.
        public static let packetTooLarge = Code(rawValue: "packet-too-large")
        /// A length-prefixed or fixed-size field (string, binary data, topic, packet identifier, property
        /// value) runs past the end of its packet (or of its property block).
        public static let lengthPastEnd = Code(rawValue: "length-past-end")
        /// MQTT 5.0 §2.2.2.1: the Property Length runs past the end of the packet.
        public static let propertyLengthPastEnd = Code(rawValue: "property-length-past-end")
        /// MQTT 5.0 §2.2.2.2: a property identifier that the specification does not define.
        public static let unknownProperty = Code(rawValue: "unknown-property")
        /// MQTT 3.1.1 §1.5.3 / 5.0 §1.5.4: a string is not well-formed UTF-8 or contains U+0000.
        public static let invalidUTF8 = Code(rawValue: "invalid-utf8")
        /// MQTT 3.1.1 §2.2.2 / 5.0 §2.1.3: the fixed-header flags are wrong for the packet type.
        public static let reservedFlags = Code(rawValue: "reserved-flags")
        /// A reserved bit inside the packet is set (CONNECT flags bit 0, CONNACK flags bits 7–1,
        /// SUBSCRIBE option bits).
        public static let reservedBits = Code(rawValue: "reserved-bits")
        /// MQTT 3.1.1 §3.3.1.2 / §3.1.2.6 / §3.8.3.1: a QoS of 3 (PUBLISH, will or subscription).
        public static let invalidQoS = Code(rawValue: "invalid-qos")
        /// MQTT 3.1.1 §2.2.1: packet type 0 (or 15 before MQTT 5.0) is reserved.
        public static let reservedPacketType = Code(rawValue: "reserved-packet-type")
        /// MQTT 3.1.1 §3.1.2.1–2: a CONNECT protocol name/level pair that is not MQIsdp/3, MQTT/4 or MQTT/5.
        public static let unknownProtocol = Code(rawValue: "unknown-protocol")
        /// MQTT 3.1.1 §3.1.2.6: will QoS or will retain set while the will flag is 0.
        public static let invalidConnectFlags = Code(rawValue: "invalid-connect-flags")
        /// MQTT 5.0 §3.8.3.1: Retain Handling 3 is reserved.
        public static let invalidSubscriptionOptions = Code(rawValue: "invalid-subscription-options")
        /// MQTT 3.1.1 §3.8.3 / §3.10.3: a SUBSCRIBE or UNSUBSCRIBE with no topic filter.
        public static let missingTopicFilter = Code(rawValue: "missing-topic-filter")
        /// Bytes left over after the packet's last field (e.g. a PINGREQ with a body, a 3.x PUBACK of length 3).
        public static let trailingBytes = Code(rawValue: "trailing-bytes")
        /// MQTT 5.0 §1.5.5: a Variable Byte Integer (other than the Remaining Length) longer than four bytes.
        public static let malformedVariableByteInteger = Code(rawValue: "malformed-variable-byte-integer")
    }

    public var code: Code
    /// Stream offset of the first byte of the offending field.
    public var offset: Int
    /// Stream offset of the first byte of the packet the error is in.
    public var packetOffset: Int
    public var message: String

    public init(_ code: Code, offset: Int, packetOffset: Int, _ message: String) {
        self.code = code
        self.offset = offset
        self.packetOffset = packetOffset
        self.message = message
    }

    public var description: String { "MQTT \(code) at offset \(offset) (packet at \(packetOffset)): \(message)" }
}

/// An MQTT 5.0 property identifier (§2.2.2.2 Table 2-4).
///
/// Identifiers are Variable Byte Integers on the wire, but every defined one is below 0x80, so a byte holds it.
public struct MQTTPropertyIdentifier: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let payloadFormatIndicator = Self(rawValue: 0x01)
    public static let messageExpiryInterval = Self(rawValue: 0x02)
    public static let contentType = Self(rawValue: 0x03)
    public static let responseTopic = Self(rawValue: 0x08)
    public static let correlationData = Self(rawValue: 0x09)
    public static let subscriptionIdentifier = Self(rawValue: 0x0B)
    public static let sessionExpiryInterval = Self(rawValue: 0x11)
    public static let assignedClientIdentifier = Self(rawValue: 0x12)
    public static let serverKeepAlive = Self(rawValue: 0x13)
    public static let authenticationMethod = Self(rawValue: 0x15)
    public static let authenticationData = Self(rawValue: 0x16)
    public static let requestProblemInformation = Self(rawValue: 0x17)
    public static let willDelayInterval = Self(rawValue: 0x18)
    public static let requestResponseInformation = Self(rawValue: 0x19)
    public static let responseInformation = Self(rawValue: 0x1A)
    public static let serverReference = Self(rawValue: 0x1C)
    public static let reasonString = Self(rawValue: 0x1F)
    public static let receiveMaximum = Self(rawValue: 0x21)
    public static let topicAliasMaximum = Self(rawValue: 0x22)
    public static let topicAlias = Self(rawValue: 0x23)
    public static let maximumQoS = Self(rawValue: 0x24)
    public static let retainAvailable = Self(rawValue: 0x25)
    public static let userProperty = Self(rawValue: 0x26)
    public static let maximumPacketSize = Self(rawValue: 0x27)
    public static let wildcardSubscriptionAvailable = Self(rawValue: 0x28)
    public static let subscriptionIdentifierAvailable = Self(rawValue: 0x29)
    public static let sharedSubscriptionAvailable = Self(rawValue: 0x2A)

    /// How a property's value is encoded (MQTT 5.0 §2.2.2.2 Table 2-4, §1.5 data representation).
    public enum ValueType: Hashable, Sendable {
        case byte, twoByteInteger, fourByteInteger, variableByteInteger, utf8String, binaryData, utf8StringPair
    }

    /// The value type of a defined identifier; nil for identifiers the specification does not define.
    public var valueType: ValueType? { Self.table[rawValue]?.type }

    /// The specification's name, e.g. `Topic Alias`; `Unknown (0x…)` for undefined identifiers.
    public var name: String { Self.table[rawValue]?.name ?? "Unknown (\(MQTTText.hex(rawValue)))" }

    public var description: String { name }

    private static let table: [UInt8: (name: String, type: ValueType)] = [
        0x01: ("Payload Format Indicator", .byte),
        0x02: ("Message Expiry Interval", .fourByteInteger),
        0x03: ("Content Type", .utf8String),
        0x08: ("Response Topic", .utf8String),
        0x09: ("Correlation Data", .binaryData),
        0x0B: ("Subscription Identifier", .variableByteInteger),
        0x11: ("Session Expiry Interval", .fourByteInteger),
        0x12: ("Assigned Client Identifier", .utf8String),
        0x13: ("Server Keep Alive", .twoByteInteger),
        0x15: ("Authentication Method", .utf8String),
        0x16: ("Authentication Data", .binaryData),
        0x17: ("Request Problem Information", .byte),
        0x18: ("Will Delay Interval", .fourByteInteger),
        0x19: ("Request Response Information", .byte),
        0x1A: ("Response Information", .utf8String),
        0x1C: ("Server Reference", .utf8String),
        0x1F: ("Reason String", .utf8String),
        0x21: ("Receive Maximum", .twoByteInteger),
        0x22: ("Topic Alias Maximum", .twoByteInteger),
        0x23: ("Topic Alias", .twoByteInteger),
        0x24: ("Maximum QoS", .byte),
        0x25: ("Retain Available", .byte),
        0x26: ("User Property", .utf8StringPair),
        0x27: ("Maximum Packet Size", .fourByteInteger),
        0x28: ("Wildcard Subscription Available", .byte),
        0x29: ("Subscription Identifier Available", .byte),
        0x2A: ("Shared Subscription Available", .byte),
    ]
}

/// One MQTT 5.0 property: identifier and decoded value.
public struct MQTTProperty: Hashable, Sendable {
    public enum Value: Hashable, Sendable {
        case byte(UInt8)
        case twoByteInteger(UInt16)
        case fourByteInteger(UInt32)
        case variableByteInteger(UInt32)
        case string(String)
        case binary([UInt8])
        case stringPair(name: String, value: String)
    }

    public var identifier: MQTTPropertyIdentifier
    public var value: Value

    public init(_ identifier: MQTTPropertyIdentifier, _ value: Value) {
        self.identifier = identifier
        self.value = value
    }

    /// The value as an unsigned integer, for the integer-typed properties.
    public var integerValue: UInt32? {
        switch value {
        case .byte(let v): UInt32(v)
        case .twoByteInteger(let v): UInt32(v)
        case .fourByteInteger(let v), .variableByteInteger(let v): v
        default: nil
        }
    }

    /// The value as a string, for the string-typed properties.
    public var stringValue: String? {
        if case .string(let s) = value { return s }
        return nil
    }
}

/// The properties of an MQTT 5.0 packet (or will), in wire order. Empty for MQTT 3.x packets.
public struct MQTTProperties: Hashable, Sendable, RandomAccessCollection {
    public var all: [MQTTProperty]

    public init(_ all: [MQTTProperty] = []) { self.all = all }

    public var startIndex: Int { all.startIndex }
    public var endIndex: Int { all.endIndex }
    public subscript(position: Int) -> MQTTProperty { all[position] }

    /// The first property with this identifier.
    public func first(_ id: MQTTPropertyIdentifier) -> MQTTProperty? { all.first { $0.identifier == id } }

    /// MQTT 5.0 §3.3.2.3.4: the Topic Alias of a PUBLISH.
    public var topicAlias: UInt16? { first(.topicAlias)?.integerValue.map { UInt16(truncatingIfNeeded: $0) } }
    /// MQTT 5.0 §3.1.2.11.2 / §3.2.2.3.2: the Session Expiry Interval in seconds.
    public var sessionExpiryInterval: UInt32? { first(.sessionExpiryInterval)?.integerValue }
    /// MQTT 5.0 §3.3.2.3.3: the Message Expiry Interval in seconds.
    public var messageExpiryInterval: UInt32? { first(.messageExpiryInterval)?.integerValue }
    /// The Reason String (a diagnostic text for humans, MQTT 5.0 §3.2.2.3.9 and others).
    public var reasonString: String? { first(.reasonString)?.stringValue }
    /// MQTT 5.0 §3.3.2.3.9: the Content Type of a PUBLISH.
    public var contentType: String? { first(.contentType)?.stringValue }
    /// MQTT 5.0 §3.3.2.3.5: the Response Topic of a PUBLISH.
    public var responseTopic: String? { first(.responseTopic)?.stringValue }
    /// MQTT 5.0 §3.15.2.2.2: the Authentication Method.
    public var authenticationMethod: String? { first(.authenticationMethod)?.stringValue }

    /// MQTT 5.0 §3.1.2.11.8 and others: User Properties, in order; a name may repeat.
    public var userProperties: [(name: String, value: String)] {
        all.compactMap {
            if case let .stringPair(name, value) = $0.value { return (name, value) }
            return nil
        }
    }

    /// MQTT 5.0 §3.3.2.3.8: the Subscription Identifiers (a PUBLISH may carry several).
    public var subscriptionIdentifiers: [UInt32] {
        all.filter { $0.identifier == .subscriptionIdentifier }.compactMap(\.integerValue)
    }
}

/// A decoded MQTT control packet.
///
/// The set of packet types is closed by the specification (MQTT 5.0 §2.1.2 defines 15), so this is an enum.
///
/// ## Topics
/// - ``parse(_:version:maxStoredPayload:topicAliases:)``
/// - ``summary(showSecrets:)``
public enum MQTTPacket: Hashable, Sendable {
    case connect(MQTTConnect)
    case connAck(MQTTConnAck)
    case publish(MQTTPublish)
    case pubAck(MQTTPublishResponse)
    case pubRec(MQTTPublishResponse)
    case pubRel(MQTTPublishResponse)
    case pubComp(MQTTPublishResponse)
    case subscribe(MQTTSubscribe)
    case subAck(MQTTSubAck)
    case unsubscribe(MQTTUnsubscribe)
    case unsubAck(MQTTUnsubAck)
    case pingReq
    case pingResp
    case disconnect(MQTTDisconnect)
    case auth(MQTTAuth)

    public var type: MQTTPacketType {
        switch self {
        case .connect: .connect
        case .connAck: .connAck
        case .publish: .publish
        case .pubAck: .pubAck
        case .pubRec: .pubRec
        case .pubRel: .pubRel
        case .pubComp: .pubComp
        case .subscribe: .subscribe
        case .subAck: .subAck
        case .unsubscribe: .unsubscribe
        case .unsubAck: .unsubAck
        case .pingReq: .pingReq
        case .pingResp: .pingResp
        case .disconnect: .disconnect
        case .auth: .auth
        }
    }

    /// The packet identifier, for the packet types that carry one.
    public var packetIdentifier: UInt16? {
        switch self {
        case .publish(let p): p.packetIdentifier
        case .pubAck(let p), .pubRec(let p), .pubRel(let p), .pubComp(let p): p.packetIdentifier
        case .subscribe(let p): p.packetIdentifier
        case .subAck(let p): p.packetIdentifier
        case .unsubscribe(let p): p.packetIdentifier
        case .unsubAck(let p): p.packetIdentifier
        default: nil
        }
    }
}

/// Bytes kept from a possibly large field (application payload, will payload, password), capped.
public struct MQTTPayload: Hashable, Sendable {
    /// The first `min(length, cap)` bytes.
    public var stored: [UInt8]
    /// The field's real length on the wire.
    public var length: Int

    public init(stored: [UInt8], length: Int) {
        self.stored = stored
        self.length = length
    }

    /// True when fewer bytes were kept than the field had.
    public var truncated: Bool { stored.count < length }

    /// The payload as text when it was kept whole and is valid UTF-8.
    public var text: String? { truncated ? nil : String(validating: stored, as: UTF8.self) }
}

/// CONNECT (MQTT 3.1.1 §3.1, 5.0 §3.1).
public struct MQTTConnect: Hashable, Sendable {
    /// `MQTT` or `MQIsdp` (§3.1.2.1).
    public var protocolName: String
    /// The version the protocol level declares (§3.1.2.2).
    public var version: MQTTVersion
    /// The raw Connect Flags byte (§3.1.2.3).
    public var flags: UInt8
    /// Clean Session (3.x, §3.1.2.4) or Clean Start (5.0, §3.1.2.4).
    public var cleanSession: Bool
    /// Keep Alive in seconds (§3.1.2.10).
    public var keepAlive: UInt16
    /// MQTT 5.0 §3.1.2.11: CONNECT properties (empty before 5.0).
    public var properties: MQTTProperties
    /// Client Identifier (§3.1.3.1); may be empty.
    public var clientIdentifier: String
    /// The will message, present when the Will Flag is set (§3.1.2.5).
    public var will: MQTTWill?
    /// User Name, present when the User Name Flag is set (§3.1.2.8).
    public var username: String?
    /// Password, present when the Password Flag is set (§3.1.2.9). A secret: summaries mask it.
    public var password: MQTTPayload?

    public var hasUsername: Bool { username != nil }
    public var hasPassword: Bool { password != nil }
}

/// The will message of a CONNECT (MQTT 3.1.1 §3.1.2.5–7, §3.1.3.2–3; 5.0 §3.1.3.2).
public struct MQTTWill: Hashable, Sendable {
    public var qos: MQTTQoS
    public var retain: Bool
    /// MQTT 5.0 §3.1.3.2: Will Properties (empty before 5.0).
    public var properties: MQTTProperties
    public var topic: String
    public var payload: MQTTPayload
}

/// CONNACK (MQTT 3.1.1 §3.2, 5.0 §3.2).
public struct MQTTConnAck: Hashable, Sendable {
    /// Session Present (§3.2.2.2); always false for MQTT 3.1, whose first byte is unused.
    public var sessionPresent: Bool
    /// The Connect Return Code (3.x, §3.2.2.3) or Connect Reason Code (5.0, §3.2.2.2).
    public var returnCode: MQTTReasonCode
    /// MQTT 5.0 §3.2.2.3: CONNACK properties.
    public var properties: MQTTProperties
}

/// Where a PUBLISH's topic came from (MQTT 5.0 §3.3.2.3.4 Topic Alias).
public enum MQTTTopicSource: Hashable, Sendable {
    /// The topic was in the packet and no alias was used.
    case literal
    /// The topic was in the packet and bound to this alias for later PUBLISHes in the same direction.
    case literalBoundToAlias(UInt16)
    /// The packet's topic was empty; it was resolved from the topic earlier bound to this alias.
    case resolvedFromAlias(UInt16)
    /// The packet's topic was empty and this alias was never bound in the captured stream (for example,
    /// because the capture started mid-connection); `topic` stays empty.
    case unresolvedAlias(UInt16)
}

/// PUBLISH (MQTT 3.1.1 §3.3, 5.0 §3.3).
public struct MQTTPublish: Hashable, Sendable {
    /// §3.3.1.1 DUP flag.
    public var dup: Bool
    /// §3.3.1.2 QoS level.
    public var qos: MQTTQoS
    /// §3.3.1.3 RETAIN flag.
    public var retain: Bool
    /// The Topic Name (§3.3.2.1), resolved from a topic alias when the packet carried an empty one.
    public var topic: String
    /// How `topic` was obtained.
    public var topicSource: MQTTTopicSource
    /// §3.3.2.2: present only when QoS is 1 or 2.
    public var packetIdentifier: UInt16?
    /// MQTT 5.0 §3.3.2.3: PUBLISH properties.
    public var properties: MQTTProperties
    /// The application message (§3.3.3), capped.
    public var payload: MQTTPayload

    /// True when the topic was taken from an earlier alias binding rather than from this packet.
    public var topicResolvedFromAlias: Bool {
        if case .resolvedFromAlias = topicSource { return true }
        return false
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (MQTT 3.1.1 §3.4–3.7, 5.0 §3.4–3.7); the case of ``MQTTPacket`` says
/// which.
public struct MQTTPublishResponse: Hashable, Sendable {
    public var packetIdentifier: UInt16
    /// MQTT 5.0 §3.4.2.1: the reason code, 0x00 (Success) when omitted; nil before 5.0.
    public var reasonCode: MQTTReasonCode?
    /// MQTT 5.0 §3.4.2.2: properties; empty when omitted.
    public var properties: MQTTProperties
}

/// One topic filter of a SUBSCRIBE with its options (MQTT 3.1.1 §3.8.3.1, 5.0 §3.8.3.1).
public struct MQTTSubscription: Hashable, Sendable {
    public var topicFilter: String
    /// Requested QoS (3.x) or Maximum QoS (5.0).
    public var qos: MQTTQoS
    /// MQTT 5.0 No Local option (bit 2).
    public var noLocal: Bool
    /// MQTT 5.0 Retain As Published option (bit 3).
    public var retainAsPublished: Bool
    /// MQTT 5.0 Retain Handling option (bits 5–4): 0, 1 or 2.
    public var retainHandling: UInt8
    /// The raw options byte.
    public var options: UInt8
}

/// SUBSCRIBE (MQTT 3.1.1 §3.8, 5.0 §3.8).
public struct MQTTSubscribe: Hashable, Sendable {
    public var packetIdentifier: UInt16
    public var properties: MQTTProperties
    public var subscriptions: [MQTTSubscription]
}

/// SUBACK (MQTT 3.1.1 §3.9, 5.0 §3.9).
public struct MQTTSubAck: Hashable, Sendable {
    public var packetIdentifier: UInt16
    public var properties: MQTTProperties
    /// One return code (3.x) or reason code (5.0) per topic filter of the SUBSCRIBE.
    public var returnCodes: [MQTTReasonCode]
}

/// UNSUBSCRIBE (MQTT 3.1.1 §3.10, 5.0 §3.10).
public struct MQTTUnsubscribe: Hashable, Sendable {
    public var packetIdentifier: UInt16
    public var properties: MQTTProperties
    public var topicFilters: [String]
}

/// UNSUBACK (MQTT 3.1.1 §3.11, 5.0 §3.11).
public struct MQTTUnsubAck: Hashable, Sendable {
    public var packetIdentifier: UInt16
    public var properties: MQTTProperties
    /// MQTT 5.0 §3.11.3: one reason code per topic filter; empty before 5.0.
    public var reasonCodes: [MQTTReasonCode]
}

/// DISCONNECT (MQTT 3.1.1 §3.14, 5.0 §3.14).
public struct MQTTDisconnect: Hashable, Sendable {
    /// MQTT 5.0 §3.14.2.1: 0x00 (Normal disconnection) when omitted; nil before 5.0.
    public var reasonCode: MQTTReasonCode?
    public var properties: MQTTProperties
}

/// AUTH (MQTT 5.0 §3.15).
public struct MQTTAuth: Hashable, Sendable {
    /// §3.15.2.1: 0x00 (Success) when the Remaining Length is 0.
    public var reasonCode: MQTTReasonCode
    public var properties: MQTTProperties
}

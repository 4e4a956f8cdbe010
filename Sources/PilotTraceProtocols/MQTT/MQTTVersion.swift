/// An MQTT protocol version, by its CONNECT protocol level.
///
/// MQTT 3.1.1 §3.1.2.2 / 5.0 §3.1.2.2: the level is 3 for MQTT 3.1 (protocol name `MQIsdp`), 4 for 3.1.1 and
/// 5 for 5.0 (both named `MQTT`).
public enum MQTTVersion: UInt8, Hashable, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case v3_1 = 3
    case v3_1_1 = 4
    case v5 = 5

    /// The protocol name a CONNECT of this version carries (MQTT 3.1.1 §3.1.2.1).
    public var protocolName: String { self == .v3_1 ? "MQIsdp" : "MQTT" }

    /// `3.1`, `3.1.1` or `5.0`.
    public var description: String {
        switch self {
        case .v3_1: "3.1"
        case .v3_1_1: "3.1.1"
        case .v5: "5.0"
        }
    }

    public static func < (lhs: MQTTVersion, rhs: MQTTVersion) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The MQTT control packet type, the high nibble of the fixed header's first byte (MQTT 3.1.1 §2.2.1,
/// 5.0 §2.1.2). Values 0 and (before 5.0) 15 are reserved and have no case here.
public enum MQTTPacketType: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case connect = 1
    case connAck = 2
    case publish = 3
    case pubAck = 4
    case pubRec = 5
    case pubRel = 6
    case pubComp = 7
    case subscribe = 8
    case subAck = 9
    case unsubscribe = 10
    case unsubAck = 11
    case pingReq = 12
    case pingResp = 13
    case disconnect = 14
    /// MQTT 5.0 §3.15: AUTH exists only in 5.0.
    case auth = 15

    /// The upper-case name used by the specification, e.g. `PUBACK`.
    public var name: String {
        switch self {
        case .connect: "CONNECT"
        case .connAck: "CONNACK"
        case .publish: "PUBLISH"
        case .pubAck: "PUBACK"
        case .pubRec: "PUBREC"
        case .pubRel: "PUBREL"
        case .pubComp: "PUBCOMP"
        case .subscribe: "SUBSCRIBE"
        case .subAck: "SUBACK"
        case .unsubscribe: "UNSUBSCRIBE"
        case .unsubAck: "UNSUBACK"
        case .pingReq: "PINGREQ"
        case .pingResp: "PINGRESP"
        case .disconnect: "DISCONNECT"
        case .auth: "AUTH"
        }
    }

    public var description: String { name }

    /// MQTT 3.1.1 §2.2.2 / 5.0 §2.1.3: the fixed-header flags every packet type but PUBLISH must carry:
    /// `0010` for PUBREL, SUBSCRIBE and UNSUBSCRIBE, `0000` for the others. Nil for PUBLISH, whose flags are
    /// DUP, QoS and RETAIN.
    public var requiredFlags: UInt8? {
        switch self {
        case .publish: nil
        case .pubRel, .subscribe, .unsubscribe: 0b0010
        default: 0
        }
    }
}

/// Quality of service (MQTT 3.1.1 §4.3). The value 3 is malformed and never represented.
public enum MQTTQoS: UInt8, Hashable, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public var description: String { String(rawValue) }

    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool { lhs.rawValue < rhs.rawValue }
}

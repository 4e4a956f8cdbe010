/// A return code (MQTT 3.x) or reason code (MQTT 5.0) together with its human-readable name.
///
/// The same byte means different things in different places (0x00 is "Success", "Normal disconnection" or
/// "Granted QoS 0"), so the name is resolved when the packet is decoded, from the version and packet type.
public struct MQTTReasonCode: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public var name: String
    /// Whether the code reports success: MQTT 5.0 §2.4 codes and 3.1.1 SUBACK codes below 0x80; only 0 for a
    /// 3.x CONNACK (§3.2.2.3).
    public var isSuccess: Bool

    public init(rawValue: UInt8, name: String, isSuccess: Bool? = nil) {
        self.rawValue = rawValue
        self.name = name
        self.isSuccess = isSuccess ?? (rawValue < 0x80)
    }

    /// `0x87 (Not authorized)`.
    public var description: String { "\(MQTTText.hex(rawValue)) (\(name))" }

    /// A CONNACK return code, MQTT 3.1.1 §3.2.2.3 Table 3.1 (MQTT 3.1 §3.2 defines the same values 0–5).
    public static func connectReturnCode(_ raw: UInt8) -> MQTTReasonCode {
        let name =
            switch raw {
            case 0: "Connection Accepted"
            case 1: "Connection Refused, unacceptable protocol version"
            case 2: "Connection Refused, identifier rejected"
            case 3: "Connection Refused, Server unavailable"
            case 4: "Connection Refused, bad user name or password"
            case 5: "Connection Refused, not authorized"
            default: "Reserved"
            }
        return MQTTReasonCode(rawValue: raw, name: name, isSuccess: raw == 0)
    }

    /// A SUBACK return code, MQTT 3.1.1 §3.9.3 (MQTT 3.1 grants QoS 0–2 only).
    public static func subscribeReturnCode(_ raw: UInt8) -> MQTTReasonCode {
        let name =
            switch raw {
            case 0: "Success - Maximum QoS 0"
            case 1: "Success - Maximum QoS 1"
            case 2: "Success - Maximum QoS 2"
            case 0x80: "Failure"
            default: "Reserved"
            }
        return MQTTReasonCode(rawValue: raw, name: name)
    }

    /// An MQTT 5.0 reason code, §2.4 Table 2-6. The name of 0x00 depends on the packet: "Normal
    /// disconnection" in DISCONNECT, "Granted QoS 0" in SUBACK, "Success" elsewhere.
    public static func v5(_ raw: UInt8, in packet: MQTTPacketType) -> MQTTReasonCode {
        let name: String =
            switch raw {
            case 0x00:
                switch packet {
                case .disconnect: "Normal disconnection"
                case .subAck: "Granted QoS 0"
                default: "Success"
                }
            case 0x01: "Granted QoS 1"
            case 0x02: "Granted QoS 2"
            case 0x04: "Disconnect with Will Message"
            case 0x10: "No matching subscribers"
            case 0x11: "No subscription existed"
            case 0x18: "Continue authentication"
            case 0x19: "Re-authenticate"
            case 0x80: "Unspecified error"
            case 0x81: "Malformed Packet"
            case 0x82: "Protocol Error"
            case 0x83: "Implementation specific error"
            case 0x84: "Unsupported Protocol Version"
            case 0x85: "Client Identifier not valid"
            case 0x86: "Bad User Name or Password"
            case 0x87: "Not authorized"
            case 0x88: "Server unavailable"
            case 0x89: "Server busy"
            case 0x8A: "Banned"
            case 0x8B: "Server shutting down"
            case 0x8C: "Bad authentication method"
            case 0x8D: "Keep Alive timeout"
            case 0x8E: "Session taken over"
            case 0x8F: "Topic Filter invalid"
            case 0x90: "Topic Name invalid"
            case 0x91: "Packet Identifier in use"
            case 0x92: "Packet Identifier not found"
            case 0x93: "Receive Maximum exceeded"
            case 0x94: "Topic Alias invalid"
            case 0x95: "Packet too large"
            case 0x96: "Message rate too high"
            case 0x97: "Quota exceeded"
            case 0x98: "Administrative action"
            case 0x99: "Payload format invalid"
            case 0x9A: "Retain not supported"
            case 0x9B: "QoS not supported"
            case 0x9C: "Use another server"
            case 0x9D: "Server moved"
            case 0x9E: "Shared Subscriptions not supported"
            case 0x9F: "Connection rate exceeded"
            case 0xA0: "Maximum connect time"
            case 0xA1: "Subscription Identifiers not supported"
            case 0xA2: "Wildcard Subscriptions not supported"
            default: "Unknown reason code"
            }
        return MQTTReasonCode(rawValue: raw, name: name)
    }
}

/// Small text helpers for summaries (no Foundation).
enum MQTTText {
    /// `0x0a`-style two-digit hex.
    static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return "0x" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 0xF)])
    }

    /// Text for a secret or payload: quoted when it is UTF-8 without control characters, hex otherwise.
    static func printable(_ payload: MQTTPayload) -> String {
        if let text = payload.text, !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return quoted(text)
        }
        return "0x" + hex(bytes: payload.stored) + (payload.truncated ? "…" : "")
    }

    /// Lower-case hex of the bytes, without separators.
    static func hex<C: Collection>(bytes: C) -> String where C.Element == UInt8 {
        let digits = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0xF)])
        }
        return s
    }

    /// A quoted, escaped string literal: `"a\"b"`, as Swift's `debugDescription` writes it. That costs thousands of
    /// instructions a call, so printable ASCII with nothing it escapes, every topic and client id in practice, is
    /// quoted as is.
    static func quoted(_ s: String) -> String {
        s.utf8.contains(where: escaped) ? s.debugDescription : "\"" + s + "\""
    }

    /// Whether `debugDescription` writes this UTF-8 byte other than as itself: controls, non-ASCII, `"`, `\`, `'`.
    @inline(__always)
    static func escaped(_ b: UInt8) -> Bool {
        b < 0x20 || b >= 0x7F || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b == UInt8(ascii: "'")
    }
}

/// RFC 6455 §7.4: the status code of a Close frame.
public struct WebSocketCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: the purpose of the connection was fulfilled.
    public static let normalClosure = Self(rawValue: 1000)
    /// 1001: an endpoint is going away (server going down, browser leaving the page).
    public static let goingAway = Self(rawValue: 1001)
    /// 1002: a protocol error.
    public static let protocolError = Self(rawValue: 1002)
    /// 1003: a type of data the endpoint cannot accept (e.g. binary when only text is understood).
    public static let unsupportedData = Self(rawValue: 1003)
    /// 1005: reserved, never sent: no status code was present.
    public static let noStatusReceived = Self(rawValue: 1005)
    /// 1006: reserved, never sent: the connection closed without a Close frame.
    public static let abnormalClosure = Self(rawValue: 1006)
    /// 1007: data inconsistent with the message type (e.g. non-UTF-8 in a text message).
    public static let invalidFramePayloadData = Self(rawValue: 1007)
    /// 1008: a message violates the endpoint's policy.
    public static let policyViolation = Self(rawValue: 1008)
    /// 1009: a message too big to process.
    public static let messageTooBig = Self(rawValue: 1009)
    /// 1010: (client) the server did not negotiate an extension the client requires.
    public static let mandatoryExtension = Self(rawValue: 1010)
    /// 1011: (server) an unexpected condition prevented it from fulfilling the request.
    public static let internalError = Self(rawValue: 1011)
    /// 1015: reserved, never sent: the TLS handshake failed.
    public static let tlsHandshake = Self(rawValue: 1015)

    /// The RFC 6455 §7.4.1 name (IANA registry names for 1012–1014), nil for other codes.
    public var name: String? {
        switch rawValue {
        case 1000: "normal closure"
        case 1001: "going away"
        case 1002: "protocol error"
        case 1003: "unsupported data"
        case 1005: "no status received"
        case 1006: "abnormal closure"
        case 1007: "invalid frame payload data"
        case 1008: "policy violation"
        case 1009: "message too big"
        case 1010: "mandatory extension"
        case 1011: "internal error"
        case 1012: "service restart"
        case 1013: "try again later"
        case 1014: "bad gateway"
        case 1015: "TLS handshake"
        default: nil
        }
    }

    /// RFC 6455 §7.4.2: whether an endpoint may put this code in a Close frame (1005, 1006, 1015, the
    /// unassigned 1xxx codes and anything below 1000 or above 4999 may not).
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014: true
        case 3000...4999: true
        default: false
        }
    }

    public var description: String {
        if let name { return "\(rawValue) (\(name))" }
        return String(rawValue)
    }
}

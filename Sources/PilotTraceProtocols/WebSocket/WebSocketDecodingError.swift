import PilotTraceWire

/// A WebSocket frame that breaks RFC 6455 §5: what was wrong, in which direction, and where.
///
/// When the frame's length could still be read, the decoder skips that frame and goes on; when it could not
/// (``Code/payloadLengthTooLarge``) or a gap made it lose its place (``Code/lostSynchronisation``), it stops
/// decoding that direction. `Code` is a struct so that codes can be added without breaking clients.
public struct WebSocketDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem was found; compare with the static members. The raw values are stable ids.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// RFC 6455 §5.2: opcodes 0x3–0x7 and 0xB–0xF are reserved. The frame was skipped.
        public static let reservedOpcode = Code(rawValue: "ws.reserved-opcode")
        /// RFC 6455 §5.2: a 64-bit payload length with its most significant bit set. Decoding stops.
        public static let payloadLengthTooLarge = Code(rawValue: "ws.payload-length-too-large")
        /// RFC 6455 §5.5: a control frame with more than 125 bytes of payload. The frame was skipped.
        public static let controlFrameTooLong = Code(rawValue: "ws.control-frame-too-long")
        /// RFC 6455 §5.5: a control frame with FIN clear. The frame was skipped.
        public static let fragmentedControlFrame = Code(rawValue: "ws.fragmented-control-frame")
        /// RFC 6455 §5.4: a continuation frame with no message in progress. The frame was skipped.
        public static let unexpectedContinuation = Code(rawValue: "ws.unexpected-continuation")
        /// RFC 6455 §5.4: a text or binary frame while a fragmented message was in progress; that message is
        /// emitted incomplete and the new one starts.
        public static let expectedContinuation = Code(rawValue: "ws.expected-continuation")
        /// RFC 6455 §5.5.1: a Close payload of exactly one byte (a status code needs two).
        public static let invalidClosePayload = Code(rawValue: "ws.invalid-close-payload")
        /// A gap that did not fall inside a frame's payload: frame boundaries are unknown from here on, and
        /// the rest of the direction is skipped.
        public static let lostSynchronisation = Code(rawValue: "ws.lost-synchronisation")
    }

    public var code: Code
    public var direction: Direction
    /// Stream offset of the frame's first byte.
    public var offset: Int
    public var message: String

    public init(_ code: Code, direction: Direction, offset: Int, _ message: String) {
        self.code = code
        self.direction = direction
        self.offset = offset
        self.message = message
    }

    public var description: String { "WebSocket \(code) \(direction.arrow) at offset \(offset): \(message)" }
}

/// A deviation from RFC 6455 that the decoder tolerated, attached to the message it was found in.
public struct WebSocketAnomaly: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// RFC 6455 §5.1: a client→server frame without a mask.
    public static let unmaskedClientFrame = Self(rawValue: "ws.unmasked-client-frame")
    /// RFC 6455 §5.1: a server→client frame with a mask.
    public static let maskedServerFrame = Self(rawValue: "ws.masked-server-frame")
    /// RFC 6455 §5.2: RSV bits set that no negotiated extension defines.
    public static let reservedBitsSet = Self(rawValue: "ws.reserved-bits-set")
    /// RFC 6455 §5.2: a payload length not in the minimal number of bytes.
    public static let nonMinimalLength = Self(rawValue: "ws.non-minimal-length")
    /// RFC 6455 §5.6, §8.1: a text message (or close reason) that is not valid UTF-8.
    public static let invalidUTF8 = Self(rawValue: "ws.invalid-utf8")
    /// RFC 6455 §7.4.2: a close code that may not be sent (1005, 1006, 1015, unassigned).
    public static let invalidCloseCode = Self(rawValue: "ws.invalid-close-code")
    /// RFC 7692 §7.2.2: a compressed message that did not inflate (context takeover is not tracked).
    public static let decompressionFailed = Self(rawValue: "ws.decompression-failed")
    /// A text message that starts like JSON but does not parse.
    public static let invalidJSON = Self(rawValue: "ws.invalid-json")
}

import PilotTraceWire

/// RFC 6455 §5.2 opcodes.
public enum WebSocketOpcode: UInt8, Hashable, Sendable, CustomStringConvertible {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// RFC 6455 §5.5: opcodes with the high bit set are control frames.
    public var isControl: Bool { rawValue & 0x8 != 0 }

    public var description: String {
        switch self {
        case .continuation: "continuation"
        case .text: "text"
        case .binary: "binary"
        case .close: "close"
        case .ping: "ping"
        case .pong: "pong"
        }
    }
}

/// A complete WebSocket message: a data message reassembled from its fragments, or one control frame.
public struct WebSocketMessage: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case text
        case binary
        /// RFC 6455 §5.5.1: the status code (nil when the payload was empty) and the reason.
        case close(code: WebSocketCloseCode?, reason: String)
        case ping
        case pong
    }

    public var direction: Direction
    public var kind: Kind
    /// The payload (unmasked, reassembled, inflated for permessage-deflate), at most the configured cap.
    public var payload: [UInt8]
    /// The true payload length on the wire (all fragments, lost bytes included).
    public var length: Int
    /// True when `payload` stopped at the cap.
    public var truncated: Bool
    /// Non-zero when bytes of this message were lost in a gap, or the message was cut short.
    public var lostBytes: Int
    /// True when the message is missing bytes or its end (see `lostBytes`).
    public var incomplete: Bool
    /// Frames that made the message (1 for control frames).
    public var frameCount: Int
    /// Whether the (first) frame was masked.
    public var masked: Bool
    /// RFC 7692: RSV1 on the first frame of a data message (permessage-deflate).
    public var compressed: Bool
    /// Stream offset of the first frame's first byte.
    public var offset: Int
    /// Stream offset just past the last frame.
    public var endOffset: Int
    public var firstByteAt: Timestamp
    public var lastByteAt: Timestamp
    /// The capture frames that carried the message's first and last bytes (not to be confused with its WebSocket
    /// frames, ``frameCount``).
    public var frames: FrameSpan
    public var anomalies: [WebSocketAnomaly]
    /// The text of a text message (lossy when invalid, see ``WebSocketAnomaly/invalidUTF8``).
    public var text: String?
    /// The JSON document, for a complete text message that is JSON.
    public var json: JSONValue?

    public var opcode: WebSocketOpcode {
        switch kind {
        case .text: .text
        case .binary: .binary
        case .close: .close
        case .ping: .ping
        case .pong: .pong
        }
    }
}

/// What a ``WebSocketFrameDecoder`` produces.
public enum WebSocketEvent: Hashable, Sendable {
    case message(WebSocketMessage)
    case error(WebSocketDecodingError)
}

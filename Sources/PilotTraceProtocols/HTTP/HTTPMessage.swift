import PilotTraceWire

/// An HTTP version from a start line (`HTTP/1.1`).
public struct HTTPVersion: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static let http10 = HTTPVersion(major: 1, minor: 0)
    public static let http11 = HTTPVersion(major: 1, minor: 1)

    public static func < (l: Self, r: Self) -> Bool { (l.major, l.minor) < (r.major, r.minor) }
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// RFC 9112 §3: a request line and its header section.
public struct HTTPRequestHead: Hashable, Sendable {
    /// The method as sent (methods are case-sensitive).
    public var method: String
    /// The request-target as sent.
    public var target: String
    /// The target's path: the origin-form path, the path of an absolute-form URL (`/` when empty), the
    /// authority of a CONNECT, or `*`.
    public var path: String
    /// The text after the first `?`, without it; nil when there is no `?`.
    public var query: String?
    public var version: HTTPVersion
    public var headers: HTTPHeaders

    public init(method: String, target: String, version: HTTPVersion, headers: HTTPHeaders) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        (self.path, self.query) = HTTPRequestHead.split(target: target)
    }

    /// The query's `name=value` pairs in order, percent-decoding left to the caller (values may be nil).
    public var queryItems: [(name: String, value: String?)] {
        guard let query else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { item in
            if let eq = item.firstIndex(of: "=") {
                return (String(item[..<eq]), String(item[item.index(after: eq)...]))
            }
            return (String(item), nil)
        }
    }

    static func split(target: String) -> (path: String, query: String?) {
        var rest = Substring(target)
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let lower = rest.prefix(8).lowercased()
        if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
            // RFC 9112 §3.2.2 absolute-form: drop scheme and authority.
            let afterScheme = rest[rest.index(rest.startIndex, offsetBy: lower.hasPrefix("http://") ? 7 : 8)...]
            if let slash = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) {
                rest = afterScheme[slash...]
            } else {
                return ("/", nil)
            }
        }
        guard let q = rest.firstIndex(of: "?") else { return (String(rest), nil) }
        let path = rest[..<q]
        return (path.isEmpty ? "/" : String(path), String(rest[rest.index(after: q)...]))
    }
}

/// RFC 9112 §4: a status line and its header section.
public struct HTTPResponseHead: Hashable, Sendable {
    public var version: HTTPVersion
    public var status: Int
    public var reason: String
    public var headers: HTTPHeaders

    public init(version: HTTPVersion, status: Int, reason: String, headers: HTTPHeaders) {
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    /// RFC 9110 §15.2: 1xx, an interim response (101 included, although it ends HTTP on the connection).
    public var isInformational: Bool { (100...199).contains(status) }
}

/// RFC 9112 §6.3: how a message's body was delimited.
public enum HTTPBodyFraming: Hashable, Sendable {
    /// No body (HEAD response, 1xx, 204, 304, request without length).
    case none
    case contentLength(Int)
    case chunked
    /// Response without length: the body runs until the server closes.
    case untilClose
    /// A successful CONNECT or an upgrade: the bytes after the head are not HTTP.
    case tunnel
}

/// Where a message sits in its direction's byte stream, and when its first and last bytes were captured.
public struct HTTPMessageSpan: Hashable, Sendable {
    /// Stream offset of the first byte (offsets count every byte of the direction, lost ones included).
    public var offset: Int
    /// Bytes from the first to the last, chunk framing and lost bytes included.
    public var length: Int
    public var firstByteAt: Timestamp
    public var lastByteAt: Timestamp
    /// The capture frames that carried the first and the last byte (the last one captured, when the message ends
    /// in lost bytes).
    public var frames: FrameSpan
    public var endOffset: Int { offset + length }

    public init(offset: Int, length: Int, firstByteAt: Timestamp, lastByteAt: Timestamp, frames: FrameSpan = .unknown) {
        self.offset = offset
        self.length = length
        self.firstByteAt = firstByteAt
        self.lastByteAt = lastByteAt
        self.frames = frames
    }
}

/// Why a message was emitted before it was complete, and what was lost.
public struct HTTPIncompleteness: Hashable, Sendable {
    public enum Reason: String, Hashable, Sendable {
        /// Bytes were lost (a gap in the TCP stream).
        case gap
        /// The message broke its own framing (see the ``HTTPDecodingError`` emitted with it).
        case malformed
        /// The stream ended (FIN, or the capture ended) before the message did.
        case endOfStream = "end-of-stream"
    }

    public var reason: Reason
    /// Bytes of this message that were lost in gaps (0 when it was cut short rather than holed).
    public var lostBytes: Int
    /// Body bytes the framing still expected when the message was cut short, when the framing said how many.
    public var missingBodyBytes: Int?

    public init(reason: Reason, lostBytes: Int, missingBodyBytes: Int? = nil) {
        self.reason = reason
        self.lostBytes = lostBytes
        self.missingBodyBytes = missingBodyBytes
    }
}

/// A message body: the bytes as stored (after de-chunking, up to the configured cap), the true length, and
/// the decoded representation (Content-Encoding undone, JSON parsed) when there is one.
public struct HTTPBody: Hashable, Sendable {
    /// The body as carried (content-coded), at most the configured cap.
    public var bytes: [UInt8]
    /// The true length of the body on the wire after de-chunking, lost bytes included.
    public var length: Int
    /// True when `bytes` holds less than `length` because of the cap.
    public var truncated: Bool
    /// RFC 9110 §8.4: the content codings listed by Content-Encoding, lowercased, `identity` dropped.
    public var contentCodings: [String]
    /// The body with its content codings undone, at most the decoded cap; nil when there are none or
    /// decoding failed.
    public var decoded: [UInt8]?
    /// True when `decoded` stopped at the cap or at the end of a truncated raw body.
    public var decodedTruncated: Bool
    /// Why decoding failed (the raw body is still in `bytes`).
    public var decodingFailure: String?
    /// The parsed JSON document, when the body is JSON (by media type, or by its first byte).
    public var json: JSONValue?
    /// Why a body whose media type says JSON did not parse.
    public var jsonError: JSONError?

    public init(bytes: [UInt8] = [], length: Int? = nil, truncated: Bool = false) {
        self.bytes = bytes
        self.length = length ?? bytes.count
        self.truncated = truncated
        self.contentCodings = []
        self.decoded = nil
        self.decodedTruncated = false
        self.decodingFailure = nil
        self.json = nil
        self.jsonError = nil
    }

    public var isEmpty: Bool { length == 0 }

    /// The representation: the decoded bytes when there are, else the raw ones.
    public var content: [UInt8] { decoded ?? bytes }
}

/// A request as decoded from the client→server stream.
public struct HTTPRequest: Hashable, Sendable {
    /// The request's number on its connection, from 0, in wire order; responses refer to it.
    public var index: Int
    public var head: HTTPRequestHead
    public var body: HTTPBody
    /// RFC 9112 §7.1.2: the trailer section of a chunked body.
    public var trailers: HTTPHeaders
    /// RFC 9112 §7.1.1: the chunk extensions seen, in order, as sent (at most 64 kept).
    public var chunkExtensions: [String]
    public var framing: HTTPBodyFraming
    public var span: HTTPMessageSpan
    /// RFC 9112 §9.3: whether the connection persists after this message.
    public var keepAlive: Bool
    public var anomalies: [HTTPAnomaly]
    /// Non-nil when the message was cut short or holed.
    public var incomplete: HTTPIncompleteness?

    public var method: String { head.method }
    public var headers: HTTPHeaders { head.headers }
    public var isComplete: Bool { incomplete == nil }
}

/// A response as decoded from the server→client stream, with the request it answers.
public struct HTTPResponse: Hashable, Sendable {
    /// The ``HTTPRequest/index`` of the request this answers; nil when unpaired.
    public var requestIndex: Int?
    /// The method of that request (a HEAD response has no body).
    public var requestMethod: String?
    public var head: HTTPResponseHead
    public var body: HTTPBody
    public var trailers: HTTPHeaders
    public var chunkExtensions: [String]
    public var framing: HTTPBodyFraming
    public var span: HTTPMessageSpan
    public var keepAlive: Bool
    public var anomalies: [HTTPAnomaly]
    public var incomplete: HTTPIncompleteness?

    public var status: Int { head.status }
    public var headers: HTTPHeaders { head.headers }
    public var isComplete: Bool { incomplete == nil }
}

/// The connection left HTTP/1.1 after a `101 Switching Protocols` (or a successful CONNECT).
public struct HTTPUpgrade: Hashable, Sendable {
    /// The protocol switched to, lowercased: `websocket`, `h2c`, …, or `connect` for a tunnel.
    public var protocolName: String
    public var isWebSocket: Bool { protocolName == "websocket" }
    /// The index of the request that asked for it; nil when that request was not seen.
    public var requestIndex: Int?
    /// The request-target of that request (the cloud's WebSocket URL carries `?x-auth-token=…`).
    public var target: String?
    /// RFC 6455 §11.3.4: the subprotocol selected by the server (e.g. `mqtt`), else the one(s) offered.
    public var subprotocol: String?
    /// RFC 6455 §9.1: the extensions the server accepted (e.g. `permessage-deflate`).
    public var extensions: String?
    /// When the response's head was complete.
    public var at: Timestamp
    /// Client→server stream offset where the new protocol starts (after the upgrade request), when known.
    public var toServerOffset: Int?
    /// Server→client stream offset where the new protocol starts (after the 101's head).
    public var toClientOffset: Int
}

/// A direction resumed decoding at a start line after a gap or an error.
public struct HTTPResync: Hashable, Sendable {
    public var direction: Direction
    /// Stream offset of the start line decoding resumed at.
    public var offset: Int
    /// Bytes received but skipped while looking for it (lost bytes are not counted).
    public var skippedBytes: Int
    public var at: Timestamp
}

/// What an ``HTTPConnectionDecoder`` produces, in the order things completed on the connection.
public enum HTTPConnectionEvent: Hashable, Sendable {
    case request(HTTPRequest)
    case response(HTTPResponse)
    /// Emitted right after the `101` response (or the CONNECT's 2xx) it follows from.
    case upgrade(HTTPUpgrade)
    /// A WebSocket message after an upgrade to `websocket`; its ``WebSocketMessage/direction`` says which way.
    case webSocket(WebSocketMessage)
    case webSocketError(WebSocketDecodingError)
    case error(HTTPDecodingError)
    case resynchronised(HTTPResync)
}

import PilotTraceWire

/// Bytes on an HTTP/1.x stream that cannot be framed: what was wrong, in which direction, where, and a readable
/// message.
///
/// Wire errors only: a gap is not an error (it makes the message in progress incomplete, see
/// ``HTTPIncompleteness``). After an error the direction resynchronises at the next start line. `Code` is a
/// struct rather than an enum so that codes can be added without breaking clients (as ``MQTTError`` does).
public struct HTTPDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of malformation was found; compare with the static members. The raw values are stable ids.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The header section (start line, fields, final empty line) or a trailer section is longer than the
        /// configured maximum.
        public static let headerSectionTooLarge = Code(rawValue: "http.header-section-too-large")
        /// RFC 9112 §3: not `method SP request-target SP HTTP-version`.
        public static let invalidRequestLine = Code(rawValue: "http.invalid-request-line")
        /// RFC 9112 §4: not `HTTP-version SP 3DIGIT SP [reason]`.
        public static let invalidStatusLine = Code(rawValue: "http.invalid-status-line")
        /// RFC 9112 §2.3: a version other than HTTP/1.x.
        public static let unsupportedVersion = Code(rawValue: "http.unsupported-version")
        /// RFC 9112 §6.3 (5): Content-Length is not a number, or several differing values.
        public static let invalidContentLength = Code(rawValue: "http.invalid-content-length")
        /// RFC 9112 §6.3 (4): a request whose Transfer-Encoding does not end in `chunked`.
        public static let unsupportedTransferEncoding = Code(rawValue: "http.unsupported-transfer-encoding")
        /// RFC 9112 §7.1: a chunk-size line that is not `1*HEXDIG [chunk-ext]`.
        public static let invalidChunkSize = Code(rawValue: "http.invalid-chunk-size")
        /// A chunk size larger than the decoder can count (at least 2^63 bytes).
        public static let chunkSizeOverflow = Code(rawValue: "http.chunk-size-overflow")
        /// A chunk-size line (size plus extensions) longer than the configured maximum.
        public static let chunkLineTooLong = Code(rawValue: "http.chunk-line-too-long")
        /// RFC 9112 §7.1: chunk data not followed by CRLF.
        public static let missingChunkTerminator = Code(rawValue: "http.missing-chunk-terminator")
    }

    public var code: Code
    public var direction: Direction
    /// Stream offset (in this direction) of the first byte of the offending element (start line, field,
    /// chunk-size line).
    public var offset: Int
    /// Stream offset of the first byte of the message the error is in.
    public var messageOffset: Int
    public var message: String

    public init(_ code: Code, direction: Direction, offset: Int, messageOffset: Int, _ message: String) {
        self.code = code
        self.direction = direction
        self.offset = offset
        self.messageOffset = messageOffset
        self.message = message
    }

    public var description: String {
        "HTTP \(code) \(direction.arrow) at offset \(offset) (message at \(messageOffset)): \(message)"
    }
}

/// A deviation from RFC 9112 that the decoder tolerated: registered data with a stable id, attached to the
/// message it was found in.
public struct HTTPAnomaly: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// RFC 9112 §6.3 (3): both Transfer-Encoding and Content-Length; chunked framing was used.
    public static let transferEncodingWithContentLength = HTTPAnomaly(rawValue: "http.te-with-content-length")
    /// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message (framing is suspect).
    public static let transferEncodingInHTTP10 = HTTPAnomaly(rawValue: "http.te-in-http10")
    /// RFC 9112 §6.3 (5): the same Content-Length repeated (`5, 5` or two fields).
    public static let repeatedContentLength = HTTPAnomaly(rawValue: "http.repeated-content-length")
    /// RFC 9112 §5.2: a field value continued on the next line (obs-fold), joined with a space.
    public static let obsoleteLineFolding = HTTPAnomaly(rawValue: "http.obs-fold")
    /// RFC 9112 §2.2: a line ended by a bare LF instead of CRLF.
    public static let bareLineFeed = HTTPAnomaly(rawValue: "http.bare-lf")
    /// RFC 9112 §5.1: whitespace between a field name and its colon.
    public static let whitespaceBeforeColon = HTTPAnomaly(rawValue: "http.whitespace-before-colon")
    /// A field line without a colon, or with an empty or invalid name; the line was ignored.
    public static let invalidFieldLine = HTTPAnomaly(rawValue: "http.invalid-field-line")
    /// RFC 9112 §3: the request line separates its parts with something other than a single SP.
    public static let irregularStartLine = HTTPAnomaly(rawValue: "http.irregular-start-line")
    /// A response that could not be paired: its request was never seen or was lost in a gap.
    public static let unpairedResponse = HTTPAnomaly(rawValue: "http.unpaired-response")
    /// Pairing after a gap is a best guess (see ``HTTPConnectionDecoder``).
    public static let pairedAfterGap = HTTPAnomaly(rawValue: "http.paired-after-gap")
    /// The body could not be decoded per its Content-Encoding; the raw body is kept (see ``HTTPBody``).
    public static let contentDecodingFailed = HTTPAnomaly(rawValue: "http.content-decoding-failed")
    /// A body announced as JSON that does not parse.
    public static let invalidJSONBody = HTTPAnomaly(rawValue: "http.invalid-json-body")
}

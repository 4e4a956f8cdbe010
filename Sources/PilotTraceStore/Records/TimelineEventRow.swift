import GRDB

/// One step of a session's timeline (table `timeline_events`).
///
/// `id` is nil until stored (SQLite assigns it). `messageKind` and `messageID` point at the row that evidences the
/// step: `http` → `http_exchanges.id`, `mqtt` → `mqtt_packets.id`, `websocket` → `websocket_messages.id`.
public struct TimelineEventRow: Codable, Sendable, Hashable {
    public var id: Int64?
    /// Set by the writer.
    public var analysisID: Int64
    public var sessionID: Int64
    /// Order within the session, from 0.
    public var ordinal: Int
    public var time: Double
    public var phase: String
    public var step: String
    public var ok: Bool
    /// Seconds from the step's request to its reply (e.g. status → status_reply), when it has one.
    public var latency: Double?
    public var flowID: Int64?
    /// `http`, `mqtt` or `websocket`.
    public var messageKind: String?
    public var messageID: Int64?
    /// A JSON object (text) with the step's details.
    public var detailJSON: String
    /// Where the evidencing message is in the captures: the file (the analysis's `captures` row of this ordinal) and
    /// the frames (Wireshark's `frame.number`) of its first and last bytes (for an HTTP exchange, the request's first
    /// and the response's last); NULL when the step or finding has no message or the frames are not known.
    public var captureOrdinal: Int?
    public var firstFrame: Int?
    public var lastFrame: Int?
    /// Lowercase hex SHA-256 of the MQTT password issued (`mqtt-credentials`) or presented (`mqtt-connect`): joins
    /// the two sides of a login recorded at different capture points (``PilotTraceDatabase/stitchSessions(analysisID:)``).
    /// A secret's digest: no command shows it.
    public var credentialDigest: String?

    public init(
        id: Int64? = nil, analysisID: Int64 = 0, sessionID: Int64, ordinal: Int, time: Double, phase: String,
        step: String, ok: Bool, latency: Double? = nil, flowID: Int64? = nil, messageKind: String? = nil,
        messageID: Int64? = nil, detailJSON: String = "{}", captureOrdinal: Int? = nil, firstFrame: Int? = nil, lastFrame: Int? = nil,
        credentialDigest: String? = nil
    ) {
        self.credentialDigest = credentialDigest
        self.id = id
        self.analysisID = analysisID
        self.sessionID = sessionID
        self.ordinal = ordinal
        self.time = time
        self.phase = phase
        self.step = step
        self.ok = ok
        self.latency = latency
        self.flowID = flowID
        self.messageKind = messageKind
        self.messageID = messageID
        self.detailJSON = detailJSON
        self.captureOrdinal = captureOrdinal
        self.firstFrame = firstFrame
        self.lastFrame = lastFrame
    }

    enum CodingKeys: String, CodingKey {
        case id
        case analysisID = "analysis_id"
        case sessionID = "session_id"
        case ordinal, time, phase, step, ok, latency
        case flowID = "flow_id"
        case messageKind = "message_kind"
        case messageID = "message_id"
        case detailJSON = "detail_json"
        case captureOrdinal = "capture_ordinal"
        case firstFrame = "first_frame"
        case lastFrame = "last_frame"
        case credentialDigest = "credential_digest"
    }
}

extension TimelineEventRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "timeline_events"
}

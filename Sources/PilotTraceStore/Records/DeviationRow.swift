import GRDB

/// One finding of a rule (table `deviations`). `id` is nil until stored (SQLite assigns it).
public struct DeviationRow: Codable, Sendable, Hashable {
    public var id: Int64?
    /// Set by the writer.
    public var analysisID: Int64
    /// The session the finding belongs to; NULL for findings about the run or a connection alone.
    public var sessionID: Int64?
    /// The stable rule identifier.
    public var ruleID: String
    /// `error`, `warning` or `info`.
    public var severity: String
    public var title: String
    public var time: Double?
    public var flowID: Int64?
    /// `http`, `mqtt` or `websocket`.
    public var messageKind: String?
    public var messageID: Int64?
    /// A JSON object (text) with the evidence.
    public var evidenceJSON: String
    /// Where the evidencing message is in the captures: the file (the analysis's `captures` row of this ordinal) and
    /// the frames (Wireshark's `frame.number`) of its first and last bytes (for an HTTP exchange, the request's first
    /// and the response's last); NULL when the step or finding has no message or the frames are not known.
    public var captureOrdinal: Int?
    public var firstFrame: Int?
    public var lastFrame: Int?

    public init(
        id: Int64? = nil, analysisID: Int64 = 0, sessionID: Int64? = nil, ruleID: String, severity: String,
        title: String, time: Double? = nil, flowID: Int64? = nil, messageKind: String? = nil, messageID: Int64? = nil,
        evidenceJSON: String = "{}", captureOrdinal: Int? = nil, firstFrame: Int? = nil, lastFrame: Int? = nil
    ) {
        self.id = id
        self.analysisID = analysisID
        self.sessionID = sessionID
        self.ruleID = ruleID
        self.severity = severity
        self.title = title
        self.time = time
        self.flowID = flowID
        self.messageKind = messageKind
        self.messageID = messageID
        self.evidenceJSON = evidenceJSON
        self.captureOrdinal = captureOrdinal
        self.firstFrame = firstFrame
        self.lastFrame = lastFrame
    }

    enum CodingKeys: String, CodingKey {
        case id
        case analysisID = "analysis_id"
        case sessionID = "session_id"
        case ruleID = "rule_id"
        case severity, title, time
        case flowID = "flow_id"
        case messageKind = "message_kind"
        case messageID = "message_id"
        case evidenceJSON = "evidence_json"
        case captureOrdinal = "capture_ordinal"
        case firstFrame = "first_frame"
        case lastFrame = "last_frame"
    }
}

extension DeviationRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "deviations"
}

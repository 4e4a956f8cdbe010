import GRDB

/// One analysis run over an ordered set of capture files (table `analyses`).
///
/// The row is written by ``PilotTraceDatabase/beginAnalysis(key:captures:toolVersion:createdAt:batchSize:)`` and
/// completed by ``AnalysisWriter/finish(frames:frameBytes:firstTime:lastTime:countersJSON:)``; `frames` is NULL
/// while the run goes on, and stays NULL when it was interrupted.
public struct AnalysisRow: Codable, Sendable, Hashable {
    public var id: Int64?
    /// The identity of the analysed input: the capture files' SHA-256s joined in order (see ``key(captureDigests:)``).
    public var key: String
    /// When the run started, ISO 8601 in UTC (wall-clock time of the run, not a capture time).
    public var createdAt: String
    public var frames: Int?
    public var frameBytes: Int?
    /// Seconds since the Unix epoch, from the capture timestamps.
    public var firstTime: Double?
    public var lastTime: Double?
    public var toolVersion: String
    /// Run counters as a JSON object (text), chosen by the analyser.
    public var countersJSON: String?
    /// Where the traffic came from: `capture` (files), `live` (`capture`), `proxy`, `replay`.
    public var source: String

    public init(
        id: Int64? = nil, key: String, createdAt: String, frames: Int? = nil, frameBytes: Int? = nil,
        firstTime: Double? = nil, lastTime: Double? = nil, toolVersion: String, countersJSON: String? = nil,
        source: String = "capture"
    ) {
        self.source = source
        self.id = id
        self.key = key
        self.createdAt = createdAt
        self.frames = frames
        self.frameBytes = frameBytes
        self.firstTime = firstTime
        self.lastTime = lastTime
        self.toolVersion = toolVersion
        self.countersJSON = countersJSON
    }

    /// The analysis key of captures with these SHA-256s, in the order they were given: the digests joined by `,`.
    public static func key(captureDigests: [String]) -> String { captureDigests.joined(separator: ",") }

    enum CodingKeys: String, CodingKey {
        case id, key
        case createdAt = "created_at"
        case frames
        case frameBytes = "frame_bytes"
        case firstTime = "first_time"
        case lastTime = "last_time"
        case toolVersion = "tool_version"
        case countersJSON = "counters_json"
        case source
    }
}

extension AnalysisRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "analyses"
}

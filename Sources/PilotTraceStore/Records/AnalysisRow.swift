import GRDB

/// One analysis run over an ordered set of capture files (table `analyses`).
///
/// The row is written by ``PilotTraceDatabase/beginAnalysis(key:captures:toolVersion:createdAt:batchSize:background:source:site:)`` and
/// completed by ``AnalysisWriter/finish(frames:frameBytes:firstTime:lastTime:countersJSON:stop:)``; `state` is
/// `running` (and `frames` NULL) while the run goes on, and stays so when the process was killed outright.
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
    /// `running`, `complete` or `interrupted` (Ctrl-C or SIGTERM during an analysis, a capture error: its sessions in
    /// progress were stored `incomplete`). A `running` analysis whose process is gone was killed.
    public var state: String
    /// Why an `interrupted` analysis stopped.
    public var stopReason: String?
    /// When it finished (ISO 8601 UTC, wall clock); NULL while running.
    public var finishedAt: String?
    /// The capture point that recorded it (`--site`, default the host name; empty for analyses stored before).
    public var site: String

    public init(
        id: Int64? = nil, key: String, createdAt: String, frames: Int? = nil, frameBytes: Int? = nil,
        firstTime: Double? = nil, lastTime: Double? = nil, toolVersion: String, countersJSON: String? = nil,
        source: String = "capture", state: String = "complete", stopReason: String? = nil, finishedAt: String? = nil,
        site: String = ""
    ) {
        self.source = source
        self.state = state
        self.stopReason = stopReason
        self.finishedAt = finishedAt
        self.site = site
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
        case source, state, site
        case stopReason = "stop_reason"
        case finishedAt = "finished_at"
    }

    /// Whether the analysis did not read all its input: interrupted, or still running (or killed).
    public var isUnfinished: Bool { state != "complete" }
}

extension AnalysisRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "analyses"
}

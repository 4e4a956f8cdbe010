import Foundation
import GRDB

/// One capture file of an analysis, in the order it was read (table `captures`).
///
/// Given to ``PilotTraceDatabase/beginAnalysis(key:captures:toolVersion:createdAt:batchSize:background:source:site:)`` with what is known
/// before reading (path, digest, format) and completed with ``AnalysisWriter/updateCapture(_:)`` once read.
public struct CaptureRow: Codable, Sendable, Hashable {
    public var id: Int64?
    /// Set by the writer.
    public var analysisID: Int64
    /// Position in the run, from 0.
    public var ordinal: Int
    public var path: String
    /// Lowercase hex SHA-256 of the file's bytes as stored (compressed if compressed).
    public var sha256: String
    /// `pcap`, `pcapng`, …
    public var format: String
    public var compressed: Bool
    /// Link-layer type names, comma-separated (`EN10MB,LINUX_SLL2`).
    public var linkTypes: String
    public var records: Int
    public var firstTime: Double?
    public var lastTime: Double?
    /// Reader warnings (stored as a JSON array of strings).
    public var warnings: [String]

    public init(
        id: Int64? = nil, analysisID: Int64 = 0, ordinal: Int, path: String, sha256: String, format: String,
        compressed: Bool, linkTypes: String = "", records: Int = 0, firstTime: Double? = nil, lastTime: Double? = nil,
        warnings: [String] = []
    ) {
        self.id = id
        self.analysisID = analysisID
        self.ordinal = ordinal
        self.path = path
        self.sha256 = sha256
        self.format = format
        self.compressed = compressed
        self.linkTypes = linkTypes
        self.records = records
        self.firstTime = firstTime
        self.lastTime = lastTime
        self.warnings = warnings
    }

    enum CodingKeys: String, CodingKey {
        case id
        case analysisID = "analysis_id"
        case ordinal, path, sha256, format, compressed
        case linkTypes = "link_types"
        case records
        case firstTime = "first_time"
        case lastTime = "last_time"
        case warnings = "warnings_json"
    }
}

extension CaptureRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "captures"
    public static func databaseJSONEncoder(for column: String) -> JSONEncoder { StoreJSON.encoder() }
}

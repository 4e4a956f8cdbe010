import Foundation
import GRDB

/// One WebSocket message, fragments joined (table `websocket_messages`).
/// The id is assigned by ``AnalysisWriter/nextWebSocketID()``.
public struct WebSocketMessageRow: Codable, Sendable, Hashable {
    public var id: Int64
    /// Set by the writer.
    public var analysisID: Int64
    public var flowID: Int64
    /// `to-server` or `to-client`.
    public var direction: String
    public var time: Double
    /// `text`, `binary`, `close`, `ping` or `pong`.
    public var kind: String
    /// The payload length in the frames (the stored payload may be shorter when capped).
    public var length: Int
    /// The unmasked payload bytes.
    public var payload: Data
    /// The payload as text, when it is valid UTF-8.
    public var text: String?
    /// The payload as JSON text, when it parsed as JSON.
    public var json: String?
    /// The status code of a `close` message.
    public var closeCode: Int?
    /// The capture file the first frame is in: the analysis's `captures` row of this ordinal (from 0).
    public var captureOrdinal: Int?
    /// The frames, numbered as Wireshark numbers them (`frame.number`, from 1 in the file), that carried the first
    /// and the last byte; NULL when not known (the last one also when it is in the next file of a rotated capture).
    public var firstFrame: Int?
    public var lastFrame: Int?

    public init(
        id: Int64, analysisID: Int64 = 0, flowID: Int64, direction: String, time: Double, kind: String, length: Int,
        payload: Data, text: String? = nil, json: String? = nil, closeCode: Int? = nil,
        captureOrdinal: Int? = nil, firstFrame: Int? = nil, lastFrame: Int? = nil
    ) {
        self.id = id
        self.analysisID = analysisID
        self.flowID = flowID
        self.direction = direction
        self.time = time
        self.kind = kind
        self.length = length
        self.payload = payload
        self.text = text
        self.json = json
        self.closeCode = closeCode
        self.captureOrdinal = captureOrdinal
        self.firstFrame = firstFrame
        self.lastFrame = lastFrame
    }

    enum CodingKeys: String, CodingKey {
        case id
        case analysisID = "analysis_id"
        case flowID = "flow_id"
        case direction, time, kind, length, payload, text, json
        case closeCode = "close_code"
        case captureOrdinal = "capture_ordinal"
        case firstFrame = "first_frame"
        case lastFrame = "last_frame"
    }
}

extension WebSocketMessageRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "websocket_messages"
}

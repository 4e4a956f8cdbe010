import Foundation
import GRDB

/// One MQTT control packet (table `mqtt_packets`), or a window of repeated telemetry. The id is assigned by
/// ``AnalysisWriter/nextMQTTID()``.
///
/// **Telemetry windows.** Periodic telemetry (`thing/product/{sn}/osd` and `…/state` PUBLISHes) is most of a real
/// capture and nothing reads it packet by packet, so an analysis stores it as one row per connection, direction,
/// topic, QoS and 10-second window (``telemetryWindow``): the row is its first PUBLISH (payload and summary included)
/// and says how many it stands for (``packetCount``), when the last came (``lastTime``), their payload bytes
/// (``totalPayloadLength``), how many were acknowledged by a PUBACK (``acknowledged``; those PUBACKs have no row of
/// their own) and the frame of each (``frames``). Every other packet is a row with a count of 1.
///
/// `password` is a secret: it is stored as captured so a replay can use it, and every reader that shows it must
/// mask it (``maskedPassword``).
public struct MQTTPacketRow: Codable, Sendable, Hashable {
    public var id: Int64
    /// Set by the writer.
    public var analysisID: Int64
    public var flowID: Int64
    /// `to-server` or `to-client`.
    public var direction: String
    public var time: Double
    /// The packet came inside WebSocket binary messages.
    public var overWebSocket: Bool
    /// `3.1`, `3.1.1` or `5.0`.
    public var version: String
    /// The version was not seen in a CONNECT (the capture began mid-session) and was assumed.
    public var versionAssumed: Bool
    /// `CONNECT`, `CONNACK`, `PUBLISH`, … (MQTT 3.1.1 §2.2.1, MQTT 5.0 §2.1.2).
    public var type: String
    public var packetID: Int?
    public var qos: Int?
    public var retain: Bool?
    public var dup: Bool?
    public var topic: String?
    public var payload: Data?
    /// The payload length on the wire (the stored payload may be shorter when capped).
    public var payloadLength: Int?
    /// The payload as JSON text, when it parsed as JSON.
    public var payloadJSON: String?
    public var clientID: String?
    public var username: String?
    /// A secret (CONNECT password): stored, masked by readers.
    public var password: Data?
    public var keepAlive: Int?
    /// CONNACK return code (3.1.1) or reason code (5.0), SUBACK/UNSUBACK first code, …
    public var returnCode: Int?
    /// A one-line description of the packet.
    public var summary: String
    /// The capture file the first frame is in: the analysis's `captures` row of this ordinal (from 0).
    public var captureOrdinal: Int?
    /// The frames, numbered as Wireshark numbers them (`frame.number`, from 1 in the file), that carried the first
    /// and the last byte; NULL when not known (the last one also when it is in the next file of a rotated capture).
    public var firstFrame: Int?
    public var lastFrame: Int?
    /// How many packets the row stands for: 1, or the PUBLISHes of a telemetry window.
    public var packetCount: Int
    /// A telemetry window: the time of its last PUBLISH; NULL for a single packet.
    public var lastTime: Double?
    /// A telemetry window: the payload bytes of all its PUBLISHes on the wire; NULL for a single packet.
    public var totalPayloadLength: Int?
    /// A telemetry window of QoS 1: how many of its PUBLISHes a PUBACK acknowledged (folded into this row); NULL else.
    public var acknowledged: Int?
    /// A telemetry window: the last frame of each PUBLISH in it, in order, comma-separated (`120,131,142`) — the frame
    /// references Wireshark needs (`frame.number in {120 131 142}`); NULL for a single packet.
    public var frames: String?

    /// The length of a telemetry window, in seconds: windows start at multiples of it (Unix time).
    public static let telemetryWindow = 10.0

    /// The time of the row's last packet.
    public var endTime: Double { lastTime ?? time }

    public init(
        id: Int64, analysisID: Int64 = 0, flowID: Int64, direction: String, time: Double, overWebSocket: Bool = false,
        version: String, versionAssumed: Bool = false, type: String, packetID: Int? = nil, qos: Int? = nil,
        retain: Bool? = nil, dup: Bool? = nil, topic: String? = nil, payload: Data? = nil, payloadLength: Int? = nil,
        payloadJSON: String? = nil, clientID: String? = nil, username: String? = nil, password: Data? = nil,
        keepAlive: Int? = nil, returnCode: Int? = nil, summary: String, captureOrdinal: Int? = nil, firstFrame: Int? = nil,
        lastFrame: Int? = nil, packetCount: Int = 1, lastTime: Double? = nil, totalPayloadLength: Int? = nil,
        acknowledged: Int? = nil, frames: String? = nil
    ) {
        self.id = id
        self.analysisID = analysisID
        self.flowID = flowID
        self.direction = direction
        self.time = time
        self.overWebSocket = overWebSocket
        self.version = version
        self.versionAssumed = versionAssumed
        self.type = type
        self.packetID = packetID
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.topic = topic
        self.payload = payload
        self.payloadLength = payloadLength
        self.payloadJSON = payloadJSON
        self.clientID = clientID
        self.username = username
        self.password = password
        self.keepAlive = keepAlive
        self.returnCode = returnCode
        self.summary = summary
        self.captureOrdinal = captureOrdinal
        self.firstFrame = firstFrame
        self.lastFrame = lastFrame
        self.packetCount = packetCount
        self.lastTime = lastTime
        self.totalPayloadLength = totalPayloadLength
        self.acknowledged = acknowledged
        self.frames = frames
    }

    /// The password as a reader should show it: its length only, or nil when there is none.
    public var maskedPassword: String? {
        password.map { "<\($0.count) bytes hidden>" }
    }

    /// What closing a telemetry window writes into its row. The row is stored as the window opens (its first PUBLISH,
    /// with a count of 1, as any packet) and completed when the window closes, so the analysis holds no payload,
    /// summary or row for an open window: with thousands of devices online, open windows were the largest part of
    /// what storing adds to the analysis's memory.
    public struct WindowClose: Sendable, Hashable {
        public var id: Int64
        public var packetCount: Int
        public var lastTime: Double
        /// The row's `last_frame` (the last PUBLISH's; nil when the row has no capture file).
        public var lastFrame: Int?
        public var totalPayloadLength: Int
        public var acknowledged: Int?
        public var frames: String?
        /// Appended to the row's summary (` ×5 in 8.0 s`); empty for a window of one PUBLISH.
        public var summarySuffix: String

        public init(
            id: Int64, packetCount: Int, lastTime: Double, lastFrame: Int?, totalPayloadLength: Int, acknowledged: Int?,
            frames: String?, summarySuffix: String
        ) {
            (self.id, self.packetCount, self.lastTime, self.lastFrame) = (id, packetCount, lastTime, lastFrame)
            (self.totalPayloadLength, self.acknowledged, self.frames, self.summarySuffix) = (totalPayloadLength, acknowledged, frames, summarySuffix)
        }

        /// The window's row completed (for a row not written yet).
        public func apply(to row: inout MQTTPacketRow) {
            row.packetCount = packetCount
            row.lastTime = lastTime
            row.lastFrame = lastFrame
            row.totalPayloadLength = totalPayloadLength
            row.acknowledged = acknowledged
            row.frames = frames
            row.summary += summarySuffix
        }

        /// Completes a written row (SQLite; PostgreSQL completes a batch's windows in one statement:
        /// `AnalysisWriter.Batch.closeWindows`). ``arguments`` are its values, in order.
        static let updateSQL = """
            UPDATE mqtt_packets SET packet_count = ?, last_time = ?, last_frame = ?, total_payload_length = ?,
              acknowledged = ?, frames = ?, summary = summary || ? WHERE id = ?
            """

        var arguments: [SQLValue] {
            [
                .integer(Int64(packetCount)), .real(lastTime), lastFrame.map { .integer(Int64($0)) } ?? .null,
                .integer(Int64(totalPayloadLength)), acknowledged.map { .integer(Int64($0)) } ?? .null,
                frames.map { .text($0) } ?? .null, .text(summarySuffix), .integer(id),
            ]
        }
    }

    enum CodingKeys: String, CodingKey {
        case id
        case analysisID = "analysis_id"
        case flowID = "flow_id"
        case direction, time
        case overWebSocket = "over_websocket"
        case version
        case versionAssumed = "version_assumed"
        case type
        case packetID = "packet_id"
        case qos, retain, dup, topic, payload
        case payloadLength = "payload_length"
        case payloadJSON = "payload_json"
        case clientID = "client_id"
        case username, password
        case keepAlive = "keep_alive"
        case returnCode = "return_code"
        case summary
        case captureOrdinal = "capture_ordinal"
        case firstFrame = "first_frame"
        case lastFrame = "last_frame"
        case packetCount = "packet_count"
        case lastTime = "last_time"
        case totalPayloadLength = "total_payload_length"
        case acknowledged, frames
    }
}

extension MQTTPacketRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "mqtt_packets"
}

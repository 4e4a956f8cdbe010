import Foundation
import GRDB

/// One MQTT control packet (table `mqtt_packets`). The id is assigned by ``AnalysisWriter/nextMQTTID()``.
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

    public init(
        id: Int64, analysisID: Int64 = 0, flowID: Int64, direction: String, time: Double, overWebSocket: Bool = false,
        version: String, versionAssumed: Bool = false, type: String, packetID: Int? = nil, qos: Int? = nil,
        retain: Bool? = nil, dup: Bool? = nil, topic: String? = nil, payload: Data? = nil, payloadLength: Int? = nil,
        payloadJSON: String? = nil, clientID: String? = nil, username: String? = nil, password: Data? = nil,
        keepAlive: Int? = nil, returnCode: Int? = nil, summary: String, captureOrdinal: Int? = nil, firstFrame: Int? = nil,
        lastFrame: Int? = nil
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
    }

    /// The password as a reader should show it: its length only, or nil when there is none.
    public var maskedPassword: String? {
        password.map { "<\($0.count) bytes hidden>" }
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
    }
}

extension MQTTPacketRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "mqtt_packets"
}

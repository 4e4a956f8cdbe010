import Foundation
import GRDB

/// One Pilot 2 ↔ cloud session (table `sessions`). The id is assigned by ``AnalysisWriter/nextSessionID()``; the
/// model upserts the row as the session's state and end move (``AnalysisWriter/upsertSession(_:)``).
public struct SessionRow: Codable, Sendable, Hashable {
    public var id: Int64
    /// Set by the writer.
    public var analysisID: Int64
    /// The remote controller (gateway) serial number, when seen.
    public var gatewaySN: String?
    /// The gateway model key `domain-type-subtype`, e.g. `2-119-0`.
    public var gatewayModel: String?
    /// The model's name, when known (e.g. `DJI RC Plus`).
    public var gatewayModelName: String?
    /// `online`, `offline`, `failed` or `incomplete`.
    public var state: String
    public var startTime: Double
    /// The time of the session's last event; NULL when not known yet.
    public var endTime: Double?
    /// The Pilot 2 address (`ip:port` or `ip`), when known.
    public var client: String?
    public var mqttClientID: String?
    public var mqttUsername: String?
    /// Aircraft serial numbers seen under this gateway (stored as a JSON array of strings).
    public var aircraftSNs: [String]
    /// A JSON object (text) summarising the session, chosen by the model.
    public var summaryJSON: String?
    /// For a replayed session: the stored session it re-drove.
    public var replayOf: Int64?
    /// For the part of a session recorded at another capture point (the HTTP side of a login whose device connected
    /// to a broker captured elsewhere): the session it belongs to (``PilotTraceDatabase/stitchSessions(analysisID:)``).
    public var partOf: Int64?

    public init(
        id: Int64, analysisID: Int64 = 0, gatewaySN: String? = nil, gatewayModel: String? = nil,
        gatewayModelName: String? = nil, state: String, startTime: Double, endTime: Double? = nil,
        client: String? = nil, mqttClientID: String? = nil, mqttUsername: String? = nil, aircraftSNs: [String] = [],
        summaryJSON: String? = nil, replayOf: Int64? = nil, partOf: Int64? = nil
    ) {
        self.partOf = partOf
        self.replayOf = replayOf
        self.id = id
        self.analysisID = analysisID
        self.gatewaySN = gatewaySN
        self.gatewayModel = gatewayModel
        self.gatewayModelName = gatewayModelName
        self.state = state
        self.startTime = startTime
        self.endTime = endTime
        self.client = client
        self.mqttClientID = mqttClientID
        self.mqttUsername = mqttUsername
        self.aircraftSNs = aircraftSNs
        self.summaryJSON = summaryJSON
    }

    enum CodingKeys: String, CodingKey {
        case id
        case analysisID = "analysis_id"
        case gatewaySN = "gateway_sn"
        case gatewayModel = "gateway_model"
        case gatewayModelName = "gateway_model_name"
        case state
        case startTime = "start_time"
        case endTime = "end_time"
        case client
        case mqttClientID = "mqtt_client_id"
        case mqttUsername = "mqtt_username"
        case aircraftSNs = "aircraft_sns_json"
        case summaryJSON = "summary_json"
        case replayOf = "replay_of"
        case partOf = "part_of"
    }
}

extension SessionRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "sessions"
    public static func databaseJSONEncoder(for column: String) -> JSONEncoder { StoreJSON.encoder() }
}

import Foundation
import GRDB

/// One replayed step compared with the recording (table `replay_steps`).
public struct ReplayStepRow: Codable, Sendable, Hashable {
    public var id: Int64?
    /// Set by ``PilotTraceDatabase/recordReplay(analysisID:sessionID:originalSessionID:steps:)``.
    public var analysisID: Int64
    /// The replay's session (its own traffic, analysed); NULL when the replay formed none.
    public var sessionID: Int64?
    /// The stored session that was replayed; NULL once it is deleted.
    public var originalSessionID: Int64?
    public var ordinal: Int
    /// `http` or `mqtt`.
    public var kind: String
    public var name: String
    /// `matched`, `changed` or `missing`.
    public var outcome: String
    public var regression: Bool
    public var recordedLatency: Double?
    public var replayedLatency: Double?
    /// JSON array of `{what, path, recorded, replayed, regression}`.
    public var differencesJSON: String

    public init(ordinal: Int, kind: String, name: String, outcome: String, regression: Bool, recordedLatency: Double?,
                replayedLatency: Double?, differencesJSON: String) {
        analysisID = 0
        self.ordinal = ordinal
        self.kind = kind
        self.name = name
        self.outcome = outcome
        self.regression = regression
        self.recordedLatency = recordedLatency
        self.replayedLatency = replayedLatency
        self.differencesJSON = differencesJSON
    }

    enum CodingKeys: String, CodingKey {
        case id, ordinal, kind, name, outcome, regression
        case analysisID = "analysis_id"
        case sessionID = "session_id"
        case originalSessionID = "original_session_id"
        case recordedLatency = "recorded_latency"
        case replayedLatency = "replayed_latency"
        case differencesJSON = "differences_json"
    }
}

extension ReplayStepRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "replay_steps"
}

/// What a replay reads of one stored session.
public struct StoredSessionTraffic: Sendable {
    public var session: SessionRow
    public var exchanges: [HTTPExchangeRow]
    public var mqtt: [MQTTPacketRow]
    public var timeline: [TimelineEventRow]
    /// The rule ids of the session's findings.
    public var findings: [String]
}

extension PilotTraceDatabase {
    /// A session's traffic for a replay: the HTTP exchanges and MQTT packets of every connection its timeline
    /// touches, in time order, and its findings. Nil when there is no such session.
    public func traffic(sessionID: Int64) throws -> StoredSessionTraffic? {
        try pool.read { db in
            guard let session = try SessionRow.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [sessionID]) else {
                return nil
            }
            let timeline = try TimelineEventRow.fetchAll(
                db, sql: "SELECT * FROM timeline_events WHERE session_id = ? ORDER BY ordinal, id", arguments: [sessionID])
            let flows = "[" + Set(timeline.compactMap(\.flowID)).map(String.init).joined(separator: ",") + "]"
            let exchanges = try HTTPExchangeRow.fetchAll(
                db, sql: """
                    SELECT * FROM http_exchanges WHERE flow_id IN (SELECT value FROM json_each(?))
                    ORDER BY coalesce(request_time, response_time), id
                    """, arguments: [flows])
            let mqtt = try MQTTPacketRow.fetchAll(
                db, sql: "SELECT * FROM mqtt_packets WHERE flow_id IN (SELECT value FROM json_each(?)) ORDER BY time, id",
                arguments: [flows])
            let findings = try String.fetchAll(
                db, sql: "SELECT rule_id FROM deviations WHERE session_id = ? ORDER BY time, id", arguments: [sessionID])
            return StoredSessionTraffic(session: session, exchanges: exchanges, mqtt: mqtt, timeline: timeline, findings: findings)
        }
    }

    /// The sessions a `replay --all` re-drives: every session not itself a replay, by start time.
    public func replayableSessions() throws -> [SessionRow] {
        try pool.read {
            try SessionRow.fetchAll($0, sql: """
                SELECT s.* FROM sessions s JOIN analyses a ON a.id = s.analysis_id
                WHERE a.source != 'replay' ORDER BY s.start_time, s.id
                """)
        }
    }

    /// Links a replay's session to the session it replayed and stores the step comparison, in one transaction.
    public func recordReplay(analysisID: Int64, sessionID: Int64?, originalSessionID: Int64, steps: [ReplayStepRow]) throws {
        do {
            try pool.write { db in
                if let sessionID {
                    try db.execute(sql: "UPDATE sessions SET replay_of = ? WHERE id = ?", arguments: [originalSessionID, sessionID])
                }
                for var row in steps {
                    row.analysisID = analysisID
                    row.sessionID = sessionID
                    row.originalSessionID = originalSessionID
                    try row.insert(db)
                }
            }
        } catch {
            throw PilotTraceStoreError(
                kind: .writeFailed, path: path,
                message: "cannot store the replay of session \(originalSessionID): \(Self.reason(error))")
        }
    }

    /// A replay's steps, by ordinal.
    public func replaySteps(sessionID: Int64) throws -> [ReplayStepRow] {
        try pool.read {
            try ReplayStepRow.fetchAll($0, sql: "SELECT * FROM replay_steps WHERE session_id = ? ORDER BY ordinal, id", arguments: [sessionID])
        }
    }
}

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

    public init(
        ordinal: Int, kind: String, name: String, outcome: String, regression: Bool, recordedLatency: Double?,
        replayedLatency: Double?, differencesJSON: String
    ) {
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
        try read { tx in
            guard let session = try tx.fetch(SessionRow.self, "SELECT * FROM sessions WHERE id = ?", [.integer(sessionID)]).first else {
                return nil
            }
            let timeline = try tx.fetch(
                TimelineEventRow.self, "SELECT * FROM timeline_events WHERE session_id = ? ORDER BY ordinal, id", [.integer(sessionID)])
            let flows = Self.idList(Array(Set(timeline.compactMap(\.flowID))).sorted())
            let exchanges =
                flows.isEmpty
                ? []
                : try tx.fetch(
                    HTTPExchangeRow.self,
                    """
                    SELECT * FROM http_exchanges WHERE flow_id IN (\(flows)) ORDER BY coalesce(request_time, response_time), id
                    """)
            let mqtt = flows.isEmpty ? [] : try tx.fetch(MQTTPacketRow.self, "SELECT * FROM mqtt_packets WHERE flow_id IN (\(flows)) ORDER BY time, id")
            let findings = try tx.rows("SELECT rule_id FROM deviations WHERE session_id = ? ORDER BY time NULLS FIRST, id", [.integer(sessionID)])
                .compactMap { row -> String? in if case .text(let rule) = row["rule_id"] { rule } else { nil } }
            return StoredSessionTraffic(session: session, exchanges: exchanges, mqtt: mqtt, timeline: timeline, findings: findings)
        }
    }

    /// The sessions a `replay --all` re-drives: every session not itself a replay, by start time.
    public func replayableSessions() throws -> [SessionRow] {
        try fetch(
            SessionRow.self,
            """
            SELECT s.* FROM sessions s JOIN analyses a ON a.id = s.analysis_id
            WHERE a.source <> 'replay' ORDER BY s.start_time, s.id
            """)
    }

    /// Links a replay's session to the session it replayed and stores the step comparison, in one transaction.
    public func recordReplay(analysisID: Int64, sessionID: Int64?, originalSessionID: Int64, steps: [ReplayStepRow]) throws {
        do {
            try write { tx in
                if let sessionID {
                    try tx.execute("UPDATE sessions SET replay_of = ? WHERE id = ?", [.integer(originalSessionID), .integer(sessionID)])
                }
                for row in steps {
                    try tx.execute(
                        """
                        INSERT INTO replay_steps (analysis_id, session_id, original_session_id, ordinal, kind, name, outcome, regression,
                          recorded_latency, replayed_latency, differences_json)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                        [
                            .integer(analysisID), SQLValue(sessionID), .integer(originalSessionID), SQLValue(row.ordinal), .text(row.kind),
                            .text(row.name), .text(row.outcome), SQLValue(row.regression), SQLValue(row.recordedLatency),
                            SQLValue(row.replayedLatency), .text(row.differencesJSON),
                        ])
                }
            }
        } catch let error as PilotTraceStoreError {
            throw error
        } catch {
            throw PilotTraceStoreError(
                kind: .writeFailed, path: path,
                message: "cannot store the replay of session \(originalSessionID): \(Self.reason(error))")
        }
    }

    /// A replay's steps, by ordinal.
    public func replaySteps(sessionID: Int64) throws -> [ReplayStepRow] {
        try fetch(ReplayStepRow.self, "SELECT * FROM replay_steps WHERE session_id = ? ORDER BY ordinal, id", [.integer(sessionID)])
    }
}

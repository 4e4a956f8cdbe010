import Foundation
import GRDB

/// How many rows an analysis has in each table.
public struct AnalysisCounts: Sendable, Hashable {
    public var captures: Int
    public var flows: Int
    public var http: Int
    public var websocket: Int
    public var mqtt: Int
    public var sessions: Int
    public var timeline: Int
    public var deviations: Int

    public init(
        captures: Int = 0, flows: Int = 0, http: Int = 0, websocket: Int = 0, mqtt: Int = 0, sessions: Int = 0,
        timeline: Int = 0, deviations: Int = 0
    ) {
        self.captures = captures
        self.flows = flows
        self.http = http
        self.websocket = websocket
        self.mqtt = mqtt
        self.sessions = sessions
        self.timeline = timeline
        self.deviations = deviations
    }
}

extension PilotTraceDatabase {
    // MARK: - Analyses

    /// Every analysis, oldest first.
    public func analyses() throws -> [AnalysisRow] {
        try pool.read { try AnalysisRow.fetchAll($0, sql: "SELECT * FROM analyses ORDER BY id") }
    }

    /// The most recently begun analysis (ids only grow: `AUTOINCREMENT`).
    public func latestAnalysis() throws -> AnalysisRow? {
        try pool.read { try AnalysisRow.fetchOne($0, sql: "SELECT * FROM analyses ORDER BY id DESC LIMIT 1") }
    }

    public func analysis(id: Int64) throws -> AnalysisRow? {
        try pool.read { try AnalysisRow.fetchOne($0, sql: "SELECT * FROM analyses WHERE id = ?", arguments: [id]) }
    }

    public func analysis(key: String) throws -> AnalysisRow? {
        try pool.read { try AnalysisRow.fetchOne($0, sql: "SELECT * FROM analyses WHERE key = ?", arguments: [key]) }
    }

    /// An analysis's capture files, by ordinal.
    public func captures(analysisID: Int64) throws -> [CaptureRow] {
        try pool.read {
            try CaptureRow.fetchAll(
                $0, sql: "SELECT * FROM captures WHERE analysis_id = ? ORDER BY ordinal", arguments: [analysisID])
        }
    }

    /// Rows per table for one analysis, in one query.
    public func counts(analysisID: Int64) throws -> AnalysisCounts {
        try pool.read { db in
            let tables = ["captures", "flows", "http_exchanges", "websocket_messages", "mqtt_packets", "sessions",
                          "timeline_events", "deviations"]
            let sql = "SELECT " + tables.map { "(SELECT count(*) FROM \($0) WHERE analysis_id = :id)" }
                .joined(separator: ", ")
            guard let row = try Row.fetchOne(db, sql: sql, arguments: ["id": analysisID]) else { return AnalysisCounts() }
            return AnalysisCounts(
                captures: row[0], flows: row[1], http: row[2], websocket: row[3], mqtt: row[4], sessions: row[5],
                timeline: row[6], deviations: row[7])
        }
    }

    // MARK: - Flows and messages

    /// An analysis's connections, by connection number.
    public func flows(analysisID: Int64) throws -> [FlowRow] {
        try pool.read {
            try FlowRow.fetchAll(
                $0, sql: "SELECT * FROM flows WHERE analysis_id = ? ORDER BY connection_number, id",
                arguments: [analysisID])
        }
    }

    /// An analysis's HTTP exchanges, by connection then sequence.
    public func httpExchanges(analysisID: Int64) throws -> [HTTPExchangeRow] {
        try pool.read {
            try HTTPExchangeRow.fetchAll(
                $0, sql: "SELECT * FROM http_exchanges WHERE analysis_id = ? ORDER BY flow_id, sequence, id",
                arguments: [analysisID])
        }
    }

    /// An analysis's WebSocket messages, by time.
    public func webSocketMessages(analysisID: Int64) throws -> [WebSocketMessageRow] {
        try pool.read {
            try WebSocketMessageRow.fetchAll(
                $0, sql: "SELECT * FROM websocket_messages WHERE analysis_id = ? ORDER BY time, id",
                arguments: [analysisID])
        }
    }

    /// An analysis's MQTT packets, by time; only those on `topic` when given. Passwords are as captured: mask them
    /// (``MQTTPacketRow/maskedPassword``) before showing.
    public func mqttPackets(analysisID: Int64, topic: String? = nil) throws -> [MQTTPacketRow] {
        try pool.read { db in
            if let topic {
                return try MQTTPacketRow.fetchAll(
                    db, sql: "SELECT * FROM mqtt_packets WHERE topic = ? AND analysis_id = ? ORDER BY time, id",
                    arguments: [topic, analysisID])
            }
            return try MQTTPacketRow.fetchAll(
                db, sql: "SELECT * FROM mqtt_packets WHERE analysis_id = ? ORDER BY time, id", arguments: [analysisID])
        }
    }

    // MARK: - Sessions

    /// Sessions by start time (then id), of one analysis or of all.
    public func sessions(analysisID: Int64? = nil) throws -> [SessionRow] {
        try pool.read { db in
            if let analysisID {
                return try SessionRow.fetchAll(
                    db, sql: "SELECT * FROM sessions WHERE analysis_id = ? ORDER BY start_time, id",
                    arguments: [analysisID])
            }
            return try SessionRow.fetchAll(db, sql: "SELECT * FROM sessions ORDER BY start_time, id")
        }
    }

    /// One session, by id (the primary key: `timeline ID` does not read the other sessions).
    public func session(id: Int64) throws -> SessionRow? {
        try pool.read { try SessionRow.fetchOne($0, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id]) }
    }

    /// A session's timeline, by ordinal.
    public func timeline(sessionID: Int64) throws -> [TimelineEventRow] {
        try pool.read {
            try TimelineEventRow.fetchAll(
                $0, sql: "SELECT * FROM timeline_events WHERE session_id = ? ORDER BY ordinal, id",
                arguments: [sessionID])
        }
    }

    /// The timelines of several sessions in one query, each by ordinal. Sessions without events map to `[]`.
    public func timelines(sessionIDs: [Int64]) throws -> [Int64: [TimelineEventRow]] {
        var result: [Int64: [TimelineEventRow]] = [:]
        for id in sessionIDs { result[id] = [] }
        guard !sessionIDs.isEmpty else { return result }
        let ids = "[" + sessionIDs.map(String.init).joined(separator: ",") + "]"
        let events = try pool.read {
            try TimelineEventRow.fetchAll(
                $0,
                sql: """
                    SELECT * FROM timeline_events WHERE session_id IN (SELECT value FROM json_each(?))
                    ORDER BY session_id, ordinal, id
                    """,
                arguments: [ids])
        }
        for event in events { result[event.sessionID, default: []].append(event) }
        return result
    }

    /// A session's deviations, by time (those without a time first), then id.
    public func deviations(sessionID: Int64) throws -> [DeviationRow] {
        try pool.read {
            try DeviationRow.fetchAll(
                $0, sql: "SELECT * FROM deviations WHERE session_id = ? ORDER BY time, id", arguments: [sessionID])
        }
    }

    /// An analysis's deviations, with or without a session, by time then id.
    public func deviations(analysisID: Int64) throws -> [DeviationRow] {
        try pool.read {
            try DeviationRow.fetchAll(
                $0, sql: "SELECT * FROM deviations WHERE analysis_id = ? ORDER BY time, id", arguments: [analysisID])
        }
    }
}

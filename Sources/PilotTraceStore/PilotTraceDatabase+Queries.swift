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

    /// Sessions by start time (then id), of one analysis or of all. A session recorded at several capture points is
    /// listed once: its parts (``SessionRow/partOf``) are not listed on their own, and its start and end span them.
    public func sessions(analysisID: Int64? = nil) throws -> [SessionRow] {
        let rows = try pool.read { db in
            if let analysisID {
                return try SessionRow.fetchAll(
                    db, sql: "SELECT * FROM sessions WHERE analysis_id = ? AND part_of IS NULL ORDER BY start_time, id",
                    arguments: [analysisID])
            }
            return try SessionRow.fetchAll(db, sql: "SELECT * FROM sessions WHERE part_of IS NULL ORDER BY start_time, id")
        }
        return try spanningParts(rows)
    }

    /// One session, by id (the primary key: `timeline ID` does not read the other sessions); a part of another
    /// session is found too (``SessionRow/partOf`` says whose).
    public func session(id: Int64) throws -> SessionRow? {
        let row = try pool.read { try SessionRow.fetchOne($0, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id]) }
        return try row.map { try spanningParts([$0])[0] }
    }

    /// The parts of each session that has some (recorded at other capture points), by start.
    public func parts(of sessionIDs: [Int64]) throws -> [Int64: [SessionRow]] {
        guard !sessionIDs.isEmpty else { return [:] }
        let parts = try pool.read {
            try SessionRow.fetchAll($0, sql: "SELECT * FROM sessions WHERE part_of IN (\(Self.idList(sessionIDs))) ORDER BY start_time, id")
        }
        return Dictionary(grouping: parts) { $0.partOf ?? 0 }
    }

    /// Rows whose parts start earlier or end later take their span.
    func spanningParts(_ rows: [SessionRow]) throws -> [SessionRow] {
        let parts = try parts(of: rows.map(\.id))
        guard !parts.isEmpty else { return rows }
        return rows.map { row in
            guard let mine = parts[row.id] else { return row }
            var row = row
            row.startTime = min(row.startTime, mine.map(\.startTime).min() ?? row.startTime)
            let ends = mine.compactMap(\.endTime) + (row.endTime.map { [$0] } ?? [])
            row.endTime = ends.max()
            return row
        }
    }

    /// Ids as an SQL list (integers only, so nothing to escape).
    static func idList(_ ids: [Int64]) -> String { ids.map(String.init).joined(separator: ",") }

    /// A session's timeline (its parts' steps included), by time.
    public func timeline(sessionID: Int64) throws -> [TimelineEventRow] {
        try timelines(sessionIDs: [sessionID])[sessionID] ?? []
    }

    /// The timelines of several sessions in one query, each by time (a session recorded at several capture points
    /// has its parts' steps in place), else by ordinal. Sessions without events map to `[]`.
    public func timelines(sessionIDs: [Int64]) throws -> [Int64: [TimelineEventRow]] {
        var result: [Int64: [TimelineEventRow]] = [:]
        for id in sessionIDs { result[id] = [] }
        guard !sessionIDs.isEmpty else { return result }
        let owner = try owners(sessionIDs)
        let events = try pool.read {
            try TimelineEventRow.fetchAll(
                $0,
                sql: """
                    SELECT * FROM timeline_events WHERE session_id IN (\(Self.idList(Array(owner.keys))))
                    ORDER BY session_id, ordinal, id
                    """)
        }
        for event in events { if let main = owner[event.sessionID] { result[main, default: []].append(event) } }
        // A stitched session's steps interleave by time; within one side the ordinal order stands (a stable sort).
        for (main, list) in result where Set(list.map(\.sessionID)).count > 1 {
            result[main] = list.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        }
        return result
    }

    /// Each session and each of its parts, → the session.
    func owners(_ sessionIDs: [Int64]) throws -> [Int64: Int64] {
        var owner: [Int64: Int64] = [:]
        for id in sessionIDs { owner[id] = id }
        for (main, parts) in try parts(of: sessionIDs) { for p in parts { owner[p.id] = main } }
        return owner
    }

    /// A session's deviations (its parts' included), by time (those without a time first), then id. A stitched
    /// session keeps one `cleartext-credentials` finding, the first, as one capture point's session does.
    public func deviations(sessionID: Int64) throws -> [DeviationRow] {
        let ids = Array(try owners([sessionID]).keys)
        let rows = try pool.read {
            try DeviationRow.fetchAll(
                $0, sql: "SELECT * FROM deviations WHERE session_id IN (\(Self.idList(ids))) ORDER BY time NULLS FIRST, id")
        }
        guard ids.count > 1 else { return rows }
        var cleartext = false
        return rows.filter { row in
            guard row.ruleID == "cleartext-credentials" else { return true }
            defer { cleartext = true }
            return !cleartext
        }
    }

    /// An analysis's deviations, with or without a session, by time then id.
    public func deviations(analysisID: Int64) throws -> [DeviationRow] {
        try pool.read {
            try DeviationRow.fetchAll(
                $0, sql: "SELECT * FROM deviations WHERE analysis_id = ? ORDER BY time NULLS FIRST, id", arguments: [analysisID])
        }
    }
}

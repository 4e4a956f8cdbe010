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
        try fetch(AnalysisRow.self, "SELECT * FROM analyses ORDER BY id")
    }

    /// The most recently begun analysis (ids only grow: `AUTOINCREMENT`).
    public func latestAnalysis() throws -> AnalysisRow? {
        try fetchOne(AnalysisRow.self, "SELECT * FROM analyses ORDER BY id DESC LIMIT 1")
    }

    public func analysis(id: Int64) throws -> AnalysisRow? {
        try fetchOne(AnalysisRow.self, "SELECT * FROM analyses WHERE id = ?", [.integer(id)])
    }

    public func analysis(key: String) throws -> AnalysisRow? {
        try fetchOne(AnalysisRow.self, "SELECT * FROM analyses WHERE key = ?", [.text(key)])
    }

    /// An analysis's capture files, by ordinal.
    public func captures(analysisID: Int64) throws -> [CaptureRow] {
        try fetch(CaptureRow.self, "SELECT * FROM captures WHERE analysis_id = ? ORDER BY ordinal", [.integer(analysisID)])
    }

    /// Rows per table for one analysis, in one query.
    public func counts(analysisID: Int64) throws -> AnalysisCounts {
        let tables = [
            "captures", "flows", "http_exchanges", "websocket_messages", "mqtt_packets", "sessions",
            "timeline_events", "deviations",
        ]
        let sql = "SELECT " + tables.map { "(SELECT count(*) FROM \($0) WHERE analysis_id = ?) AS \($0)" }.joined(separator: ", ")
        guard let row = try read({ try $0.rows(sql, Array(repeating: .integer(analysisID), count: tables.count)) }).first else {
            return AnalysisCounts()
        }
        func n(_ table: String) -> Int { if case .integer(let v) = row[table] { Int(v) } else { 0 } }
        return AnalysisCounts(
            captures: n("captures"), flows: n("flows"), http: n("http_exchanges"), websocket: n("websocket_messages"),
            mqtt: n("mqtt_packets"), sessions: n("sessions"), timeline: n("timeline_events"), deviations: n("deviations"))
    }

    // MARK: - Flows and messages

    /// An analysis's connections, by connection number.
    public func flows(analysisID: Int64) throws -> [FlowRow] {
        try fetch(FlowRow.self, "SELECT * FROM flows WHERE analysis_id = ? ORDER BY connection_number, id", [.integer(analysisID)])
    }

    /// An analysis's HTTP exchanges, by connection then sequence.
    public func httpExchanges(analysisID: Int64) throws -> [HTTPExchangeRow] {
        try fetch(
            HTTPExchangeRow.self, "SELECT * FROM http_exchanges WHERE analysis_id = ? ORDER BY flow_id, sequence, id",
            [.integer(analysisID)])
    }

    /// An analysis's WebSocket messages, by time.
    public func webSocketMessages(analysisID: Int64) throws -> [WebSocketMessageRow] {
        try fetch(
            WebSocketMessageRow.self, "SELECT * FROM websocket_messages WHERE analysis_id = ? ORDER BY time, id",
            [.integer(analysisID)])
    }

    /// An analysis's MQTT packets, by time; only those on `topic` when given. Passwords are as captured: mask them
    /// (``MQTTPacketRow/maskedPassword``) before showing.
    public func mqttPackets(analysisID: Int64, topic: String? = nil) throws -> [MQTTPacketRow] {
        if let topic {
            return try fetch(
                MQTTPacketRow.self, "SELECT * FROM mqtt_packets WHERE topic = ? AND analysis_id = ? ORDER BY time, id",
                [.text(topic), .integer(analysisID)])
        }
        return try fetch(MQTTPacketRow.self, "SELECT * FROM mqtt_packets WHERE analysis_id = ? ORDER BY time, id", [.integer(analysisID)])
    }

    // MARK: - Sessions

    /// Sessions by start time (then id), of one analysis or of all. A session recorded at several capture points is
    /// listed once: its parts (``SessionRow/partOf``) are not listed on their own, and its start and end span them.
    public func sessions(analysisID: Int64? = nil) throws -> [SessionRow] {
        let rows =
            if let analysisID {
                try fetch(
                    SessionRow.self, "SELECT * FROM sessions WHERE analysis_id = ? AND part_of IS NULL ORDER BY start_time, id",
                    [.integer(analysisID)])
            } else {
                try fetch(SessionRow.self, "SELECT * FROM sessions WHERE part_of IS NULL ORDER BY start_time, id")
            }
        return try spanningParts(rows)
    }

    /// One session, by id (the primary key: `timeline ID` does not read the other sessions); a part of another
    /// session is found too (``SessionRow/partOf`` says whose).
    public func session(id: Int64) throws -> SessionRow? {
        let row = try fetchOne(SessionRow.self, "SELECT * FROM sessions WHERE id = ?", [.integer(id)])
        return try row.map { try spanningParts([$0])[0] }
    }

    /// The sessions with these ids, each spanning its parts as ``session(id:)``'s does, in one query and one for their
    /// parts (not one pair per session: `deviations` on 10,000 sessions spent 88 % of a second there).
    public func sessions(ids: [Int64]) throws -> [SessionRow] {
        guard !ids.isEmpty else { return [] }
        return try spanningParts(fetch(SessionRow.self, "SELECT * FROM sessions WHERE id IN (\(Self.idList(ids))) ORDER BY start_time, id", []))
    }

    /// The parts of each session that has some (recorded at other capture points), by start.
    public func parts(of sessionIDs: [Int64]) throws -> [Int64: [SessionRow]] {
        guard !sessionIDs.isEmpty else { return [:] }
        let parts = try fetch(SessionRow.self, "SELECT * FROM sessions WHERE part_of IN (\(Self.idList(sessionIDs))) ORDER BY start_time, id")
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
        let events = try fetch(
            TimelineEventRow.self,
            """
            SELECT * FROM timeline_events WHERE session_id IN (\(Self.idList(Array(owner.keys))))
            ORDER BY session_id, ordinal, id
            """)
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
        let rows = try fetch(DeviationRow.self, "SELECT * FROM deviations WHERE session_id IN (\(Self.idList(ids))) ORDER BY time NULLS FIRST, id")
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
        try fetch(DeviationRow.self, "SELECT * FROM deviations WHERE analysis_id = ? ORDER BY time NULLS FIRST, id", [.integer(analysisID)])
    }
}

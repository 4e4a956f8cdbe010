import Foundation

/// Which sessions a listing shows (`pilottrace serve`'s sessions page and `/api/sessions`). Empty fields do not filter.
public struct SessionFilter: Sendable, Hashable {
    /// Only sessions in this state: `online`, `offline`, `failed` or `incomplete`.
    public var state: String?
    /// Only sessions with a finding at or above this severity: `error`, `warning` or `info`.
    public var minSeverity: String?
    /// Only sessions with a finding of this rule.
    public var rule: String?
    /// Only sessions recorded at this capture point (`analyses.site`).
    public var site: String?
    /// Only sessions that started at or after this time (seconds since the Unix epoch).
    public var from: Double?
    /// Only sessions that started before this time.
    public var to: Double?
    /// Only sessions whose gateway serial, aircraft serials, MQTT client id, MQTT user or client address contain this
    /// text (case-insensitive for ASCII).
    public var search: String?

    public init(
        state: String? = nil, minSeverity: String? = nil, rule: String? = nil, site: String? = nil, from: Double? = nil, to: Double? = nil,
        search: String? = nil
    ) {
        self.state = state
        self.minSeverity = minSeverity
        self.rule = rule
        self.site = site
        self.from = from
        self.to = to
        self.search = search
    }

    /// The severities at or above ``minSeverity``.
    static func severities(atOrAbove minimum: String) -> [String] {
        switch minimum {
        case "error": ["error"]
        case "warning": ["error", "warning"]
        default: ["error", "warning", "info"]
        }
    }

    /// Whether session `s` has a finding `d` matching `condition`, or one of its parts has (a stitched session's findings
    /// are its parts' too): `condition`'s arguments are needed twice. The parts are found through `sessions_by_part_of`.
    static func hasFinding(_ condition: String) -> String {
        """
        (EXISTS (SELECT 1 FROM deviations d WHERE d.session_id = s.id AND \(condition))
          OR EXISTS (SELECT 1 FROM sessions p JOIN deviations d ON d.session_id = p.id WHERE p.part_of = s.id AND \(condition)))
        """
    }

    /// The WHERE clause over `sessions s` (parts of stitched sessions are never listed on their own), with its arguments.
    func clause() -> (sql: String, arguments: [SQLValue]) {
        var conditions = ["s.part_of IS NULL"]
        var arguments: [SQLValue] = []
        if let state {
            conditions.append("s.state = ?")
            arguments.append(.text(state))
        }
        if let site {
            conditions.append("s.analysis_id IN (SELECT id FROM analyses WHERE site = ?)")
            arguments.append(.text(site))
        }
        if let from {
            conditions.append("s.start_time >= ?")
            arguments.append(.real(from))
        }
        if let to {
            conditions.append("s.start_time < ?")
            arguments.append(.real(to))
        }
        if let minSeverity {
            let severities = Self.severities(atOrAbove: minSeverity)
            conditions.append(Self.hasFinding("d.severity IN (\(severities.map { _ in "?" }.joined(separator: ", ")))"))
            arguments += Array(repeating: severities.map { SQLValue.text($0) }, count: 2).joined()
        }
        if let rule {
            conditions.append(Self.hasFinding("d.rule_id = ?"))
            arguments += [.text(rule), .text(rule)]
        }
        if let search, !search.isEmpty {
            // LIKE with the pattern's own wildcards escaped; lower() on both sides, as PostgreSQL's LIKE is case-sensitive.
            let escaped = search.lowercased().replacingOccurrences(of: "!", with: "!!").replacingOccurrences(of: "%", with: "!%")
                .replacingOccurrences(of: "_", with: "!_")
            let columns = ["s.gateway_sn", "s.aircraft_sns_json", "s.mqtt_client_id", "s.mqtt_username", "s.client"]
            conditions.append("(" + columns.map { "lower(coalesce(\($0), '')) LIKE ? ESCAPE '!'" }.joined(separator: " OR ") + ")")
            arguments += columns.map { _ in .text("%\(escaped)%") }
        }
        return (conditions.joined(separator: " AND "), arguments)
    }
}

/// One page of a session listing.
public struct SessionPage: Sendable {
    /// The sessions of the page: failing first (state `failed` or an error finding), then the latest first.
    public var rows: [SessionRow]
    /// How many sessions the filter matches in all.
    public var total: Int
}

/// How many findings of each severity a session has (its parts' included).
public struct FindingCounts: Sendable, Hashable {
    public var error = 0
    public var warning = 0
    public var info = 0

    public init(error: Int = 0, warning: Int = 0, info: Int = 0) {
        self.error = error
        self.warning = warning
        self.info = info
    }
}

/// The findings of one rule at one severity, over the whole record.
public struct RuleFindings: Sendable, Hashable {
    public var rule: String
    public var severity: String
    /// How many findings.
    public var findings: Int
    /// The sessions they belong to (a part's findings count for its session), by id; findings about a connection or
    /// the run alone belong to none.
    public var sessions: [Int64]

    public init(rule: String, severity: String, findings: Int, sessions: [Int64]) {
        self.rule = rule
        self.severity = severity
        self.findings = findings
        self.sessions = sessions
    }
}

/// What changes about a session as a run goes on: the live console compares these every second.
public struct SessionPulse: Sendable, Hashable {
    /// The session's own id.
    public var id: Int64
    /// The listed session it shows in: its own id, or for a part the session it belongs to.
    public var sessionID: Int64
    public var analysisID: Int64
    public var state: String
    public var endTime: Double?
    public var findings: Int
}

/// The record's totals, for `/metrics`.
public struct RecordTotals: Sendable {
    /// Sessions by state (parts of stitched sessions not counted).
    public var sessionsByState: [String: Int] = [:]
    /// Logins by result: `ok` (a `login` step that succeeded) or `failed` (`login-failed`, or a `login` that failed).
    public var loginsByResult: [String: Int] = [:]
    /// Findings by rule and severity.
    public var findings: [(rule: String, severity: String, count: Int)] = []
    /// Every `status-reply` latency, in seconds.
    public var statusReplyLatencies: [Double] = []
    /// Analyses by source and state.
    public var analyses: [(source: String, state: String, count: Int)] = []
    /// Frames read by the analyses that finished (`analyses.frames`).
    public var frames: Int = 0
    /// The running live analyses (`capture`, `proxy`) that recorded their progress: id, site, source and
    /// `counters_json` (frames so far and, for a capture, the kernel's counts).
    public var live: [(analysisID: Int64, site: String, source: String, countersJSON: String)] = []

    public init() {}
}

extension PilotTraceDatabase {
    // MARK: - Listing sessions

    /// One page of the sessions `filter` matches: failing first (state `failed` or an error finding), then by start,
    /// latest first; a stitched session spans its parts (as ``sessions(analysisID:)``).
    ///
    /// - Parameters:
    ///   - filter: Which sessions.
    ///   - limit: At most this many rows.
    ///   - offset: Rows of the ordering to skip.
    ///   - ids: Only these sessions (the live console asks for the ones that changed); `nil` for all.
    public func sessionPage(_ filter: SessionFilter, limit: Int, offset: Int = 0, ids: [Int64]? = nil) throws -> SessionPage {
        var (clause, arguments) = filter.clause()
        if let ids {
            guard !ids.isEmpty else { return SessionPage(rows: [], total: 0) }
            clause += " AND s.id IN (\(Self.idList(ids)))"
        }
        let rows = try fetch(
            SessionRow.self,
            """
            SELECT s.* FROM sessions s WHERE \(clause)
            ORDER BY CASE WHEN s.state = 'failed' OR \(SessionFilter.hasFinding("d.severity = 'error'")) THEN 0 ELSE 1 END,
                s.start_time DESC, s.id DESC
            LIMIT ? OFFSET ?
            """, arguments + [.integer(Int64(max(0, limit))), .integer(Int64(max(0, offset)))])
        let total = try read { try $0.integer("SELECT count(*) FROM sessions s WHERE \(clause)", arguments) } ?? 0
        return SessionPage(rows: try spanningParts(rows), total: Int(total))
    }

    /// Sessions by state (parts of stitched sessions not counted), in one query.
    public func sessionCountsByState() throws -> [String: Int] {
        let rows = try read { try $0.rows("SELECT state, count(*) AS n FROM sessions WHERE part_of IS NULL GROUP BY state", []) }
        var counts: [String: Int] = [:]
        for row in rows { if case .text(let state) = row["state"], case .integer(let n) = row["n"] { counts[state] = Int(n) } }
        return counts
    }

    /// Findings of each session by severity, its parts' included.
    public func findingCounts(sessionIDs: [Int64]) throws -> [Int64: FindingCounts] {
        guard !sessionIDs.isEmpty else { return [:] }
        let owner = try owners(sessionIDs)
        let rows = try read {
            try $0.rows(
                "SELECT session_id, severity, count(*) AS n FROM deviations WHERE session_id IN (\(Self.idList(Array(owner.keys)))) GROUP BY session_id, severity",
                [])
        }
        var counts: [Int64: FindingCounts] = [:]
        for row in rows {
            guard case .integer(let id) = row["session_id"], let main = owner[id], case .text(let severity) = row["severity"], case .integer(let n) = row["n"]
            else { continue }
            switch severity {
            case "error": counts[main, default: FindingCounts()].error += Int(n)
            case "warning": counts[main, default: FindingCounts()].warning += Int(n)
            default: counts[main, default: FindingCounts()].info += Int(n)
            }
        }
        return counts
    }

    /// The capture points that recorded analyses (`analyses.site`), sorted.
    public func sites() throws -> [String] {
        try read { try $0.rows("SELECT DISTINCT site FROM analyses ORDER BY site", []) }.compactMap {
            if case .text(let site) = $0["site"] { site } else { nil }
        }
    }

    /// The findings grouped by rule and severity, errors first, then by rule id; each group with its sessions.
    public func findingsByRule() throws -> [RuleFindings] {
        let (groups, members) = try read { statements in
            (
                try statements.rows("SELECT rule_id, severity, count(*) AS n FROM deviations GROUP BY rule_id, severity", []),
                try statements.rows(
                    """
                    SELECT DISTINCT d.rule_id, d.severity, coalesce(s.part_of, s.id) AS session
                    FROM deviations d JOIN sessions s ON s.id = d.session_id
                    """, [])
            )
        }
        var sessions: [String: [Int64]] = [:]
        for row in members {
            guard case .text(let rule) = row["rule_id"], case .text(let severity) = row["severity"], case .integer(let id) = row["session"] else { continue }
            sessions["\(severity) \(rule)", default: []].append(id)
        }
        let rank = ["error": 0, "warning": 1, "info": 2]
        return groups.compactMap { row -> RuleFindings? in
            guard case .text(let rule) = row["rule_id"], case .text(let severity) = row["severity"], case .integer(let n) = row["n"] else { return nil }
            return RuleFindings(
                rule: rule, severity: severity, findings: Int(n), sessions: Array(Set(sessions["\(severity) \(rule)"] ?? [])).sorted())
        }.sorted { (rank[$0.severity] ?? 3, $0.rule) < (rank[$1.severity] ?? 3, $1.rule) }
    }

    /// One page of the findings at or above `minSeverity`, in the order `pilottrace deviations` lists them (by
    /// analysis, then time, those without a time first, then id), and how many there are in all.
    public func deviationPage(minSeverity: String = "info", limit: Int, offset: Int = 0) throws -> (rows: [DeviationRow], total: Int) {
        let severities = SessionFilter.severities(atOrAbove: minSeverity)
        let clause = "severity IN (\(severities.map { _ in "?" }.joined(separator: ", ")))"
        let arguments = severities.map { SQLValue.text($0) }
        let rows = try fetch(
            DeviationRow.self, "SELECT * FROM deviations WHERE \(clause) ORDER BY analysis_id, time NULLS FIRST, id LIMIT ? OFFSET ?",
            arguments + [.integer(Int64(max(0, limit))), .integer(Int64(max(0, offset)))])
        let total = try read { try $0.integer("SELECT count(*) FROM deviations WHERE \(clause)", arguments) } ?? 0
        return (rows, Int(total))
    }

    // MARK: - Watching the record

    /// Each analysis's id and state (`running`, `complete`, `interrupted`).
    public func analysisStates() throws -> [Int64: String] {
        var states: [Int64: String] = [:]
        for row in try read({ try $0.rows("SELECT id, state FROM analyses", []) }) {
            if case .integer(let id) = row["id"], case .text(let state) = row["state"] { states[id] = state }
        }
        return states
    }

    /// What may change about the sessions of these analyses (listed ones and parts alike), in one query.
    public func sessionPulses(analysisIDs: [Int64]) throws -> [SessionPulse] {
        guard !analysisIDs.isEmpty else { return [] }
        let rows = try read {
            try $0.rows(
                """
                SELECT s.id, s.analysis_id, s.state, s.end_time, coalesce(s.part_of, s.id) AS owner,
                    (SELECT count(*) FROM deviations d WHERE d.session_id = s.id) AS findings
                FROM sessions s WHERE s.analysis_id IN (\(Self.idList(analysisIDs)))
                """, [])
        }
        return rows.compactMap { row in
            guard case .integer(let owner) = row["owner"], case .integer(let analysis) = row["analysis_id"], case .text(let state) = row["state"],
                case .integer(let findings) = row["findings"], case .integer(let id) = row["id"]
            else { return nil }
            var endTime: Double?
            if case .real(let t) = row["end_time"] { endTime = t }
            return SessionPulse(id: id, sessionID: owner, analysisID: analysis, state: state, endTime: endTime, findings: Int(findings))
        }
    }

    // MARK: - Totals

    /// The whole record's totals, in one read (a consistent picture on SQLite).
    public func recordTotals() throws -> RecordTotals {
        try read { statements in
            var totals = RecordTotals()
            for row in try statements.rows("SELECT state, count(*) AS n FROM sessions WHERE part_of IS NULL GROUP BY state", []) {
                if case .text(let state) = row["state"], case .integer(let n) = row["n"] { totals.sessionsByState[state] = Int(n) }
            }
            for row in try statements.rows(
                """
                SELECT CASE WHEN step = 'login' AND ok = 1 THEN 'ok' ELSE 'failed' END AS result, count(*) AS n
                FROM timeline_events WHERE step = 'login' OR step = 'login-failed' GROUP BY 1
                """, [])
            {
                if case .text(let result) = row["result"], case .integer(let n) = row["n"] { totals.loginsByResult[result] = Int(n) }
            }
            for row in try statements.rows("SELECT rule_id, severity, count(*) AS n FROM deviations GROUP BY rule_id, severity ORDER BY rule_id, severity", [])
            {
                if case .text(let rule) = row["rule_id"], case .text(let severity) = row["severity"], case .integer(let n) = row["n"] {
                    totals.findings.append((rule, severity, Int(n)))
                }
            }
            for row in try statements.rows("SELECT latency FROM timeline_events WHERE step = 'status-reply' AND latency IS NOT NULL", []) {
                if case .real(let latency) = row["latency"] { totals.statusReplyLatencies.append(latency) }
            }
            for row in try statements.rows(
                "SELECT source, state, count(*) AS n, coalesce(sum(frames), 0) AS frames FROM analyses GROUP BY source, state ORDER BY source, state", [])
            {
                if case .text(let source) = row["source"], case .text(let state) = row["state"], case .integer(let n) = row["n"] {
                    totals.analyses.append((source, state, Int(n)))
                }
                switch row["frames"] {  // PostgreSQL's sum of BIGINT is NUMERIC
                case .integer(let frames): totals.frames += Int(frames)
                case .real(let frames): totals.frames += Int(frames)
                default: break
                }
            }
            for row in try statements.rows(
                "SELECT id, site, source, counters_json FROM analyses WHERE state = 'running' AND counters_json IS NOT NULL ORDER BY id", [])
            {
                if case .integer(let id) = row["id"], case .text(let site) = row["site"], case .text(let source) = row["source"],
                    case .text(let counters) = row["counters_json"]
                {
                    totals.live.append((id, site, source, counters))
                }
            }
            return totals
        }
    }

    // MARK: - One session's messages

    /// Flows by id, and the cloud backend's MQTT connections of some analyses (`mqtt_role` `cloud`).
    public func flows(ids: [Int64], cloudOf analysisIDs: [Int64]) throws -> [FlowRow] {
        var conditions: [String] = []
        if !ids.isEmpty { conditions.append("id IN (\(Self.idList(ids)))") }
        if !analysisIDs.isEmpty { conditions.append("(analysis_id IN (\(Self.idList(analysisIDs))) AND mqtt_role = 'cloud')") }
        guard !conditions.isEmpty else { return [] }
        return try fetch(FlowRow.self, "SELECT * FROM flows WHERE \(conditions.joined(separator: " OR ")) ORDER BY connection_number, id")
    }

    /// The HTTP exchanges of some connections, by connection then sequence.
    public func httpExchanges(flowIDs: [Int64]) throws -> [HTTPExchangeRow] {
        guard !flowIDs.isEmpty else { return [] }
        return try fetch(HTTPExchangeRow.self, "SELECT * FROM http_exchanges WHERE flow_id IN (\(Self.idList(flowIDs))) ORDER BY flow_id, sequence, id")
    }

    /// The MQTT packets of some connections, and those of other connections between two times, by time. Passwords
    /// are as captured: mask them before showing.
    public func mqttPackets(flowIDs: [Int64], andFlows others: [Int64], from: Double, to: Double) throws -> [MQTTPacketRow] {
        var conditions: [String] = []
        if !flowIDs.isEmpty { conditions.append("flow_id IN (\(Self.idList(flowIDs)))") }
        if !others.isEmpty { conditions.append("(flow_id IN (\(Self.idList(others))) AND time >= ? AND time <= ?)") }
        guard !conditions.isEmpty else { return [] }
        return try fetch(
            MQTTPacketRow.self, "SELECT * FROM mqtt_packets WHERE \(conditions.joined(separator: " OR ")) ORDER BY time, id",
            others.isEmpty ? [] : [.real(from), .real(to)])
    }
}

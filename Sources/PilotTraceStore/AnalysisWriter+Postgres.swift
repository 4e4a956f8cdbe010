import Foundation

/// A batch written into PostgreSQL: the same rows, in the same foreign-key order and one transaction, as on SQLite,
/// sent in bulk (messages, timelines and findings with `COPY … FROM STDIN`, flows as multi-row upserts) instead of one
/// statement per row: a round trip per row would be most of the time on a server.
extension AnalysisWriter.Batch {
    func write(_ link: PostgresLink, analysisID: Int64, known: [Int: Int64]) throws -> Outcome {
        var outcome = Outcome(rows: count)
        let tx = PostgresStatements(link: link)
        for row in captures.values.sorted(by: { $0.ordinal < $1.ordinal }) {
            try tx.execute(RowInserts.upsertCaptureSQL, RowInserts.captureArguments(row))
        }
        try Self.upsert(link, table: "flows", flows.values.sorted { $0.id < $1.id })
        try Self.copy(link, table: "http_exchanges", http)
        try Self.copy(link, table: "websocket_messages", webSocket)
        try Self.copy(link, table: "mqtt_packets", mqtt)
        try Self.closeWindows(link, windowCloses)

        // Sessions: new ones in one INSERT … RETURNING id (ids in row order), stored ones updated in place.
        func id(_ key: Int) -> Int64? { outcome.assigned[key] ?? known[key] }
        let fresh = sessions.filter { id($0.key) == nil }
        let ids = try link.insert(
            table: "sessions", columns: RowInserts.sessionColumns, rows: fresh.map { RowInserts.sessionArguments($0.row) },
            returning: "id")
        for (entry, sessionID) in zip(fresh, ids) { outcome.assigned[entry.key] = sessionID }
        let inserted = Set(fresh.map(\.key))
        var events: [TimelineEventRow] = [], findings: [DeviationRow] = []
        for entry in sessions {
            guard let sessionID = id(entry.key) else { continue }
            if !inserted.contains(entry.key) {
                try RowInserts.updateSession(entry.row, id: sessionID, tx)
                try tx.execute("DELETE FROM timeline_events WHERE session_id = ?", [.integer(sessionID)])
                if entry.findings != nil { try tx.execute("DELETE FROM deviations WHERE session_id = ?", [.integer(sessionID)]) }
            }
            for var event in entry.timeline {
                event.sessionID = sessionID
                events.append(event)
            }
            for var finding in entry.findings ?? [] {
                finding.sessionID = sessionID
                findings.append(finding)
            }
        }
        try Self.copy(link, table: "timeline_events", events, generatedID: true)
        try Self.copy(link, table: "deviations", findings, generatedID: true)
        if let keep = keepSessions {
            for (key, sessionID) in known.merging(outcome.assigned, uniquingKeysWith: { $1 }) where !keep.contains(key) {
                try tx.execute("DELETE FROM sessions WHERE id = ?", [.integer(sessionID)])
                outcome.removed.append(key)
            }
        }
        if let replacement = self.findings {
            try tx.execute("DELETE FROM deviations WHERE analysis_id = ?", [.integer(analysisID)])
            try Self.copy(
                link, table: "deviations",
                replacement.map { key, row in
                    var row = row
                    row.sessionID = key.flatMap(id)
                    return row
                }, generatedID: true)
        }
        return outcome
    }

    /// Rows as their columns' values, every column present (NULL or not); `id` left out when the identity assigns it.
    static func columns<T: Encodable>(_ rows: [T], generatedID: Bool) throws -> (names: [String], values: [[SQLValue]]) {
        let encoder = StoreRowEncoder()
        var names: [String] = []
        var values: [[SQLValue]] = []
        values.reserveCapacity(rows.count)
        for row in rows {
            var encoded = try encoder.encode(row)
            if generatedID { encoded.removeAll { $0.column == "id" } }
            if names.isEmpty { names = encoded.map(\.column) }
            values.append(encoded.map(\.value))
        }
        return (names, values)
    }

    /// Appends rows with `COPY`.
    static func copy<T: Encodable>(_ link: PostgresLink, table: String, _ rows: [T], generatedID: Bool = false) throws {
        guard !rows.isEmpty else { return }
        let (names, values) = try columns(rows, generatedID: generatedID)
        try link.insert(table: table, columns: names, rows: values)
    }

    /// Completes telemetry windows' rows written by earlier batches: multi-row `UPDATE … FROM (VALUES …)` statements
    /// (the values typed: a NULL parameter in a VALUES list has no column to take its type from).
    static func closeWindows(_ link: PostgresLink, _ closes: [MQTTPacketRow.WindowClose]) throws {
        guard !closes.isEmpty else { return }
        // Each tuple is a window's `arguments`, in their order (the id last).
        let tuple = "(?::bigint, ?::double precision, ?::bigint, ?::bigint, ?::bigint, ?::text, ?::text, ?::bigint)"
        var start = 0
        while start < closes.count {
            let chunk = closes[start..<min(closes.count, start + 5_000)]
            let sql = """
                UPDATE mqtt_packets AS m SET packet_count = v.packet_count, last_time = v.last_time, last_frame = v.last_frame,
                  total_payload_length = v.total_payload_length, acknowledged = v.acknowledged, frames = v.frames,
                  summary = m.summary || v.suffix
                FROM (VALUES \(Array(repeating: tuple, count: chunk.count).joined(separator: ", ")))
                  AS v(packet_count, last_time, last_frame, total_payload_length, acknowledged, frames, suffix, id)
                WHERE m.id = v.id
                """
            try link.execute(sql, chunk.flatMap { $0.arguments })
            start += chunk.count
        }
    }

    /// Inserts or updates by id, as multi-row `INSERT … ON CONFLICT (id) DO UPDATE` statements (a row given twice in
    /// one statement would be refused: the batch holds each id once).
    static func upsert<T: Encodable>(_ link: PostgresLink, table: String, _ rows: [T]) throws {
        guard !rows.isEmpty else { return }
        let (names, values) = try columns(rows, generatedID: false)
        let perStatement = max(1, 60_000 / names.count)
        let updates = names.filter { $0 != "id" }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        let tuple = "(" + Array(repeating: "?", count: names.count).joined(separator: ", ") + ")"
        var start = 0
        while start < values.count {
            let chunk = values[start..<min(values.count, start + perStatement)]
            let sql =
                "INSERT INTO \(table) (\(names.joined(separator: ", "))) VALUES "
                + Array(repeating: tuple, count: chunk.count).joined(separator: ", ")
                + " ON CONFLICT (id) DO UPDATE SET \(updates)"
            try link.execute(sql, Array(chunk.joined()))
            start += chunk.count
        }
    }
}

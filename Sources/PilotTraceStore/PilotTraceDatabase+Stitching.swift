import Foundation
import GRDB

/// Several capture points, one record: a login whose HTTP side was recorded at one capture point (the web backend)
/// and whose MQTT side at another (the broker) is one session.
///
/// Each capture point's analysis makes what it can of its side: the HTTP side alone is a session without a gateway
/// (page, login, MQTT credentials), the MQTT side a device session without a login. ``stitchSessions(analysisID:)``
/// joins them in the store by the rules the session tracker uses within one capture (docs/sessions.md, "Capture
/// points"): the HTTP side becomes a *part* of the device session (`sessions.part_of`), whose timeline, findings and
/// start then include it.
extension PilotTraceDatabase {
    /// A pair of sessions the rules consider.
    struct StitchCandidate {
        var part: Int64
        var main: Int64
        /// The CONNECT presented the MQTT password the HTTP side was issued.
        var credentials: Bool
        /// The same client address on both sides.
        var sameAddress: Bool
        /// Seconds from the HTTP side's last step to the device session's start.
        var gap: Double
    }

    /// Joins the sessions `analysisID` stored with the sessions other analyses stored (another capture point's), and
    /// returns the joins made: (part, the session it belongs to). Safe to run again and from several writers.
    ///
    /// A *part* is a session with MQTT credentials handed out but no device connection (no gateway, no client id);
    /// it joins a device session of another analysis that has no login of its own and starts between a second before
    /// the part and 120 s after its last step, chosen by: the CONNECT presented the password the part was issued
    /// (`credential_digest`), then the same client address, then the nearest in time. A candidate that matches
    /// neither by credentials nor by address is not joined.
    @discardableResult
    public func stitchSessions(analysisID: Int64) throws -> [(part: Int64, main: Int64)] {
        do {
            return try write { tx in
                // SQLite serialises writers; on PostgreSQL two writers joining at once (READ COMMITTED) could both take
                // one session, so joining holds a lock of its own for the transaction.
                if case .postgres = engine { try tx.execute("SELECT pg_advisory_xact_lock(?)", [.integer(Self.stitchLockKey)]) }
                let rows = try tx.rows(Self.stitchCandidatesSQL, [.integer(analysisID), .integer(analysisID)])
                let candidates = rows.compactMap { row -> StitchCandidate? in
                    guard case .integer(let part) = row["part"], case .integer(let main) = row["main"] else { return nil }
                    func text(_ key: String) -> String? { if case .text(let t) = row[key] { t } else { nil } }
                    let partHost = text("part_client").map(Self.host), mainHost = text("main_client").map(Self.host)
                    let gap: Double =
                        switch row["gap"] {
                        case .real(let v): v;
                        case .integer(let v): Double(v);
                        default: 0
                        }
                    let credentials = if case .integer(let v) = row["credentials"] { v != 0 } else { false }
                    return StitchCandidate(
                        part: part, main: main, credentials: credentials,
                        sameAddress: partHost != nil && partHost == mainHost, gap: gap)
                }
                let joins = Self.choose(candidates)
                for (part, main) in joins {
                    try tx.execute("UPDATE sessions SET part_of = ? WHERE id = ?", [.integer(main), .integer(part)])
                }
                return joins
            }
        } catch {
            throw PilotTraceStoreError(
                kind: .writeFailed, path: path,
                message: "cannot join the sessions of analysis \(analysisID) with other capture points': \(Self.reason(error))")
        }
    }

    /// The PostgreSQL advisory lock joining holds: "PTRS".
    static let stitchLockKey: Int64 = 0x5054_5253

    /// Pairs that may be one session, for analysis `?` on either side (the same SQL on both engines).
    static let stitchCandidatesSQL = """
        SELECT hs.id AS part, cs.id AS main, hs.client AS part_client, cs.client AS main_client,
          cs.start_time - coalesce(hs.end_time, hs.start_time) AS gap,
          CASE WHEN EXISTS (
            SELECT 1 FROM timeline_events h JOIN timeline_events c ON c.credential_digest = h.credential_digest
            WHERE h.session_id = hs.id AND h.step = 'mqtt-credentials' AND c.session_id = cs.id AND c.step = 'mqtt-connect'
          ) THEN 1 ELSE 0 END AS credentials
        FROM sessions hs JOIN sessions cs ON cs.analysis_id <> hs.analysis_id
        WHERE (hs.analysis_id = ? OR cs.analysis_id = ?)
          AND hs.part_of IS NULL AND hs.gateway_sn IS NULL AND hs.mqtt_client_id IS NULL
          AND EXISTS (SELECT 1 FROM timeline_events e WHERE e.session_id = hs.id AND e.step = 'mqtt-credentials')
          AND cs.part_of IS NULL AND cs.mqtt_client_id IS NOT NULL
          AND cs.start_time >= hs.start_time - 1 AND cs.start_time <= coalesce(hs.end_time, hs.start_time) + 120
          AND NOT EXISTS (SELECT 1 FROM sessions p WHERE p.part_of = cs.id)
          AND NOT EXISTS (SELECT 1 FROM timeline_events e WHERE e.session_id = cs.id
                          AND (e.step = 'mqtt-credentials' OR e.step = 'login'))
        ORDER BY hs.id, cs.id
        """

    /// Best first (credentials, then address, then nearest in time), each session in one join at most.
    static func choose(_ candidates: [StitchCandidate]) -> [(part: Int64, main: Int64)] {
        let ranked = candidates.filter { $0.credentials || $0.sameAddress }.sorted {
            ($0.credentials ? 0 : 1, $0.sameAddress ? 0 : 1, abs($0.gap), $0.part, $0.main)
                < ($1.credentials ? 0 : 1, $1.sameAddress ? 0 : 1, abs($1.gap), $1.part, $1.main)
        }
        var parts = Set<Int64>(), mains = Set<Int64>()
        var joins: [(part: Int64, main: Int64)] = []
        for c in ranked where !parts.contains(c.part) && !mains.contains(c.main) {
            parts.insert(c.part)
            mains.insert(c.main)
            joins.append((c.part, c.main))
        }
        return joins.sorted { $0.part < $1.part }
    }

    /// The host of a stored client address: `10.0.0.5:50123` → `10.0.0.5`, `[::1]:5` → `::1`, `10.0.0.5` as is.
    static func host(_ address: String) -> String {
        if address.hasPrefix("["), let end = address.firstIndex(of: "]") {
            return String(address[address.index(after: address.startIndex)..<end])
        }
        let colons = address.filter { $0 == ":" }.count
        if colons == 1, let colon = address.firstIndex(of: ":") { return String(address[..<colon]) }
        return address
    }
}

import Foundation
import GRDB
import GRDBSQLite

/// The writer's INSERT statements for the tables that get most rows (MQTT packets, HTTP exchanges, flows, timeline
/// events, deviations), with values bound straight through the SQLite C API.
///
/// GRDB's `Codable` records and `StatementArguments` allocate an array of boxed values (and, for upserts, build the
/// SQL) for every row; on a capture with hundreds of thousands of MQTT packets that was most of the writer's time.
/// Here each statement is prepared once per transaction and each value is bound in place (texts and blobs are copied
/// by SQLite, `SQLITE_TRANSIENT`), so a row costs no Swift allocation beyond the row itself.
struct RowInserts {
    let db: Database
    let mqtt: Statement
    let http: Statement
    let flow: Statement
    let timeline: Statement
    let deviation: Statement

    init(_ db: Database) throws {
        self.db = db
        mqtt = try db.cachedStatement(
            sql: """
                INSERT INTO mqtt_packets (id, analysis_id, flow_id, direction, time, over_websocket, version, version_assumed, type,
                  packet_id, qos, retain, dup, topic, payload, payload_length, payload_json, client_id, username, password,
                  keep_alive, return_code, summary, capture_ordinal, first_frame, last_frame, packet_count, last_time,
                  total_payload_length, acknowledged, frames)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        http = try db.cachedStatement(
            sql: """
                INSERT INTO http_exchanges (id, analysis_id, flow_id, sequence, method, target, path, query, request_headers_json,
                  request_body, request_body_length, request_json, request_time, status, reason, response_headers_json,
                  response_body, response_body_length, response_json, response_time, incomplete, capture_ordinal, request_first_frame,
                  request_last_frame, response_first_frame, response_last_frame)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let flowColumns = [
            "analysis_id", "connection_number", "client", "server", "role_evidence", "protocol", "classification_evidence",
            "classification_note", "tls_server_name", "mqtt_role", "first_time", "last_time", "close_reason",
            "handshake_complete", "up_packets", "up_bytes", "up_payload_bytes", "up_gaps", "up_gap_bytes",
            "up_retransmissions", "down_packets", "down_bytes", "down_payload_bytes", "down_gaps", "down_gap_bytes",
            "down_retransmissions", "community_id", "tls_version", "tls_cipher_suite", "tls_alpn", "tls_decrypted",
            "tls_failure",
        ]
        // An upsert that updates in place (never a delete, which would cascade to the flow's messages).
        flow = try db.cachedStatement(
            sql: """
                INSERT INTO flows (id, \(flowColumns.joined(separator: ", ")))
                VALUES (?\(String(repeating: ", ?", count: flowColumns.count)))
                ON CONFLICT(id) DO UPDATE SET \(flowColumns.map { "\($0) = excluded.\($0)" }.joined(separator: ", "))
                """)
        timeline = try db.cachedStatement(
            sql: """
                INSERT INTO timeline_events (analysis_id, session_id, ordinal, time, phase, step, ok, latency, flow_id, message_kind,
                  message_id, detail_json, capture_ordinal, first_frame, last_frame, credential_digest)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        deviation = try db.cachedStatement(
            sql: """
                INSERT INTO deviations (analysis_id, session_id, rule_id, severity, title, time, flow_id, message_kind, message_id,
                  evidence_json, capture_ordinal, first_frame, last_frame)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
    }

    func insert(_ r: MQTTPacketRow) throws {
        var b = Binder(mqtt.sqliteStatement)
        b.int(r.id); b.int(r.analysisID); b.int(r.flowID); b.text(r.direction); b.double(r.time); b.bool(r.overWebSocket)
        b.text(r.version); b.bool(r.versionAssumed); b.text(r.type); b.int(r.packetID); b.int(r.qos); b.bool(r.retain)
        b.bool(r.dup); b.text(r.topic); b.blob(r.payload); b.int(r.payloadLength); b.text(r.payloadJSON); b.text(r.clientID)
        b.text(r.username); b.blob(r.password); b.int(r.keepAlive); b.int(r.returnCode); b.text(r.summary)
        b.int(r.captureOrdinal); b.int(r.firstFrame); b.int(r.lastFrame); b.int(r.packetCount); b.double(r.lastTime)
        b.int(r.totalPayloadLength); b.int(r.acknowledged); b.text(r.frames)
        try step(mqtt)
    }

    func insert(_ r: HTTPExchangeRow) throws {
        var b = Binder(http.sqliteStatement)
        b.int(r.id); b.int(r.analysisID); b.int(r.flowID); b.int(r.sequence); b.text(r.method); b.text(r.target)
        b.text(r.path); b.text(r.query); b.text(r.requestHeaders.map(Self.json)); b.blob(r.requestBody)
        b.int(r.requestBodyLength); b.text(r.requestJSON); b.double(r.requestTime); b.int(r.status); b.text(r.reason)
        b.text(r.responseHeaders.map(Self.json)); b.blob(r.responseBody); b.int(r.responseBodyLength)
        b.text(r.responseJSON); b.double(r.responseTime); b.text(r.incomplete)
        b.int(r.captureOrdinal); b.int(r.requestFirstFrame); b.int(r.requestLastFrame); b.int(r.responseFirstFrame)
        b.int(r.responseLastFrame)
        try step(http)
    }

    func upsert(_ r: FlowRow) throws {
        var b = Binder(flow.sqliteStatement)
        b.int(r.id); b.int(r.analysisID); b.int(r.connectionNumber); b.text(r.client); b.text(r.server)
        b.text(r.roleEvidence); b.text(r.protocol); b.text(r.classificationEvidence); b.text(r.classificationNote)
        b.text(r.tlsServerName); b.text(r.mqttRole); b.double(r.firstTime); b.double(r.lastTime); b.text(r.closeReason)
        b.bool(r.handshakeComplete)
        for n in [
            r.upPackets, r.upBytes, r.upPayloadBytes, r.upGaps, r.upGapBytes, r.upRetransmissions, r.downPackets,
            r.downBytes, r.downPayloadBytes, r.downGaps, r.downGapBytes, r.downRetransmissions,
        ] { b.int(n) }
        b.text(r.communityID)
        b.text(r.tlsVersion); b.text(r.tlsCipherSuite); b.text(r.tlsALPN); b.bool(r.tlsDecrypted); b.text(r.tlsFailure)
        try step(flow)
    }

    func insert(_ r: TimelineEventRow) throws {
        var b = Binder(timeline.sqliteStatement)
        b.int(r.analysisID); b.int(r.sessionID); b.int(r.ordinal); b.double(r.time); b.text(r.phase); b.text(r.step)
        b.bool(r.ok); b.double(r.latency); b.int(r.flowID); b.text(r.messageKind); b.int(r.messageID); b.text(r.detailJSON)
        b.int(r.captureOrdinal); b.int(r.firstFrame); b.int(r.lastFrame); b.text(r.credentialDigest)
        try step(timeline)
    }

    func insert(_ r: DeviationRow) throws {
        var b = Binder(deviation.sqliteStatement)
        b.int(r.analysisID); b.int(r.sessionID); b.text(r.ruleID); b.text(r.severity); b.text(r.title); b.double(r.time)
        b.int(r.flowID); b.text(r.messageKind); b.int(r.messageID); b.text(r.evidenceJSON)
        b.int(r.captureOrdinal); b.int(r.firstFrame); b.int(r.lastFrame)
        try step(deviation)
    }

    // MARK: - Captures and sessions (few rows; the same SQL on both engines)

    /// A capture file by `(analysis_id, ordinal)`: inserted, or updated with what reading it found (an empty `sha256`
    /// keeps the stored digest). Arguments: ``captureArguments(_:)``.
    static let upsertCaptureSQL = """
        INSERT INTO captures (analysis_id, ordinal, path, sha256, format, compressed, link_types, records, first_time, last_time,
          warnings_json)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (analysis_id, ordinal) DO UPDATE SET path = excluded.path,
          sha256 = CASE WHEN excluded.sha256 = '' THEN captures.sha256 ELSE excluded.sha256 END, format = excluded.format,
          compressed = excluded.compressed, link_types = excluded.link_types, records = excluded.records,
          first_time = excluded.first_time, last_time = excluded.last_time, warnings_json = excluded.warnings_json
        """

    static func captureArguments(_ r: CaptureRow) -> [SQLValue] {
        [
            .integer(r.analysisID), SQLValue(r.ordinal), .text(r.path), .text(r.sha256), .text(r.format), SQLValue(r.compressed),
            .text(r.linkTypes), SQLValue(r.records), SQLValue(r.firstTime), SQLValue(r.lastTime), .text(jsonText(r.warnings)),
        ]
    }

    static let sessionColumns = [
        "analysis_id", "gateway_sn", "gateway_model", "gateway_model_name", "state", "start_time", "end_time", "client",
        "mqtt_client_id", "mqtt_username", "aircraft_sns_json", "summary_json", "replay_of",
    ]

    static func sessionArguments(_ r: SessionRow) -> [SQLValue] {
        [
            .integer(r.analysisID), SQLValue(r.gatewaySN), SQLValue(r.gatewayModel), SQLValue(r.gatewayModelName), .text(r.state),
            .real(r.startTime), SQLValue(r.endTime), SQLValue(r.client), SQLValue(r.mqttClientID), SQLValue(r.mqttUsername),
            .text(jsonText(r.aircraftSNs)), SQLValue(r.summaryJSON), SQLValue(r.replayOf),
        ]
    }

    /// Inserts a session; the database assigns its id (returned).
    static func insertSession(_ r: SessionRow, _ tx: any StoreStatements) throws -> Int64 {
        let sql = """
            INSERT INTO sessions (\(sessionColumns.joined(separator: ", ")))
            VALUES (?\(String(repeating: ", ?", count: sessionColumns.count - 1))) RETURNING id
            """
        guard let id = try tx.integer(sql, sessionArguments(r)) else {
            throw DatabaseError(resultCode: .SQLITE_ERROR, message: "no id for the new session")
        }
        return id
    }

    /// Updates a stored session in place (its timeline events, findings and `part_of` stay).
    static func updateSession(_ r: SessionRow, id: Int64, _ tx: any StoreStatements) throws {
        try tx.execute(
            "UPDATE sessions SET \(sessionColumns.map { "\($0) = ?" }.joined(separator: ", ")) WHERE id = ?",
            sessionArguments(r) + [.integer(id)])
    }

    /// A value as the JSON text its `*_json` column holds.
    static func jsonText<T: Encodable>(_ value: T) -> String {
        (try? StoreJSON.encoder().encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    private func step(_ statement: Statement) throws {
        let s = statement.sqliteStatement
        let code = sqlite3_step(s)
        sqlite3_reset(s)
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(db.sqliteConnection)), sql: statement.sql)
        }
    }

    /// Headers as the JSON array of `[name, value]` pairs the `*_headers_json` columns hold (the same text the
    /// `Codable` encoding gives: `StoreJSON.encoder()`, slashes unescaped).
    static func json(_ headers: [HTTPHeaderField]) -> String {
        var out = "["
        for (i, h) in headers.enumerated() {
            if i > 0 { out += "," }
            out += "["
            appendJSONString(h.name, to: &out)
            out += ","
            appendJSONString(h.value, to: &out)
            out += "]"
        }
        return out + "]"
    }

    /// RFC 8259 §7, as Foundation's `JSONEncoder` writes strings: `"` and `\` escaped, control characters as the
    /// short escapes or `\u00XX`, everything else (slashes, non-ASCII) as is.
    static func appendJSONString(_ s: String, to out: inout String) {
        out += "\""
        var plainStart = s.utf8.startIndex
        for i in s.utf8.indices {
            let c = s.utf8[i]
            guard c < 0x20 || c == 0x22 || c == 0x5C else { continue }
            out += s[plainStart..<i]
            switch c {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            default:
                let hex = Array("0123456789abcdef".utf8)
                out += "\\u00" + String(decoding: [hex[Int(c >> 4)], hex[Int(c & 0xF)]], as: UTF8.self)
            }
            plainStart = s.utf8.index(after: i)
        }
        out += s[plainStart...]
        out += "\""
    }
}

/// Binds the parameters of one statement execution in order, from 1.
private struct Binder {
    let statement: OpaquePointer
    var index: CInt = 0

    init(_ statement: OpaquePointer) { self.statement = statement }

    /// SQLite copies the bytes before the bind call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    mutating func int<I: BinaryInteger>(_ v: I?) {
        index += 1
        if let v { sqlite3_bind_int64(statement, index, Int64(v)) } else { sqlite3_bind_null(statement, index) }
    }

    mutating func bool(_ v: Bool?) { int(v.map { $0 ? 1 : 0 }) }

    mutating func double(_ v: Double?) {
        index += 1
        if let v { sqlite3_bind_double(statement, index, v) } else { sqlite3_bind_null(statement, index) }
    }

    mutating func text(_ v: String?) {
        index += 1
        guard var v else { sqlite3_bind_null(statement, index); return }
        let i = index
        // Native strings are contiguous UTF-8 already (`withUTF8` copies only bridged ones).
        v.withUTF8 { bytes in
            // A non-NULL pointer even for "": NULL would bind SQL NULL.
            _ =
                bytes.baseAddress.map { sqlite3_bind_text(statement, i, $0, CInt(bytes.count), Self.transient) }
                ?? sqlite3_bind_text(statement, i, "", 0, Self.transient)
        }
    }

    mutating func blob(_ v: Data?) {
        index += 1
        guard let v else { sqlite3_bind_null(statement, index); return }
        let i = index
        _ = v.withUnsafeBytes { bytes in
            // An empty BLOB, not NULL (a NULL pointer would bind NULL).
            if let base = bytes.baseAddress, bytes.count > 0 {
                sqlite3_bind_blob(statement, i, base, CInt(bytes.count), Self.transient)
            } else {
                sqlite3_bind_zeroblob(statement, i, 0)
            }
        }
    }
}

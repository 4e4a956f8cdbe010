import GRDB

extension PilotTraceDatabase {
    /// `PRAGMA application_id` of a pilottrace database: "PTRC". It lets ``open(path:)`` refuse other databases.
    static let applicationID: Int32 = 0x5054_5243

    /// The tables, in foreign-key order (parents first).
    public static let tableNames = [
        "analyses", "captures", "flows", "http_exchanges", "websocket_messages", "mqtt_packets", "sessions",
        "timeline_events", "deviations", "replay_steps", "id_sequences",
    ]

    /// The named indexes the schema creates.
    public static let indexNames = [
        "analyses_by_key", "captures_by_analysis", "flows_by_analysis", "http_exchanges_by_flow",
        "websocket_messages_by_flow", "mqtt_packets_by_flow", "sessions_by_analysis",
        "timeline_events_by_session", "timeline_events_by_flow", "deviations_by_session", "deviations_by_analysis",
        "deviations_by_flow", "sessions_by_replay_of", "replay_steps_by_session", "timeline_events_by_credential",
        "sessions_by_part_of",
    ]

    /// Version 2 (issue 10): `deviations_by_analysis` covers `(analysis_id, time)`, so `pilottrace deviations` reads
    /// an analysis's findings in time order from the index instead of sorting them.
    static let schemaV2 = """
        DROP INDEX deviations_by_analysis;
        CREATE INDEX deviations_by_analysis ON deviations(analysis_id, time);
        """

    /// Version 3 (issue 10, round 2): no `mqtt_packets_by_topic`. No command read packets by topic, and with
    /// thousands of devices its insert points (one per topic) no longer fit the page cache, which made storing a
    /// 1.4 GB capture superlinear. A topic query scans the analysis's packets instead.
    static let schemaV3 = """
        DROP INDEX IF EXISTS mqtt_packets_by_topic;
        """

    /// Version 4 (issue 7, replay): where an analysis's traffic came from (`source`), which stored session a replayed
    /// session re-drove (`sessions.replay_of`), and the replay's per-step comparison with the recording
    /// (`replay_steps`). Existing analyses get their source from their key (`live:` capture, `proxy:` proxy).
    static let schemaV4 = """
        ALTER TABLE analyses ADD COLUMN source TEXT NOT NULL DEFAULT 'capture'
            CHECK (source IN ('capture', 'live', 'proxy', 'replay'));
        UPDATE analyses SET source = 'live' WHERE key LIKE 'live:%';
        UPDATE analyses SET source = 'proxy' WHERE key LIKE 'proxy:%';
        ALTER TABLE sessions ADD COLUMN replay_of INTEGER REFERENCES sessions(id) ON DELETE SET NULL;
        CREATE INDEX sessions_by_replay_of ON sessions(replay_of);

        CREATE TABLE replay_steps (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            session_id INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
            original_session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
            ordinal INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('http', 'mqtt')),
            name TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('matched', 'changed', 'missing')),
            regression INTEGER NOT NULL CHECK (regression IN (0, 1)),
            recorded_latency REAL,
            replayed_latency REAL,
            differences_json TEXT NOT NULL CHECK (json_valid(differences_json))
        );
        CREATE INDEX replay_steps_by_session ON replay_steps(analysis_id, session_id, ordinal);
        """

    /// Version 5 (issue 10, round 4): every CHECK that tests a column against three or more values compares it with
    /// each value instead of `IN (…)`. SQLite 3.40 builds a temporary B-tree for an `IN` list of three or more
    /// constants each time a statement runs, so each INSERT into `mqtt_packets` (`version`, `qos`) created and freed
    /// two of them: most of the writer's time. The checks accept and refuse exactly the same values (a NULL passes
    /// both forms). Only the CHECK text changes, which SQLite documents as safe to edit in `sqlite_schema` (no stored
    /// row depends on it), so a database of any size migrates at once.
    static let schemaV5Rewrites: [(table: String, check: String)] = [
        ("analyses", "source IN ('capture', 'live', 'proxy', 'replay')"),
        ("flows", "protocol IN ('http', 'mqtt', 'tls', 'unknown')"),
        ("flows", "mqtt_role IN ('device', 'cloud', 'other')"),
        ("websocket_messages", "kind IN ('text', 'binary', 'close', 'ping', 'pong')"),
        ("mqtt_packets", "version IN ('3.1', '3.1.1', '5.0')"),
        ("mqtt_packets", "qos IN (0, 1, 2)"),
        ("sessions", "state IN ('online', 'offline', 'failed', 'incomplete')"),
        ("timeline_events", "message_kind IN ('http', 'mqtt', 'websocket')"),
        ("deviations", "severity IN ('error', 'warning', 'info')"),
        ("deviations", "message_kind IN ('http', 'mqtt', 'websocket')"),
        ("replay_steps", "outcome IN ('matched', 'changed', 'missing')"),
    ]

    /// `column IN ('a', 'b', 'c')` as `column = 'a' OR column = 'b' OR column = 'c'` (the CHECK's own parentheses
    /// keep the disjunction together).
    static func comparisons(_ check: String) -> String {
        let column = check.prefix { $0 != " " }
        let list = check.drop { $0 != "(" }.dropFirst().dropLast()
        return list.split(separator: ",").map { "\(column) = \($0.trimmingPrefix(" "))" }.joined(separator: " OR ")
    }

    /// Applies ``schemaV5Rewrites`` to the tables' definitions in `sqlite_schema`, then bumps `schema_version` so every
    /// connection reloads the schema (https://sqlite.org/lang_altertable.html, "making other kinds of table schema
    /// changes"). Throws if a definition does not hold the text it should (a database edited by hand).
    static func migrateV5(_ db: Database) throws {
        let version = try Int.fetchOne(db, sql: "PRAGMA schema_version") ?? 0
        try db.execute(sql: "PRAGMA writable_schema = ON")
        defer { try? db.execute(sql: "PRAGMA writable_schema = OFF") }
        for rewrite in schemaV5Rewrites {
            try db.execute(
                sql: "UPDATE sqlite_schema SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = ? AND instr(sql, ?) > 0",
                arguments: [rewrite.check, comparisons(rewrite.check), rewrite.table, rewrite.check])
            guard db.changesCount == 1 else {
                throw DatabaseError(resultCode: .SQLITE_ERROR, message: "table \(rewrite.table) has no CHECK (\(rewrite.check))")
            }
        }
        try db.execute(sql: "PRAGMA schema_version = \(version + 1)")
    }

    /// Version 6 (issue 11, joinable output): where each stored message, timeline step and finding is in the capture
    /// files, as Wireshark numbers frames (`frame.number`, from 1 in each file): the file (`capture_ordinal`, the
    /// analysis's `captures` row of that ordinal) and the frames of the first and last bytes (an HTTP exchange keeps
    /// its request's and its response's); and each flow's Community ID (v1). Rows stored before have NULL there
    /// (not known).
    static let schemaV6 = """
        ALTER TABLE flows ADD COLUMN community_id TEXT;
        ALTER TABLE http_exchanges ADD COLUMN capture_ordinal INTEGER CHECK (capture_ordinal >= 0);
        ALTER TABLE http_exchanges ADD COLUMN request_first_frame INTEGER CHECK (request_first_frame >= 1);
        ALTER TABLE http_exchanges ADD COLUMN request_last_frame INTEGER CHECK (request_last_frame >= 1);
        ALTER TABLE http_exchanges ADD COLUMN response_first_frame INTEGER CHECK (response_first_frame >= 1);
        ALTER TABLE http_exchanges ADD COLUMN response_last_frame INTEGER CHECK (response_last_frame >= 1);
        ALTER TABLE websocket_messages ADD COLUMN capture_ordinal INTEGER CHECK (capture_ordinal >= 0);
        ALTER TABLE websocket_messages ADD COLUMN first_frame INTEGER CHECK (first_frame >= 1);
        ALTER TABLE websocket_messages ADD COLUMN last_frame INTEGER CHECK (last_frame >= 1);
        ALTER TABLE mqtt_packets ADD COLUMN capture_ordinal INTEGER CHECK (capture_ordinal >= 0);
        ALTER TABLE mqtt_packets ADD COLUMN first_frame INTEGER CHECK (first_frame >= 1);
        ALTER TABLE mqtt_packets ADD COLUMN last_frame INTEGER CHECK (last_frame >= 1);
        ALTER TABLE timeline_events ADD COLUMN capture_ordinal INTEGER CHECK (capture_ordinal >= 0);
        ALTER TABLE timeline_events ADD COLUMN first_frame INTEGER CHECK (first_frame >= 1);
        ALTER TABLE timeline_events ADD COLUMN last_frame INTEGER CHECK (last_frame >= 1);
        ALTER TABLE deviations ADD COLUMN capture_ordinal INTEGER CHECK (capture_ordinal >= 0);
        ALTER TABLE deviations ADD COLUMN first_frame INTEGER CHECK (first_frame >= 1);
        ALTER TABLE deviations ADD COLUMN last_frame INTEGER CHECK (last_frame >= 1);
        """

    /// Version 7 (issue 16, store v2): many writers at once. The database assigns every id: `id_sequences` hands out
    /// blocks of flow and message ids (``AnalysisWriter``), sessions take their rowid when inserted. An analysis says
    /// how it ended (`state`, `stop_reason`, `finished_at`) and which capture point recorded it (`site`); sessions
    /// recorded at two capture points are stitched (`sessions.part_of`, `timeline_events.credential_digest`). Analyses
    /// stored before with `frames` NULL never finished: they are `interrupted`. Sessions left with the negative
    /// provisional ids of an interrupted analysis (which made every later session id negative) are renumbered after
    /// the positive ones, their timelines, findings and replays with them.
    static let schemaV7 = """
        ALTER TABLE analyses ADD COLUMN state TEXT NOT NULL DEFAULT 'complete'
            CHECK (state = 'running' OR state = 'complete' OR state = 'interrupted');
        ALTER TABLE analyses ADD COLUMN stop_reason TEXT;
        ALTER TABLE analyses ADD COLUMN finished_at TEXT;
        ALTER TABLE analyses ADD COLUMN site TEXT NOT NULL DEFAULT '';
        UPDATE analyses SET state = 'interrupted', stop_reason = 'did not finish (stored before schema version 7)'
            WHERE frames IS NULL;
        CREATE TABLE id_sequences (
            name TEXT PRIMARY KEY,
            next_id INTEGER NOT NULL CHECK (next_id >= 1)
        ) WITHOUT ROWID;
        ALTER TABLE timeline_events ADD COLUMN credential_digest TEXT;
        CREATE INDEX timeline_events_by_credential ON timeline_events(credential_digest) WHERE credential_digest IS NOT NULL;
        ALTER TABLE sessions ADD COLUMN part_of INTEGER REFERENCES sessions(id) ON DELETE SET NULL;
        CREATE INDEX sessions_by_part_of ON sessions(part_of) WHERE part_of IS NOT NULL;
        """

    /// Version 8: what TLS decryption with a key log gave, per flow (never the secrets): the version, the cipher suite,
    /// the ALPN protocol the server chose, whether the records were decrypted, and why not.
    static let schemaV8 = """
        ALTER TABLE flows ADD COLUMN tls_version TEXT;
        ALTER TABLE flows ADD COLUMN tls_cipher_suite TEXT;
        ALTER TABLE flows ADD COLUMN tls_alpn TEXT;
        ALTER TABLE flows ADD COLUMN tls_decrypted INTEGER CHECK (tls_decrypted IN (0, 1));
        ALTER TABLE flows ADD COLUMN tls_failure TEXT;
        """

    /// Version 9 (issue 21): telemetry windows. Periodic telemetry (`thing/product/{sn}/osd`, `…/state`) is stored as
    /// one `mqtt_packets` row per connection, direction, topic, QoS and 10-second window instead of one per PUBLISH:
    /// how many it stands for, the last one's time, their payload bytes, the PUBACKs folded into it and each one's
    /// frame. Rows stored before stand for one packet each.
    static let schemaV9 = """
        ALTER TABLE mqtt_packets ADD COLUMN packet_count INTEGER NOT NULL DEFAULT 1 CHECK (packet_count >= 1);
        ALTER TABLE mqtt_packets ADD COLUMN last_time REAL;
        ALTER TABLE mqtt_packets ADD COLUMN total_payload_length INTEGER CHECK (total_payload_length >= 0);
        ALTER TABLE mqtt_packets ADD COLUMN acknowledged INTEGER CHECK (acknowledged >= 0);
        ALTER TABLE mqtt_packets ADD COLUMN frames TEXT;
        """

    static func migrateV7(_ db: Database) throws {
        try db.execute(sql: schemaV7)
        let negative = try Int64.fetchAll(db, sql: "SELECT id FROM sessions WHERE id < 0 ORDER BY analysis_id, start_time, id")
        if !negative.isEmpty {
            try db.execute(sql: "PRAGMA defer_foreign_keys = ON")
            var next = try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) + 1 FROM sessions WHERE id > 0") ?? 1
            for old in negative {
                try db.execute(sql: "UPDATE sessions SET id = ? WHERE id = ?", arguments: [next, old])
                try db.execute(sql: "UPDATE sessions SET replay_of = ? WHERE replay_of = ?", arguments: [next, old])
                for (table, column) in [
                    ("timeline_events", "session_id"), ("deviations", "session_id"), ("replay_steps", "session_id"),
                    ("replay_steps", "original_session_id"),
                ] {
                    try db.execute(sql: "UPDATE \(table) SET \(column) = ? WHERE \(column) = ?", arguments: [next, old])
                }
                next += 1
            }
        }
        for table in ["flows", "http_exchanges", "websocket_messages", "mqtt_packets"] {
            try db.execute(
                sql: "INSERT INTO id_sequences (name, next_id) SELECT ?, coalesce(max(id), 0) + 1 FROM \(table) WHERE id > 0",
                arguments: [table])
        }
    }

    /// The schema's migrations. Append new ones (`v2`, …); never edit a migration that has shipped.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: "PRAGMA application_id = \(applicationID)")
            try db.execute(sql: schemaV1)
        }
        migrator.registerMigration("v2") { db in
            try db.execute(sql: schemaV2)
        }
        migrator.registerMigration("v3") { db in
            try db.execute(sql: schemaV3)
        }
        migrator.registerMigration("v4") { db in
            try db.execute(sql: schemaV4)
        }
        migrator.registerMigration("v5") { db in
            try migrateV5(db)
        }
        migrator.registerMigration("v6") { db in
            try db.execute(sql: schemaV6)
        }
        migrator.registerMigration("v7") { db in
            try migrateV7(db)
        }
        migrator.registerMigration("v8") { db in
            try db.execute(sql: schemaV8)
        }
        migrator.registerMigration("v9") { db in
            try db.execute(sql: schemaV9)
        }
        return migrator
    }

    /// Version 1. Every column is NOT NULL unless NULL has a documented meaning (docs/schema.md); booleans are
    /// 0/1; `*_json` columns hold valid JSON; enumerated texts are checked.
    static let schemaV1 = """
        CREATE TABLE analyses (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL,
            created_at TEXT NOT NULL,
            frames INTEGER,
            frame_bytes INTEGER,
            first_time REAL,
            last_time REAL,
            tool_version TEXT NOT NULL,
            counters_json TEXT CHECK (counters_json IS NULL OR json_valid(counters_json))
        );
        CREATE UNIQUE INDEX analyses_by_key ON analyses(key);

        CREATE TABLE captures (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            format TEXT NOT NULL,
            compressed INTEGER NOT NULL CHECK (compressed IN (0, 1)),
            link_types TEXT NOT NULL,
            records INTEGER NOT NULL,
            first_time REAL,
            last_time REAL,
            warnings_json TEXT NOT NULL CHECK (json_valid(warnings_json))
        );
        CREATE UNIQUE INDEX captures_by_analysis ON captures(analysis_id, ordinal);

        CREATE TABLE flows (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            connection_number INTEGER NOT NULL,
            client TEXT NOT NULL,
            server TEXT NOT NULL,
            role_evidence TEXT NOT NULL,
            protocol TEXT NOT NULL CHECK (protocol IN ('http', 'mqtt', 'tls', 'unknown')),
            classification_evidence TEXT NOT NULL,
            classification_note TEXT NOT NULL,
            tls_server_name TEXT,
            mqtt_role TEXT CHECK (mqtt_role IN ('device', 'cloud', 'other')),
            first_time REAL NOT NULL,
            last_time REAL NOT NULL,
            close_reason TEXT NOT NULL,
            handshake_complete INTEGER NOT NULL CHECK (handshake_complete IN (0, 1)),
            up_packets INTEGER NOT NULL,
            up_bytes INTEGER NOT NULL,
            up_payload_bytes INTEGER NOT NULL,
            up_gaps INTEGER NOT NULL,
            up_gap_bytes INTEGER NOT NULL,
            up_retransmissions INTEGER NOT NULL,
            down_packets INTEGER NOT NULL,
            down_bytes INTEGER NOT NULL,
            down_payload_bytes INTEGER NOT NULL,
            down_gaps INTEGER NOT NULL,
            down_gap_bytes INTEGER NOT NULL,
            down_retransmissions INTEGER NOT NULL
        );
        CREATE INDEX flows_by_analysis ON flows(analysis_id, connection_number);

        CREATE TABLE http_exchanges (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            flow_id INTEGER NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
            sequence INTEGER NOT NULL,
            method TEXT,
            target TEXT,
            path TEXT,
            query TEXT,
            request_headers_json TEXT CHECK (request_headers_json IS NULL OR json_valid(request_headers_json)),
            request_body BLOB,
            request_body_length INTEGER,
            request_json TEXT CHECK (request_json IS NULL OR json_valid(request_json)),
            request_time REAL,
            status INTEGER,
            reason TEXT,
            response_headers_json TEXT CHECK (response_headers_json IS NULL OR json_valid(response_headers_json)),
            response_body BLOB,
            response_body_length INTEGER,
            response_json TEXT CHECK (response_json IS NULL OR json_valid(response_json)),
            response_time REAL,
            incomplete TEXT,
            CHECK (method IS NOT NULL OR status IS NOT NULL)
        );
        CREATE INDEX http_exchanges_by_flow ON http_exchanges(flow_id, sequence);

        CREATE TABLE websocket_messages (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            flow_id INTEGER NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
            direction TEXT NOT NULL CHECK (direction IN ('to-server', 'to-client')),
            time REAL NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('text', 'binary', 'close', 'ping', 'pong')),
            length INTEGER NOT NULL,
            payload BLOB NOT NULL,
            text TEXT,
            json TEXT CHECK (json IS NULL OR json_valid(json)),
            close_code INTEGER
        );
        CREATE INDEX websocket_messages_by_flow ON websocket_messages(flow_id, time);

        CREATE TABLE mqtt_packets (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            flow_id INTEGER NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
            direction TEXT NOT NULL CHECK (direction IN ('to-server', 'to-client')),
            time REAL NOT NULL,
            over_websocket INTEGER NOT NULL CHECK (over_websocket IN (0, 1)),
            version TEXT NOT NULL CHECK (version IN ('3.1', '3.1.1', '5.0')),
            version_assumed INTEGER NOT NULL CHECK (version_assumed IN (0, 1)),
            type TEXT NOT NULL,
            packet_id INTEGER,
            qos INTEGER CHECK (qos IN (0, 1, 2)),
            retain INTEGER CHECK (retain IN (0, 1)),
            dup INTEGER CHECK (dup IN (0, 1)),
            topic TEXT,
            payload BLOB,
            payload_length INTEGER,
            payload_json TEXT CHECK (payload_json IS NULL OR json_valid(payload_json)),
            client_id TEXT,
            username TEXT,
            password BLOB,
            keep_alive INTEGER,
            return_code INTEGER,
            summary TEXT NOT NULL
        );
        CREATE INDEX mqtt_packets_by_flow ON mqtt_packets(flow_id, time);
        CREATE INDEX mqtt_packets_by_topic ON mqtt_packets(topic);

        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            gateway_sn TEXT,
            gateway_model TEXT,
            gateway_model_name TEXT,
            state TEXT NOT NULL CHECK (state IN ('online', 'offline', 'failed', 'incomplete')),
            start_time REAL NOT NULL,
            end_time REAL,
            client TEXT,
            mqtt_client_id TEXT,
            mqtt_username TEXT,
            aircraft_sns_json TEXT NOT NULL CHECK (json_valid(aircraft_sns_json)),
            summary_json TEXT CHECK (summary_json IS NULL OR json_valid(summary_json))
        );
        CREATE INDEX sessions_by_analysis ON sessions(analysis_id, start_time);

        CREATE TABLE timeline_events (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            time REAL NOT NULL,
            phase TEXT NOT NULL,
            step TEXT NOT NULL,
            ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
            latency REAL,
            flow_id INTEGER REFERENCES flows(id) ON DELETE SET NULL,
            message_kind TEXT CHECK (message_kind IN ('http', 'mqtt', 'websocket')),
            message_id INTEGER,
            detail_json TEXT NOT NULL CHECK (json_valid(detail_json)),
            CHECK ((message_kind IS NULL) = (message_id IS NULL))
        );
        CREATE INDEX timeline_events_by_session ON timeline_events(session_id, ordinal);
        CREATE INDEX timeline_events_by_flow ON timeline_events(flow_id);

        CREATE TABLE deviations (
            id INTEGER PRIMARY KEY,
            analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
            session_id INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
            rule_id TEXT NOT NULL,
            severity TEXT NOT NULL CHECK (severity IN ('error', 'warning', 'info')),
            title TEXT NOT NULL,
            time REAL,
            flow_id INTEGER REFERENCES flows(id) ON DELETE SET NULL,
            message_kind TEXT CHECK (message_kind IN ('http', 'mqtt', 'websocket')),
            message_id INTEGER,
            evidence_json TEXT NOT NULL CHECK (json_valid(evidence_json)),
            CHECK ((message_kind IS NULL) = (message_id IS NULL))
        );
        CREATE INDEX deviations_by_session ON deviations(session_id, severity);
        CREATE INDEX deviations_by_analysis ON deviations(analysis_id);
        CREATE INDEX deviations_by_flow ON deviations(flow_id);
        """
}

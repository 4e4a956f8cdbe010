import Foundation
import GRDB
import PilotTraceTestSupport
import Testing

@testable import PilotTraceStore

@Suite("Schema and opening")
struct SchemaTests {
    @Test("Migrations create every table and index; foreign keys and WAL are on")
    func schema() throws {
        try withDatabase { database, _ in
            let tables = try database.strings(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                    + "AND name != 'grdb_migrations' ORDER BY name")
            #expect(tables == PilotTraceDatabase.tableNames.sorted())
            let indexes = try database.strings(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            #expect(indexes == PilotTraceDatabase.indexNames.sorted())
            #expect(try database.strings("SELECT identifier FROM grdb_migrations ORDER BY identifier") == ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"])

            // The indexes the queries rely on cover the right columns.
            let timelineIndex = try database.strings(
                "SELECT name FROM pragma_index_info('timeline_events_by_session') ORDER BY seqno")
            #expect(timelineIndex == ["session_id", "ordinal"])
            #expect(try database.strings("SELECT name FROM pragma_index_info('mqtt_packets_by_topic')").isEmpty)  // v3 dropped it
            #expect(
                try database.strings("SELECT name FROM pragma_index_info('deviations_by_session') ORDER BY seqno")
                    == ["session_id", "severity"])
            #expect(
                try database.strings("SELECT name FROM pragma_index_info('deviations_by_analysis') ORDER BY seqno")
                    == ["analysis_id", "time"])
            #expect(
                try database.scalar(
                    "SELECT \"unique\" FROM pragma_index_list('analyses') "
                        + "WHERE name = 'analyses_by_key'") == 1)

            // Every connection, writer and readers, enforces foreign keys; the file is in WAL mode.
            #expect(try database.sqlite!.write { try Int.fetchOne($0, sql: "PRAGMA foreign_keys") } == 1)
            #expect(try database.scalar("PRAGMA foreign_keys") == 1)
            #expect(try database.scalar("PRAGMA journal_mode") == "wal")
            #expect(try database.scalar("PRAGMA page_size") == PilotTraceDatabase.pageSize)
            #expect(try database.scalar("PRAGMA application_id") == PilotTraceDatabase.applicationID)
            #expect(try database.strings("PRAGMA foreign_key_check").isEmpty)
        }
    }

    @Test("Every column of every table is documented in docs/schema.md")
    func documented() throws {
        let doc = try String(contentsOfFile: schemaDoc, encoding: .utf8)
        try withDatabase { database, _ in
            for table in PilotTraceDatabase.tableNames {
                #expect(doc.contains("### `\(table)`"), "table \(table)")
                for column in try database.strings("SELECT name FROM pragma_table_info('\(table)')") {
                    #expect(doc.contains("| `\(column)` |"), "column \(table).\(column)")
                }
            }
        }
    }

    @Test("The example queries in docs/schema.md run, and the status latency query pairs by tid")
    func exampleQueries() throws {
        let doc = try String(contentsOfFile: schemaDoc, encoding: .utf8)
        let blocks = doc.components(separatedBy: "```sql\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        #expect(blocks.count >= 8)
        try withDatabase { database, _ in
            _ = try writeSmallAnalysis(database)
            for sql in blocks {
                try database.sqlite!.writeWithoutTransaction { db in
                    for statement in sql.components(separatedBy: ";\n")
                    where !statement.trimmingCharacters(
                        in: .whitespacesAndNewlines
                    ).isEmpty {
                        _ = try Row.fetchAll(db, sql: statement)
                    }
                }
            }
            let pairing = try #require(blocks.first { $0.contains("'_reply'") })
            let rows = try database.sqlite!.read { try Row.fetchAll($0, sql: pairing) }
            #expect(rows.count == 1)
            #expect(rows.first?["latency_ms"] == 200.0)
            #expect(rows.first?["tid"] == "t1")
        }
    }

    @Test("v2 on a v1 database: rows stay, deviations_by_analysis covers (analysis_id, time)")
    func migrationV2() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("v1.sqlite")
        // Given a database at v1 holding a finding
        let queue = try DatabaseQueue(path: path)
        try PilotTraceDatabase.migrator.migrate(queue, upTo: "v1")
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO analyses (id, key, created_at, tool_version) VALUES (1, 'k', 'now', 't');
                    INSERT INTO deviations (analysis_id, rule_id, severity, title, time, evidence_json)
                    VALUES (1, 'r', 'info', 'later', 2, '{}'), (1, 'r', 'info', 'earlier', 1, '{}');
                    """)
        }
        try queue.close()

        // When pilottrace opens it
        let database = try PilotTraceDatabase.open(path: path)

        // Then the rows are there, read in time order through the new index
        #expect(try database.deviations(analysisID: 1).map(\.title) == ["earlier", "later"])
        #expect(
            try database.strings("SELECT name FROM pragma_index_info('deviations_by_analysis') ORDER BY seqno")
                == ["analysis_id", "time"])
        #expect(try database.strings("SELECT identifier FROM grdb_migrations ORDER BY identifier") == ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"])
    }

    @Test("v4 on a v3 database: analyses get their source from their key; replay_of and replay_steps exist")
    func migrationV4() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("v3.sqlite")
        // Given a database at v3 with a file analysis, a live one and a proxy one
        let queue = try DatabaseQueue(path: path)
        try PilotTraceDatabase.migrator.migrate(queue, upTo: "v3")
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO analyses (id, key, created_at, tool_version) VALUES (1, 'abc', 'now', 't'),
                        (2, 'live:lo:2026', 'now', 't'), (3, 'proxy:127.0.0.1:8080:2026:1', 'now', 't');
                    INSERT INTO sessions (id, analysis_id, state, start_time, aircraft_sns_json) VALUES (1, 1, 'offline', 1, '[]');
                    """)
        }
        try queue.close()

        // When pilottrace opens it
        let database = try PilotTraceDatabase.open(path: path)

        // Then each analysis has its source, the session is no replay, and replay steps can be stored for a replay
        #expect(try database.strings("SELECT source FROM analyses ORDER BY id") == ["capture", "live", "proxy"])
        #expect(try database.session(id: 1)?.replayOf == nil)
        let writer = try database.beginAnalysis(key: "replay:1", captures: [], toolVersion: "t", source: "replay")
        try writer.storeSession(key: 1, SessionRow(id: 0, state: "offline", startTime: 2), timeline: [])
        try writer.finish(frames: 0, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)
        #expect(writer.sessionID(key: 1) == 2)
        try database.recordReplay(
            analysisID: writer.analysisID, sessionID: 2, originalSessionID: 1,
            steps: [
                ReplayStepRow(
                    ordinal: 0, kind: "http", name: "GET /", outcome: "matched", regression: false, recordedLatency: 0.1,
                    replayedLatency: 0.2, differencesJSON: "[]")
            ])
        #expect(try database.session(id: 2)?.replayOf == 1)
        #expect(try database.replaySteps(sessionID: 2).map(\.outcome) == ["matched"])
        #expect(try database.replayableSessions().map(\.id) == [1])
    }

    @Test("No insert builds a temporary B-tree for its checks (v5), so storing a row costs no per-statement table")
    func insertsBuildNoTemporaryTables() throws {
        try withDatabase { database, _ in
            for table in PilotTraceDatabase.tableNames {
                let opcodes = try database.sqlite!.read { db in
                    try String.fetchAll(db, sql: "EXPLAIN INSERT INTO \(table) DEFAULT VALUES").filter { $0 == "OpenEphemeral" }
                }
                #expect(opcodes.isEmpty, "INSERT INTO \(table) opens a temporary B-tree")
            }
        }
    }

    @Test("v5 on a v4 database: rows stay, the checks compare instead of IN (…), and still refuse what they refused")
    func migrationV5() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("v4.sqlite")
        // Given a database at v4 with a flow, an MQTT packet, a session, an event and a finding
        let queue = try DatabaseQueue(path: path)
        try PilotTraceDatabase.migrator.migrate(queue, upTo: "v4")
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO analyses (id, key, created_at, tool_version) VALUES (1, 'k', 'now', 't');
                    INSERT INTO flows VALUES (1, 1, 1, '10.0.0.2:50000', '10.0.0.1:1883', 'syn', 'mqtt', 'content', '', NULL, 'device',
                        1, 2, 'fin', 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0);
                    INSERT INTO mqtt_packets (analysis_id, flow_id, direction, time, over_websocket, version, version_assumed, type,
                        qos, summary) VALUES (1, 1, 'to-server', 1, 0, '3.1.1', 0, 'PUBLISH', 1, 'PUBLISH');
                    INSERT INTO sessions (id, analysis_id, state, start_time, aircraft_sns_json) VALUES (1, 1, 'offline', 1, '[]');
                    INSERT INTO deviations (analysis_id, session_id, rule_id, severity, title, time, evidence_json)
                        VALUES (1, 1, 'r', 'warning', 't', 1, '{}');
                    """)
        }
        let before = try queue.read { try Int.fetchOne($0, sql: "PRAGMA schema_version") ?? 0 }
        try queue.close()

        // When pilottrace opens it
        let database = try PilotTraceDatabase.open(path: path)

        // Then the rows are there and intact, no table definition keeps a long IN list, and the schema version moved on
        #expect(try database.scalar("SELECT count(*) FROM mqtt_packets WHERE qos = 1 AND version = '3.1.1'") == 1)
        #expect(try database.deviations(analysisID: 1).map(\.severity) == ["warning"])
        #expect(try database.strings("PRAGMA integrity_check") == ["ok"])
        let definitions = try database.strings("SELECT sql FROM sqlite_schema WHERE type = 'table'").joined(separator: "\n")
        for rewrite in PilotTraceDatabase.schemaV5Rewrites {
            #expect(!definitions.contains(rewrite.check))
            #expect(definitions.contains(PilotTraceDatabase.comparisons(rewrite.check)))
        }
        #expect(PilotTraceDatabase.comparisons("qos IN (0, 1, 2)") == "qos = 0 OR qos = 1 OR qos = 2")
        #expect(try database.scalar("PRAGMA schema_version") as Int? ?? 0 > before)
        // and the rewritten checks still refuse unknown values and accept NULL where NULL is allowed
        try database.sqlite!.write { db in
            #expect(throws: DatabaseError.self) {
                try db.execute(sql: "UPDATE mqtt_packets SET qos = 3")
            }
            #expect(throws: DatabaseError.self) {
                try db.execute(sql: "UPDATE mqtt_packets SET version = '4.0'")
            }
            #expect(throws: DatabaseError.self) {
                try db.execute(sql: "UPDATE sessions SET state = 'sleeping'")
            }
            try db.execute(sql: "UPDATE mqtt_packets SET qos = NULL")
            try db.execute(sql: "UPDATE flows SET mqtt_role = 'cloud'")
        }
    }

    @Test("v6 on a v5 database: rows stay with their frames and Community IDs not known; new rows keep theirs; frame 0 is refused")
    func migrationV6() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("v5.sqlite")
        // Given a database at v5 with a flow, an MQTT packet, a session, an event and a finding
        let queue = try DatabaseQueue(path: path)
        try PilotTraceDatabase.migrator.migrate(queue, upTo: "v5")
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO analyses (id, key, created_at, tool_version) VALUES (1, 'k', 'now', 't');
                    INSERT INTO flows VALUES (1, 1, 1, '10.0.0.2:50000', '10.0.0.1:1883', 'syn', 'mqtt', 'content', '', NULL, 'device',
                        1, 2, 'fin', 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0);
                    INSERT INTO mqtt_packets (id, analysis_id, flow_id, direction, time, over_websocket, version, version_assumed, type,
                        qos, summary) VALUES (1, 1, 1, 'to-server', 1, 0, '3.1.1', 0, 'PUBLISH', 1, 'PUBLISH');
                    INSERT INTO sessions (id, analysis_id, state, start_time, aircraft_sns_json) VALUES (1, 1, 'offline', 1, '[]');
                    INSERT INTO timeline_events (analysis_id, session_id, ordinal, time, phase, step, ok, message_kind, message_id, detail_json)
                        VALUES (1, 1, 0, 1, 'status', 'update-topo', 1, 'mqtt', 1, '{}');
                    INSERT INTO deviations (analysis_id, session_id, rule_id, severity, title, time, evidence_json)
                        VALUES (1, 1, 'r', 'warning', 't', 1, '{}');
                    """)
        }
        try queue.close()

        // When pilottrace opens it
        let database = try PilotTraceDatabase.open(path: path)

        // Then the rows are there, their places in the captures not known
        #expect(try database.strings("SELECT identifier FROM grdb_migrations ORDER BY identifier").last == "v9")
        #expect(try database.flows(analysisID: 1).map(\.communityID) == [nil])
        let packet = try #require(try database.mqttPackets(analysisID: 1).first)
        #expect(packet.captureOrdinal == nil && packet.firstFrame == nil && packet.lastFrame == nil)
        // (v9: a row stored before telemetry windows stands for one packet, and a window of none is refused)
        #expect(packet.packetCount == 1 && packet.lastTime == nil && packet.frames == nil && packet.acknowledged == nil)
        try database.sqlite!.write { db in
            #expect(throws: DatabaseError.self) { try db.execute(sql: "UPDATE mqtt_packets SET packet_count = 0") }
        }
        let event = try #require(try database.timeline(sessionID: 1).first)
        #expect(event.firstFrame == nil && event.messageID == 1)
        #expect(try database.deviations(sessionID: 1).map(\.lastFrame) == [nil])
        #expect(try database.strings("PRAGMA integrity_check") == ["ok"])
        // and frames are Wireshark's numbers, from 1
        try database.sqlite!.write { db in
            try db.execute(sql: "UPDATE mqtt_packets SET capture_ordinal = 0, first_frame = 1, last_frame = 2")
            #expect(throws: DatabaseError.self) { try db.execute(sql: "UPDATE mqtt_packets SET first_frame = 0") }
            #expect(throws: DatabaseError.self) { try db.execute(sql: "UPDATE timeline_events SET capture_ordinal = -1") }
        }
    }

    @Test("Foreign keys are enforced: a message of an unknown flow is refused")
    func foreignKeysEnforced() throws {
        try withDatabase { database, _ in
            let writer = try database.beginAnalysis(key: "k", captures: [], toolVersion: "t")
            try writer.insertMQTTPacket(
                MQTTPacketRow(
                    id: try writer.nextMQTTID(), flowID: 999, direction: "to-server", time: 1, version: "3.1.1",
                    type: "PINGREQ", summary: "PINGREQ"))
            let error = #expect(throws: PilotTraceStoreError.self) { try writer.flush() }
            #expect(error?.kind == .writeFailed)
            #expect(error?.message.contains("FOREIGN KEY") == true)
            #expect(try database.counts(analysisID: writer.analysisID).mqtt == 0)
        }
    }

    @Test("Checks are enforced: invalid JSON and unknown enumerations are refused")
    func checksEnforced() throws {
        try withDatabase { database, _ in
            let writer = try database.beginAnalysis(key: "k", captures: [], toolVersion: "t")
            try writer.storeSession(key: 1, SessionRow(id: 0, state: "online", startTime: 1), timeline: [])
            try writer.flush()
            try writer.replaceFindings([(sessionKey: 1, row: DeviationRow(ruleID: "r", severity: "warning", title: "t", evidenceJSON: "{not json"))])
            #expect(throws: PilotTraceStoreError.self) { try writer.flush() }
            try writer.storeSession(key: 2, SessionRow(id: 0, state: "sleeping", startTime: 1), timeline: [])
            #expect(throws: PilotTraceStoreError.self) { try writer.flush() }
            #expect(try database.counts(analysisID: writer.analysisID) == AnalysisCounts(sessions: 1))
        }
    }

    @Test("Reopening keeps the data and does not migrate again")
    func reopen() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("p.sqlite")
        let id = try writeSmallAnalysis(try PilotTraceDatabase.open(path: path)).analysisID
        let again = try PilotTraceDatabase.open(path: path)
        #expect(try again.analyses().map(\.id) == [id])
        #expect(try again.counts(analysisID: id).mqtt == 4)
    }

    @Test("An empty file becomes a pilottrace database")
    func emptyFile() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("empty.sqlite")
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let database = try PilotTraceDatabase.open(path: path)
        #expect(try database.analyses().isEmpty)
    }

    @Test("A file that is not a database is refused, named, and left untouched")
    func notADatabase() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("notes.sqlite")
        let content = Data("these are my notes, not a database\n".utf8)
        try content.write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: PilotTraceStoreError.self) { try PilotTraceDatabase.open(path: path) }
        #expect(error?.kind == .notAPilotTraceDatabase)
        #expect(error?.path == path)
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("not a pilottrace database") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == content)
    }

    @Test("Another program's SQLite database is refused without being changed")
    func foreignDatabase() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("other.sqlite")
        do {
            let queue = try DatabaseQueue(path: path)
            try queue.write { try $0.execute(sql: "CREATE TABLE players (id INTEGER PRIMARY KEY, name TEXT)") }
            try queue.close()
        }
        let error = #expect(throws: PilotTraceStoreError.self) { try PilotTraceDatabase.open(path: path) }
        #expect(error?.kind == .notAPilotTraceDatabase)
        #expect(error?.description.contains(path) == true)
        let queue = try DatabaseQueue(path: path)
        #expect(try queue.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "delete")
        #expect(
            try queue.read { try Bool.fetchOne($0, sql: "SELECT count(*) FROM sqlite_master WHERE name = 'flows'") }
                == false)
    }

    @Test("A path that cannot be created is an error naming it")
    func unwritablePath() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let file = folder.path("plain-file")
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        // A folder cannot be created below a regular file (even as root).
        let path = file + "/sub/pilottrace.sqlite"
        let error = #expect(throws: PilotTraceStoreError.self) { try PilotTraceDatabase.open(path: path) }
        #expect(error?.kind == .cannotOpen)
        #expect(error?.description.contains(path) == true)

        let folderError = #expect(throws: PilotTraceStoreError.self) {
            try PilotTraceDatabase.open(path: folder.url.path)
        }
        #expect(folderError?.kind == .cannotOpen)
        #expect(folderError?.description.contains(folder.url.path) == true)
        #expect(folderError?.description.contains("is a folder") == true)
    }

    @Test("A database migrated by a newer pilottrace is refused")
    func newerSchema() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("future.sqlite")
        let database = try PilotTraceDatabase.open(path: path)
        try database.sqlite!.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99')") }
        let error = #expect(throws: PilotTraceStoreError.self) { try PilotTraceDatabase.open(path: path) }
        #expect(error?.kind == .newerSchema)
        #expect(error?.description.contains(path) == true)
    }

    @Test("Database path: --db, else $PILOTTRACE_DB, else ./pilottrace.sqlite")
    func resolvePath() {
        let environment = ["PILOTTRACE_DB": "/data/env.sqlite"]
        #expect(PilotTraceDatabase.resolvePath(option: "/x/opt.sqlite", environment: environment) == "/x/opt.sqlite")
        #expect(PilotTraceDatabase.resolvePath(option: nil, environment: environment) == "/data/env.sqlite")
        #expect(PilotTraceDatabase.resolvePath(option: "", environment: environment) == "/data/env.sqlite")
        #expect(PilotTraceDatabase.resolvePath(option: nil, environment: [:]) == "./pilottrace.sqlite")
        #expect(
            PilotTraceDatabase.resolvePath(option: nil, environment: ["PILOTTRACE_DB": ""])
                == "./pilottrace.sqlite")
    }

    private var schemaDoc: String { TestPaths.packageRoot.appendingPathComponent("docs/schema.md").path }
}

import Foundation
import GRDB
import PilotTraceTestSupport
import Testing

@testable import PilotTraceStore

/// A fresh database in the test process's private cluster (``PostgresServer/shared()``), and a link to it.
func withPostgres<T>(_ body: (PostgresLink, PostgresServer) throws -> T) throws -> T {
    let server = try PostgresServer.shared()
    let link = try PostgresLink.connect(PostgresLocation(url: try server.createDatabase()))
    defer { link.close() }
    return try body(link, server)
}

/// A migrated fresh database.
func withMigratedPostgres<T>(_ body: (PostgresLink, PostgresServer) throws -> T) throws -> T {
    try withPostgres { link, server in
        try PostgresSchema.migrate(link)
        return try body(link, server)
    }
}

extension PostgresLink {
    func scalar(_ sql: String, _ binds: [SQLValue] = []) throws -> SQLValue? {
        try query(sql, binds).first?.values.first
    }

    func count(_ table: String) throws -> Int64 {
        guard case .integer(let n)? = try scalar("SELECT count(*) AS n FROM \(table)") else { return -1 }
        return n
    }

    /// Encodes `records` with ``StoreRowEncoder`` and inserts them.
    func insert<T: Encodable>(_ records: [T], into table: String) throws {
        guard let first = records.first else { return }
        let columns = try StoreRowEncoder().encode(first).map(\.column)
        try insert(table: table, columns: columns, rows: records.map { try StoreRowEncoder().encode($0).map(\.value) })
    }

    /// Every row of `table` by id, decoded with ``StoreRowDecoder``.
    func records<T: Decodable>(_ type: T.Type, _ table: String) throws -> [T] {
        try query("SELECT * FROM \(table) ORDER BY id").map { try StoreRowDecoder().decode(T.self, from: $0) }
    }
}

@Suite(
    "PostgreSQL link and schema, against a private cluster",
    .enabled(
        if: PostgresServer.isAvailable,
        "needs PostgreSQL's server (initdb, pg_ctl: Debian's postgresql, scripts/bootstrap) and, as root, the user postgres"))
struct PostgresLinkTests {
    // MARK: Connecting and values

    @Test("Connects, maps PostgreSQL's types to SQL values, binds each kind of value")
    func values() throws {
        try withPostgres { link, _ in
            let row = try #require(
                try link.query(
                    """
                    SELECT 1::int2 AS a, 2::int4 AS b, 3::int8 AS c, 1.5::float4 AS d, 2.25::float8 AS e, 3.125::numeric AS f,
                           'x'::text AS g, 'y'::varchar AS h, 'n'::name AS i, '{"k": [1]}'::json AS j, '{"k":[1]}'::jsonb AS k,
                           '\\x00ff'::bytea AS l, true AS m, false AS n, NULL::text AS o, ''::bytea AS p, 'z'::char(2) AS q,
                           '2026-01-02 03:04:05.5+00'::timestamptz AS r
                    """
                ).first)
            #expect(row["a"] == .integer(1) && row["b"] == .integer(2) && row["c"] == .integer(3))
            #expect(row["d"] == .real(1.5) && row["e"] == .real(2.25) && row["f"] == .real(3.125))
            #expect(row["g"] == .text("x") && row["h"] == .text("y") && row["i"] == .text("n"))
            #expect(row["j"] == .text(#"{"k": [1]}"#) && row["k"] == .text(#"{"k": [1]}"#))
            #expect(row["l"] == .blob(Data([0x00, 0xFF])) && row["p"] == .blob(Data()))
            #expect(row["m"] == .integer(1) && row["n"] == .integer(0) && row["o"] == .null)
            #expect(row["q"] == .text("z "))
            #expect(row["r"] == .text("2026-01-02T03:04:05.500Z"))

            let values: [SQLValue] = [
                .integer(.min), .integer(.max), .real(0.1), .real(-1e-300), .real(.greatestFiniteMagnitude),
                .real(.leastNonzeroMagnitude), .real(.infinity), .text(""), .text("é\t\n\\'\"?$1"),
                .blob(Data()), .blob(Data((0...255).map(UInt8.init))), .null,
            ]
            let echoed = try link.query(
                "SELECT ?::int8 AS v0, ?::int8 AS v1, ?::float8 AS v2, ?::float8 AS v3, ?::float8 AS v4, ?::float8 AS v5, "
                    + "?::float8 AS v6, ?::text AS v7, ?::text AS v8, ?::bytea AS v9, ?::bytea AS v10, ? AS v11, '?' AS q",
                values)
            for (i, value) in values.enumerated() { #expect(echoed.first?["v\(i)"] == value, "v\(i)") }
            #expect(echoed.first?["q"] == .text("?"))

            #expect(try link.query("SELECT 1 AS n WHERE false").isEmpty)
            let mismatch = #expect(throws: PilotTraceStoreError.self) { try link.query("SELECT ?, ?", [.integer(1)]) }
            #expect(mismatch?.kind == .invalidRow)
        }
    }

    @Test("A failing statement is writeFailed with the server's message and SQLSTATE; the link goes on")
    func statementErrors() throws {
        try withPostgres { link, _ in
            let error = #expect(throws: PilotTraceStoreError.self) { try link.execute("SELECT * FROM no_such_table") }
            #expect(error?.kind == .writeFailed)
            #expect(error?.message.contains(#"relation "no_such_table" does not exist"#) == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("SQLSTATE 42P01") == true)
            #expect(error?.message.contains("\n") == false)
            #expect(error?.path == link.location.redacted)
            let answer = try link.scalar("SELECT 41 + 1 AS n")
            #expect(answer == .integer(42))
        }
    }

    @Test("Transactions commit, roll back on a throw, and nest as savepoints")
    func transactions() throws {
        struct Boom: Error {}
        try withPostgres { link, _ in
            try link.execute("CREATE TABLE t (v BIGINT)")
            try link.transaction { try link.execute("INSERT INTO t VALUES (1)") }
            #expect(throws: Boom.self) {
                try link.transaction {
                    try link.execute("INSERT INTO t VALUES (2)")
                    throw Boom()
                }
            }
            try link.transaction {
                try link.execute("INSERT INTO t VALUES (3)")
                #expect(throws: PilotTraceStoreError.self) {
                    try link.transaction {
                        try link.execute("INSERT INTO t VALUES (4)")
                        try link.execute("INSERT INTO t VALUES ('not a number')")
                    }
                }
                try link.execute("INSERT INTO t VALUES (5)")
            }
            let values = try link.query("SELECT v FROM t ORDER BY v").map { $0["v"] }
            #expect(values == [.integer(1), .integer(3), .integer(5)])
        }
    }

    @Test(
        "TLS: sslmode=require encrypts, verify-full checks the certificate against sslrootcert",
        .enabled(if: TestPaths.which("openssl") != nil, "needs openssl to make the cluster's certificate (scripts/bootstrap)"))
    func tls() throws {
        let server = try PostgresServer.shared()
        let certificate = try #require(server.certificatePath, "the cluster has no certificate")
        try server.createDatabase("tls_db")
        for parameters in ["sslmode=require", "sslmode=verify-full&sslrootcert=\(certificate)", "sslmode=prefer"] {
            let link = try PostgresLink.connect(PostgresLocation(url: server.url(database: "tls_db", parameters: parameters)))
            defer { link.close() }
            #expect(try link.scalar("SELECT ssl::int AS ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == .integer(1), "\(parameters)")
        }
        // The system's trust roots do not know the self-signed certificate.
        let error = #expect(throws: PilotTraceStoreError.self) {
            try PostgresLink.connect(PostgresLocation(url: server.url(database: "tls_db", parameters: "sslmode=verify-full")))
        }
        #expect(error?.kind == .cannotOpen)
    }

    // MARK: Connection errors

    @Test("Nothing listening: cannotOpen naming the redacted URL, never the password")
    func refused() throws {
        let port = try freeLoopbackPort()
        let location = try PostgresLocation(url: "postgresql://pilot:hunter2@127.0.0.1:\(port)/trace")
        let started = Date()
        let error = #expect(throws: PilotTraceStoreError.self) { try PostgresLink.connect(location) }
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(error?.kind == .cannotOpen)
        #expect(error?.path == location.redacted)
        #expect(error?.description.contains("postgresql://pilot:***@127.0.0.1:\(port)/trace") == true, "\(error?.description ?? "")")
        #expect(error?.message.contains("Connection refused") == true, "\(error?.message ?? "")")
        #expect(error?.description.contains("hunter2") == false)
        #expect(error.map { String(reflecting: $0) }?.contains("hunter2") == false)
    }

    @Test("A server that never answers: the connect times out")
    func timesOut() throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let location = try PostgresLocation(url: "postgresql://pilot:hunter2@127.0.0.1:\(listener.port)/trace")
        let started = Date()
        let error = #expect(throws: PilotTraceStoreError.self) { try PostgresLink.connect(location, timeout: 1) }
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 0.9 && elapsed < 5, "took \(elapsed) s")
        #expect(error?.kind == .cannotOpen)
        #expect(error?.message.contains("timed out") == true, "\(error?.message ?? "")")
        #expect(error?.description.contains("hunter2") == false)
        #expect(PostgresLink.defaultConnectTimeout <= 10)
    }

    @Test("No such database: cannotOpen with the server's message and SQLSTATE 3D000")
    func noSuchDatabase() throws {
        let server = try PostgresServer.shared()
        let location = try PostgresLocation(url: server.url(database: "no_such_database"))
        let error = #expect(throws: PilotTraceStoreError.self) { try PostgresLink.connect(location) }
        #expect(error?.kind == .cannotOpen)
        #expect(error?.message.contains(#"database "no_such_database" does not exist"#) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("SQLSTATE 3D000") == true)
        #expect(error?.path == location.redacted)
    }

    @Test("A wrong password: cannotOpen with SQLSTATE 28P01, never the password; the right one connects")
    func wrongPassword() throws {
        let server = try PostgresServer.shared()
        try server.createDatabase("auth_db")
        try server.psql("CREATE ROLE pilot LOGIN PASSWORD 'right-horse'")
        let wrong = try PostgresLocation(url: server.url(database: "auth_db", user: "pilot", password: "wrong-battery"))
        let error = #expect(throws: PilotTraceStoreError.self) { try PostgresLink.connect(wrong) }
        #expect(error?.kind == .cannotOpen)
        #expect(error?.message.contains(#"password authentication failed for user "pilot""#) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("SQLSTATE 28P01") == true)
        #expect(error?.description.contains("wrong-battery") == false)

        let none = try PostgresLocation(url: server.url(database: "auth_db", user: "pilot"))
        let noPassword = #expect(throws: PilotTraceStoreError.self) { try PostgresLink.connect(none) }
        #expect(noPassword?.message.contains("password") == true, "\(noPassword?.message ?? "")")

        let right = try PostgresLink.connect(PostgresLocation(url: server.url(database: "auth_db", user: "pilot", password: "right-horse")))
        defer { right.close() }
        #expect(try right.scalar("SELECT current_user::text AS u") == .text("pilot"))
    }

    @Test("A closed link refuses calls; close is idempotent")
    func closed() throws {
        let server = try PostgresServer.shared()
        let link = try PostgresLink.connect(PostgresLocation(url: try server.createDatabase()))
        link.close()
        link.close()
        let error = #expect(throws: PilotTraceStoreError.self) { try link.query("SELECT 1") }
        #expect(error?.kind == .writeFailed)
    }

    // MARK: Schema

    @Test("migrate creates every table and index; a second migrate does nothing")
    func migrate() throws {
        try withPostgres { link, _ in
            try PostgresSchema.migrate(link)
            try PostgresSchema.migrate(link)
            let tables = try link.query("SELECT tablename::text AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
                .map { $0["t"] }
            #expect(tables == (PostgresSchema.tableNames + PostgresSchema.bookkeepingTableNames).sorted().map { .text($0) })
            let indexes = try link.query(
                """
                SELECT indexname::text AS i FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' ORDER BY 1
                """
            ).map { $0["i"] }
            #expect(indexes == PostgresSchema.indexNames.sorted().map { .text($0) })
            #expect(try link.query("SELECT name FROM pilottrace_migrations").map { $0["name"] } == [.text("v7"), .text("v8"), .text("v9")])
            #expect(try link.scalar("SELECT value FROM pilottrace_meta WHERE key = 'application'") == .text("pilottrace"))
        }
    }

    @Test("The columns are SQLite's, in SQLite's order, and the indexes cover the same columns")
    func sameColumnsAsSQLite() throws {
        try withMigratedPostgres { link, _ in
            try withDatabase { sqlite, _ in
                for table in PostgresSchema.tableNames {
                    let sqliteColumns = try sqlite.strings("SELECT name FROM pragma_table_info('\(table)') ORDER BY cid")
                    let pgColumns = try link.query(
                        """
                        SELECT column_name::text AS c FROM information_schema.columns
                        WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position
                        """, [.text(table)]
                    ).compactMap { if case .text(let c)? = $0["c"] { c } else { nil } }
                    // SQLite's columns come first, in order; PostgreSQL may be ahead by v7's columns of analyses.
                    #expect(Array(pgColumns.prefix(sqliteColumns.count)) == sqliteColumns, "\(table)")
                    let extra = Array(pgColumns.dropFirst(sqliteColumns.count))
                    #expect(
                        extra.isEmpty || (table == "analyses" && extra == ["state", "stop_reason", "finished_at", "site"]),
                        "\(table) has more columns: \(extra)")
                }
                for index in PostgresSchema.indexNames {
                    let sqliteColumns = try sqlite.strings("SELECT name FROM pragma_index_info('\(index)') ORDER BY seqno")
                    let pgColumns = try link.query(
                        """
                        SELECT a.attname::text AS c FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
                        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                        WHERE x.relname = ? ORDER BY k.n
                        """, [.text(index)]
                    ).compactMap { if case .text(let c)? = $0["c"] { c } else { nil } }
                    #expect(pgColumns == sqliteColumns, "\(index)")
                    let unique = try link.scalar("SELECT indisunique::int AS u FROM pg_index WHERE indexrelid = ?::regclass", [.text(index)])
                    let sqliteUnique: Int? = try sqlite.scalar(
                        "SELECT \"unique\" FROM pragma_index_list((SELECT tbl_name FROM sqlite_master WHERE name = ?)) WHERE name = ?",
                        [index, index])
                    #expect(unique == .integer(Int64(sqliteUnique ?? -1)), "\(index) unique")
                }
            }
        }
    }

    @Test("Several links migrating one database at once migrate it once")
    func concurrentMigrate() throws {
        let server = try PostgresServer.shared()
        let location = try PostgresLocation(url: try server.createDatabase())
        let links = try (0..<4).map { _ in try PostgresLink.connect(location) }
        defer { links.forEach { $0.close() } }
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: links.count) { i in
            do { try PostgresSchema.migrate(links[i]) } catch { failures.add(error) }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(try links[0].count("pilottrace_migrations") == Int64(PostgresSchema.migrationNames.count))
        #expect(try links[0].count("pilottrace_meta") == 1)
    }

    @Test("Another application's database is refused and left as it was")
    func anotherApplication() throws {
        try withPostgres { link, _ in
            try link.execute("CREATE TABLE customers (id BIGINT PRIMARY KEY, name TEXT)")
            let error = #expect(throws: PilotTraceStoreError.self) { try PostgresSchema.migrate(link) }
            #expect(error?.kind == .notAPilotTraceDatabase)
            #expect(error?.message.contains("customers") == true, "\(error?.message ?? "")")
            let tables = try link.query("SELECT tablename::text AS t FROM pg_tables WHERE schemaname = 'public'").map { $0["t"] }
            #expect(tables == [.text("customers")])
        }
        try withPostgres { link, _ in
            try link.execute("CREATE TABLE pilottrace_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            try link.execute("INSERT INTO pilottrace_meta VALUES ('application', 'someone-else')")
            let error = #expect(throws: PilotTraceStoreError.self) { try PostgresSchema.migrate(link) }
            #expect(error?.kind == .notAPilotTraceDatabase)
        }
    }

    @Test("A database a newer pilottrace migrated is refused")
    func newerSchema() throws {
        try withMigratedPostgres { link, _ in
            try link.execute("INSERT INTO pilottrace_migrations (name) VALUES ('v99')")
            let error = #expect(throws: PilotTraceStoreError.self) { try PostgresSchema.migrate(link) }
            #expect(error?.kind == .newerSchema)
            #expect(error?.message.contains("v99") == true)
        }
    }

    // MARK: Rows

    @Test("Every table's rows round-trip: what SQLite stored, inserted into PostgreSQL, reads back the same; deleting an analysis cascades the same way")
    func everyTableRoundTrip() throws {
        try withMigratedPostgres { link, _ in
            try withDatabase { sqlite, _ in
                let small = try writeEveryTable(sqlite)
                for table in StoreTable.allCases { try Self.copy(table.recordType, table.rawValue, from: sqlite, to: link) }
                for table in StoreTable.allCases { try Self.compare(table.recordType, table.rawValue, sqlite, link) }

                // The same delete in both leaves the same rows (cascades, SET NULLs of replay_of and original_session_id).
                #expect(try sqlite.deleteAnalysis(id: small.analysisID))
                try link.execute("DELETE FROM analyses WHERE id = ?", [.integer(small.analysisID)])
                for table in StoreTable.allCases { try Self.compare(table.recordType, table.rawValue, sqlite, link) }
                #expect(try link.count("flows") == 0)
                #expect(try link.count("replay_steps") == 2)
            }
        }
    }

    static func copy<T: Codable & Hashable & FetchableRecord>(_ type: T.Type, _ table: String, from sqlite: PilotTraceDatabase, to link: PostgresLink) throws {
        try link.insert(try sqlite.stored(T.self, table: table).records, into: table)
    }

    static func compare<T: Codable & Hashable & FetchableRecord>(_ type: T.Type, _ table: String, _ sqlite: PilotTraceDatabase, _ link: PostgresLink) throws {
        let stored = try sqlite.stored(T.self, table: table)
        let rows = try link.query("SELECT * FROM \(table) ORDER BY id")
        #expect(try rows.map { try StoreRowDecoder().decode(T.self, from: $0) } == stored.records, "\(table)")
        #expect(rows.count == stored.raw.count, "\(table)")
        for (pg, lite) in zip(rows, stored.raw) {
            for (column, value) in lite { #expect(pg[column] == value, "\(table).\(column)") }
        }
    }

    @Test("The CHECKs refuse what SQLite's refuse; JSON is not validated (a documented difference)")
    func checks() throws {
        try withMigratedPostgres { link, _ in
            try withDatabase { sqlite, _ in
                _ = try writeEveryTable(sqlite)
                for table in StoreTable.allCases { try Self.copy(table.recordType, table.rawValue, from: sqlite, to: link) }
                let refused: [(table: String, set: String, value: SQLValue)] = [
                    ("analyses", "source", .text("disk")), ("captures", "compressed", .integer(2)),
                    ("flows", "protocol", .text("ftp")), ("flows", "mqtt_role", .text("broker")),
                    ("flows", "handshake_complete", .integer(-1)), ("http_exchanges", "capture_ordinal", .integer(-1)),
                    ("http_exchanges", "response_last_frame", .integer(0)), ("websocket_messages", "kind", .text("data")),
                    ("websocket_messages", "direction", .text("up")), ("mqtt_packets", "qos", .integer(3)),
                    ("mqtt_packets", "version", .text("4.0")), ("mqtt_packets", "retain", .integer(2)),
                    ("mqtt_packets", "first_frame", .integer(0)), ("sessions", "state", .text("gone")),
                    ("timeline_events", "ok", .integer(2)), ("timeline_events", "message_kind", .text("tcp")),
                    ("deviations", "severity", .text("fatal")), ("replay_steps", "outcome", .text("odd")),
                    ("replay_steps", "kind", .text("websocket")), ("mqtt_packets", "summary", .null),
                ]
                for (table, column, value) in refused {
                    let sql = "UPDATE \(table) SET \(column) = ? WHERE id = (SELECT min(id) FROM \(table))"
                    #expect(throws: (any Error).self, "SQLite \(table).\(column)") {
                        try sqlite.sqlite!.write { try $0.execute(sql: sql, arguments: [value.databaseValue]) }
                    }
                    let error = #expect(throws: PilotTraceStoreError.self, "PostgreSQL \(table).\(column)") { try link.execute(sql, [value]) }
                    #expect(error?.message.contains("SQLSTATE 23") == true, "\(error?.message ?? "")")
                    // Not the failing row, which holds secrets (the first MQTT packet's password is 70 00 77).
                    #expect(error?.message.contains("Failing row") == false, "\(error?.message ?? "")")
                    #expect(error?.message.contains("700077") == false)
                }
                // Table-level CHECKs: a message kind needs a message id, an exchange a method or a status.
                #expect(throws: PilotTraceStoreError.self) {
                    try link.execute("UPDATE timeline_events SET message_id = NULL WHERE message_kind IS NOT NULL")
                }
                #expect(throws: PilotTraceStoreError.self) { try link.execute("UPDATE http_exchanges SET method = NULL, status = NULL") }
                // Foreign keys.
                #expect(throws: PilotTraceStoreError.self) { try link.execute("UPDATE flows SET analysis_id = 999999") }

                let json = "UPDATE sessions SET summary_json = 'not json' WHERE id = (SELECT min(id) FROM sessions)"
                #expect(throws: (any Error).self) { try sqlite.sqlite!.write { try $0.execute(sql: json) } }
                try link.execute(json)
            }
        }
    }

    @Test("Batch insert of 20,000 rows, with COPY and with INSERT … RETURNING, reads back the same")
    func batchInsert() throws {
        try withMigratedPostgres { link, _ in
            let analysis = try link.insert(
                table: "analyses", columns: ["key", "created_at", "tool_version"],
                rows: [[.text("k"), .text("2026-01-01T00:00:00Z"), .text("t")]], returning: "id")
            let analysisID = try #require(analysis.first)
            let flow = FlowRow(
                id: 1, analysisID: analysisID, connectionNumber: 1, client: "a:1", server: "b:2", roleEvidence: "syn",
                protocol: "mqtt", classificationEvidence: "port", firstTime: 0, lastTime: 1, closeReason: "fin",
                handshakeComplete: true)
            try link.insert([flow], into: "flows")

            func packet(_ i: Int) -> MQTTPacketRow {
                let payload: Data = i % 11 == 0 ? Data() : Data((0..<(i % 64)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ i) })
                let json: String? = i % 2 == 0 ? #"{"tid":"\#(i)","é":"\\"}"# : nil
                let retain: Bool? = i % 7 == 0 ? nil : i % 2 == 0
                let versions = ["3.1", "3.1.1", "5.0"]
                return MQTTPacketRow(
                    id: Int64(i + 1), analysisID: analysisID, flowID: 1, direction: i % 2 == 0 ? "to-server" : "to-client",
                    time: 1_700_000_000 + Double(i) / 7, overWebSocket: i % 3 == 0, version: versions[i % 3],
                    versionAssumed: i % 5 == 0, type: "PUBLISH", packetID: i % 4 == 0 ? nil : i, qos: i % 3, retain: retain,
                    dup: false, topic: "thing/product/GW\(i % 50)/osd\t\\n\n", payload: payload, payloadLength: i,
                    payloadJSON: json, clientID: "pilot-\(i % 9)", username: nil, password: i % 13 == 0 ? Data([0, 1, 2]) : nil,
                    keepAlive: 60, returnCode: nil, summary: "PUBLISH \(i) 'quoted' \"double\"", captureOrdinal: 0,
                    firstFrame: i + 1, lastFrame: i + 2)
            }
            // COPY (nothing returned).
            let copied = (0..<20_000).map(packet)
            try link.insert(copied, into: "mqtt_packets")
            #expect(try link.count("mqtt_packets") == 20_000)
            #expect(try link.records(MQTTPacketRow.self, "mqtt_packets") == copied)

            // Multi-row INSERT, ids from the identity, returned in row order.
            try link.execute("DELETE FROM mqtt_packets")
            let columns = try StoreRowEncoder().encode(copied[0]).map(\.column).filter { $0 != "id" }
            let rows = try copied.map { try StoreRowEncoder().encode($0).filter { $0.column != "id" }.map(\.value) }
            let ids = try link.insert(table: "mqtt_packets", columns: columns, rows: rows, returning: "id")
            #expect(ids.count == 20_000)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count)
            let inserted = try link.records(MQTTPacketRow.self, "mqtt_packets")
            #expect(inserted.map(\.id) == ids)
            #expect(inserted.map(\.summary) == copied.map(\.summary))
            var renumbered = copied
            for i in renumbered.indices { renumbered[i].id = ids[i] }
            #expect(inserted == renumbered)

            // The INSERT path without RETURNING (no COPY) stores the same.
            try link.execute("DELETE FROM mqtt_packets")
            link.copyEnabled = false
            defer { link.copyEnabled = true }
            try link.insert(copied, into: "mqtt_packets")
            #expect(try link.records(MQTTPacketRow.self, "mqtt_packets") == copied)
        }
    }

    @Test("A batch with a bad row stores nothing")
    func batchIsAtomic() throws {
        try withMigratedPostgres { link, _ in
            // The eighth row breaks a CHECK.
            let rows: [[SQLValue]] = (0..<10).map { [.text("k\($0)"), .text("c"), .text("t"), .text($0 == 7 ? "bogus" : "capture")] }
            for copy in [true, false] {
                link.copyEnabled = copy
                let error = #expect(throws: PilotTraceStoreError.self) {
                    try link.insert(
                        table: "analyses", columns: ["key", "created_at", "tool_version", "source"], rows: rows,
                        returning: copy ? nil : "id")
                }
                #expect(error?.kind == .writeFailed)
                #expect(error?.message.contains("SQLSTATE 23") == true, "\(error?.message ?? "")")
                let stored = try link.count("analyses")
                #expect(stored == 0)
            }
            link.copyEnabled = true
            let widths = #expect(throws: PilotTraceStoreError.self) {
                try link.insert(table: "analyses", columns: ["key", "created_at"], rows: [[.text("k")]])
            }
            #expect(widths?.kind == .invalidRow)
            let injection = #expect(throws: PilotTraceStoreError.self) {
                try link.insert(table: "analyses\"; DROP TABLE flows; --", columns: ["key"], rows: [[.text("k")]])
            }
            #expect(injection?.kind == .invalidRow)
        }
    }

    @Test("reserveIDs from two links at once gives disjoint ids, which later default ids do not reuse")
    func reserveIDs() throws {
        try withMigratedPostgres { link, server in
            let other = try PostgresLink.connect(link.location)
            defer { other.close() }
            let links = [link, other]
            let reserved = Reserved()
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                for _ in 0..<5 {
                    do { reserved.add(try PostgresSchema.reserveIDs(links[i], table: "flows", count: 1_000)) } catch { failures.add(error) }
                }
            }
            #expect(failures.all.isEmpty, "\(failures.all)")
            #expect(reserved.all.count == 10_000)
            #expect(Set(reserved.all).count == 10_000)
            #expect(try PostgresSchema.reserveIDs(link, table: "flows", count: 0) == [])

            let analysis = try link.insert(
                table: "analyses", columns: ["key", "created_at", "tool_version"],
                rows: [[.text("k"), .text("c"), .text("t")]], returning: "id")
            let next = try link.insert(
                table: "flows",
                columns: [
                    "analysis_id", "connection_number", "client", "server", "role_evidence", "protocol", "classification_evidence",
                    "classification_note", "first_time", "last_time", "close_reason", "handshake_complete", "up_packets", "up_bytes",
                    "up_payload_bytes", "up_gaps", "up_gap_bytes", "up_retransmissions", "down_packets", "down_bytes",
                    "down_payload_bytes", "down_gaps", "down_gap_bytes", "down_retransmissions",
                ],
                rows: [
                    [
                        .integer(analysis[0]), .integer(1), .text("c"), .text("s"), .text("syn"), .text("unknown"),
                        .text("e"), .text(""), .real(0), .real(1), .text("fin"), .integer(1),
                    ] + Array(repeating: .integer(0), count: 12)
                ],
                returning: "id")
            #expect(next.count == 1 && !Set(reserved.all).contains(next[0]))

            try link.execute("CREATE TABLE plain (id BIGINT)")
            let noSequence = #expect(throws: PilotTraceStoreError.self) { try PostgresSchema.reserveIDs(link, table: "plain", count: 1) }
            #expect(noSequence?.kind == .invalidRow)
            let noTable = #expect(throws: PilotTraceStoreError.self) { try PostgresSchema.reserveIDs(link, table: "nothing", count: 1) }
            #expect(noTable?.kind == .writeFailed)
        }
    }
}

/// Errors collected from concurrent work.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [any Error] = []
    func add(_ error: any Error) { lock.withLock { errors.append(error) } }
    var all: [any Error] { lock.withLock { errors } }
}

/// Ids collected from concurrent work.
final class Reserved: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [Int64] = []
    func add(_ more: [Int64]) { lock.withLock { ids += more } }
    var all: [Int64] { lock.withLock { ids } }
}

/// A TCP listener on 127.0.0.1 that never accepts: the kernel completes the handshake, nobody answers.
struct SilentListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    func close() { Glibc.close(fd) }
}

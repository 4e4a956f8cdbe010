import Foundation

/// A pilottrace database on a PostgreSQL server: `--db postgresql://user[:password]@host[:port]/dbname`.
///
/// The schema means the same as on SQLite (docs/schema.md, "PostgreSQL"): ``PostgresSchema`` creates and migrates it
/// (once, under an advisory lock, however many processes open the database at once); ids come from identity columns
/// and their sequences; writes are batched (``AnalysisWriter``: `COPY` for messages, timelines and findings).
extension PilotTraceDatabase {
    /// Connects to the server and migrates the schema (writing), or checks it is current and makes the connection
    /// read-only (`default_transaction_read_only`).
    static func openPostgres(url: String, access: Access) throws -> PilotTraceDatabase {
        let location = try PostgresLocation(url: url)
        let link = try PostgresLink.connect(location)
        do {
            switch access {
            case .readWrite:
                try PostgresSchema.migrate(link)
            case .readOnly:
                try checkPostgresSchema(link, location)
                try link.execute("SET default_transaction_read_only = on")
            }
        } catch {
            link.close()
            throw error
        }
        return PilotTraceDatabase(path: location.redacted, engine: .postgres(link), isReadOnly: access == .readOnly)
    }

    /// Refuses, without writing, a database that is not pilottrace's, is empty, or needs a migration.
    static func checkPostgresSchema(_ link: PostgresLink, _ location: PostgresLocation) throws {
        let marked = try link.query("SELECT to_regclass('pilottrace_migrations') IS NOT NULL AS marked").first?["marked"]
        guard marked == .integer(1) else {
            let tables = try link.query("SELECT count(*) AS n FROM pg_tables WHERE schemaname = current_schema()").first?["n"]
            if tables == .integer(0) {
                throw PilotTraceStoreError(
                    kind: .cannotOpen, path: location.redacted,
                    message: "holds no pilottrace data yet (an empty database); a writing command (analyze, capture, proxy) creates the schema")
            }
            throw PilotTraceStoreError(
                kind: .notAPilotTraceDatabase, path: location.redacted,
                message: "is a PostgreSQL database that pilottrace did not create (it has tables but no pilottrace schema); give another --db")
        }
        let applied = Set(
            try link.query("SELECT name FROM pilottrace_migrations").compactMap { row -> String? in
                if case .text(let name) = row["name"] { name } else { nil }
            })
        let known = Set(PostgresSchema.migrationNames)
        if !applied.isSubset(of: known) {
            throw PilotTraceStoreError(
                kind: .newerSchema, path: location.redacted,
                message: "the database was written by a newer pilottrace (unknown schema migrations); use that version")
        }
        if applied != known {
            throw PilotTraceStoreError(
                kind: .olderSchema, path: location.redacted,
                message: "the database was written by an older pilottrace; a writing command (analyze, capture, proxy) upgrades it")
        }
    }
}

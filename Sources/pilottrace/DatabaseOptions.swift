import ArgumentParser
import Foundation
import PilotTraceStore

/// `--db`, shared by the commands that use the store.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("db"),
        help: ArgumentHelp(
            "The database: an SQLite file, or postgresql://user[:password]@host[:port]/dbname (default: $PILOTTRACE_DB, else ./pilottrace.sqlite).",
            valueName: "path|url"))
    var path: String?

    /// The database as given: a file path or a PostgreSQL URL (which may hold a password: never print it).
    var resolved: String { PilotTraceDatabase.resolvePath(option: path, environment: ProcessInfo.processInfo.environment) }

    /// Whether the database is a PostgreSQL server rather than a file.
    var isServer: Bool { PostgresLocation.isURL(resolved) }

    /// The database as messages name it: the file path, or the URL with its password masked.
    var shown: String { isServer ? ((try? PostgresLocation(url: resolved))?.redacted ?? "the PostgreSQL URL given") : resolved }

    /// Opens the database for writing, creating it when missing.
    func open() throws -> PilotTraceDatabase {
        do {
            return try PilotTraceDatabase.open(path: resolved)
        } catch {
            throw Failure(shown, error)
        }
    }

    /// Opens an existing database for writing (replay stores its results beside the sessions it re-drives); a missing
    /// one is a clear error, not an empty new file.
    func openExisting() throws -> PilotTraceDatabase {
        guard isServer || FileManager.default.fileExists(atPath: resolved) else {
            throw Failure("\(resolved): no such database; run `pilottrace analyze <capture> --db \(resolved)` first")
        }
        return try open()
    }

    /// Opens an existing database read-only, for the query commands: nothing is written (a read-only file works).
    func openReadOnly() throws -> PilotTraceDatabase {
        do {
            return try PilotTraceDatabase.open(path: resolved, access: .readOnly)
        } catch {
            throw Failure(shown, error)
        }
    }

    /// Whether the database file exists yet (a command that fails to start removes a file it created).
    var exists: Bool { isServer || FileManager.default.fileExists(atPath: resolved) }

    /// A command that could not start: the analysis it began is removed, and the database file too when the command
    /// created it (nothing is left behind by a failed start).
    func discard(_ db: PilotTraceDatabase, analysis: Int64, created: Bool) {
        _ = try? db.deleteAnalysis(id: analysis)
        try? db.close()
        guard created, !isServer else { return }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: resolved + suffix) }
    }
}

/// `--site`, for the commands that record traffic.
struct SiteOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The capture point's name, stored with the analysis (default: this host's name).", valueName: "name"))
    var site: String?

    var resolved: String { site.flatMap { $0.isEmpty ? nil : $0 } ?? PilotTraceDatabase.defaultSite }
}

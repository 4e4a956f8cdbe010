import ArgumentParser
import Foundation
import PilotTraceStore

/// `--db`, shared by the commands that use the store.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: ArgumentHelp(
        "The SQLite database (default: $PILOTTRACE_DB, else ./pilottrace.sqlite).", valueName: "path"))
    var path: String?

    var resolved: String { PilotTraceDatabase.resolvePath(option: path, environment: ProcessInfo.processInfo.environment) }

    func open() throws -> PilotTraceDatabase {
        do {
            return try PilotTraceDatabase.open(path: resolved)
        } catch {
            throw Failure(resolved, error)
        }
    }

    /// Opens an existing database for reading; a missing one is a clear error, not an empty new file.
    func openExisting() throws -> PilotTraceDatabase {
        guard FileManager.default.fileExists(atPath: resolved) else {
            throw Failure("\(resolved): no such database; run `pilottrace analyze <capture> --db \(resolved)` first")
        }
        return try open()
    }

    /// Whether the database file exists yet (a command that fails to start removes a file it created).
    var exists: Bool { FileManager.default.fileExists(atPath: resolved) }

    /// A command that could not start: the analysis it began is removed, and the database file too when the command
    /// created it (nothing is left behind by a failed start).
    func discard(_ db: PilotTraceDatabase, analysis: Int64, created: Bool) {
        _ = try? db.deleteAnalysis(id: analysis)
        try? db.close()
        guard created else { return }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: resolved + suffix) }
    }
}

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
            throw CleanExit.message("error: \(error)")
        }
    }

    /// Opens an existing database for reading; a missing one is a clear error, not an empty new file.
    func openExisting() throws -> PilotTraceDatabase {
        guard FileManager.default.fileExists(atPath: resolved) else {
            warn("error: \(resolved): no such database; run `pilottrace analyze <capture> --db \(resolved)` first")
            throw ExitCode(1)
        }
        do {
            return try PilotTraceDatabase.open(path: resolved)
        } catch {
            warn("error: \(error)")
            throw ExitCode(1)
        }
    }
}

import Foundation
import GRDB

/// A pilottrace SQLite database: the schema, the analysis writer and the read queries.
///
/// The database is opened in WAL mode (a GRDB `DatabasePool`: one writer, concurrent readers) with foreign keys on,
/// and migrated to the current schema when opened. See `docs/schema.md` for the tables.
///
/// Ids of flows, sessions and messages are assigned by the ``AnalysisWriter`` from `max(id) + 1` read when the
/// analysis begins, so **one process at a time** may write analyses to a database (any number may read).
///
/// ## Topics
/// ### Opening
/// - ``open(path:)``
/// - ``resolvePath(option:environment:)``
/// ### Writing
/// - ``beginAnalysis(key:captures:toolVersion:createdAt:batchSize:)``
/// - ``AnalysisWriter``
/// - ``deleteAnalysis(id:)``
/// ### Reading
/// - ``analyses()``
/// - ``latestAnalysis()``
/// - ``sessions(analysisID:)``
/// - ``timeline(sessionID:)``
/// - ``timelines(sessionIDs:)``
/// - ``counts(analysisID:)``
public struct PilotTraceDatabase: Sendable {
    /// The database file.
    public let path: String
    let pool: DatabasePool

    /// The default database file when neither `--db` nor `$PILOTTRACE_DB` is given.
    public static let defaultPath = "./pilottrace.sqlite"

    /// The environment variable that names the database when `--db` is not given.
    public static let environmentVariable = "PILOTTRACE_DB"

    /// The database a command uses: the `--db` option, else `$PILOTTRACE_DB`, else `./pilottrace.sqlite`.
    ///
    /// - Parameters:
    ///   - option: The value of `--db`, if given. An empty value counts as not given.
    ///   - environment: The process environment (`ProcessInfo.processInfo.environment`).
    public static func resolvePath(option: String?, environment: [String: String]) -> String {
        if let option, !option.isEmpty { return option }
        if let fromEnvironment = environment[environmentVariable], !fromEnvironment.isEmpty { return fromEnvironment }
        return defaultPath
    }

    /// Opens (creating it and its folder if needed) and migrates the pilottrace database at `path`.
    ///
    /// - Throws: ``PilotTraceStoreError`` naming `path`: `.cannotOpen` when the folder or file cannot be created or
    ///   opened, `.notAPilotTraceDatabase` when the file is not an SQLite database or is one that pilottrace did not
    ///   create, `.newerSchema` when a newer pilottrace migrated it.
    public static func open(path: String) throws -> PilotTraceDatabase {
        guard !path.isEmpty else {
            throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: "no database path given")
        }
        let fileManager = FileManager.default
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent()
        do {
            try fileManager.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw PilotTraceStoreError(
                kind: .cannotOpen, path: path,
                message: "cannot create the database folder \(folder.path): \(reason(error))")
        }
        var isFolder: ObjCBool = false
        if fileManager.fileExists(atPath: path, isDirectory: &isFolder) {
            if isFolder.boolValue {
                throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: "is a folder, not a database file")
            }
            try checkExistingFile(path: path)
        }

        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = "pilottrace"
        configuration.prepareDatabase { db in
            // 16 KiB pages for a new database (an existing one keeps its size; SQLite ignores this then): a quarter of
            // the pages, writes and B-tree levels of the 4 KiB default for the same rows, which took a fifth off
            // storing a 1.4 GB capture.
            try db.execute(sql: "PRAGMA page_size = \(Self.pageSize)")
            // WAL + NORMAL: a power loss may lose the last transactions, never corrupts the file. WAL syncs only at
            // checkpoints: one every 4,096 pages (64 MiB with 16 KiB pages) instead of SQLite's 1,000.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 4096")
            // 32 MiB of page cache (SQLite's default is 2 MiB): the index pages an analysis appends to (one run of
            // mqtt_packets_by_flow per open connection) stay in memory instead of being read back from the file for
            // every row, which made storing grow faster than the capture. 64 MiB was no faster on a 1.4 GB capture
            // with 4,000 devices online at once (16 MiB was 10 % slower) and cost 33 MB more at the peak.
            try db.execute(sql: "PRAGMA cache_size = -32768")
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw PilotTraceStoreError(
                kind: .cannotOpen, path: path, message: "cannot open the database: \(reason(error))")
        }
        let migrator = Self.migrator
        do {
            if try pool.read({ try migrator.hasBeenSuperseded($0) }) {
                throw PilotTraceStoreError(
                    kind: .newerSchema, path: path,
                    message: "the database was written by a newer pilottrace (unknown schema migrations); "
                        + "use that version or another --db")
            }
            try migrator.migrate(pool)
        } catch let error as PilotTraceStoreError {
            throw error
        } catch {
            throw PilotTraceStoreError(
                kind: .cannotOpen, path: path, message: "cannot prepare the database schema: \(reason(error))")
        }
        return PilotTraceDatabase(path: path, pool: pool)
    }

    /// Checkpoints the WAL into the file and closes the database's connections, readers first, so the writer is the
    /// last and removes the WAL: the file is whole on its own (a process that exits without this leaves the WAL beside
    /// it, up to a hundred MB). Throws when a connection is still in use.
    public func close() throws {
        do {
            try pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
            pool.invalidateReadOnlyConnections()
            try pool.close()
        } catch {
            throw PilotTraceStoreError(kind: .writeFailed, path: path, message: "cannot close the database: \(Self.reason(error))")
        }
    }

    /// The page size of a new database, in bytes.
    static let pageSize = 16_384

    /// Refuses, without writing to it, a file that is not an SQLite database or is another program's database.
    private static func checkExistingFile(path: String) throws {
        let header: Data
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            header = try handle.read(upToCount: 16) ?? Data()
        } catch {
            throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: "cannot read the file: \(reason(error))")
        }
        if header.isEmpty { return }  // An empty file is an empty database: it becomes a pilottrace database.
        // https://www.sqlite.org/fileformat.html §1.3.1: the header string.
        guard header == Data("SQLite format 3\0".utf8) else {
            throw PilotTraceStoreError(
                kind: .notAPilotTraceDatabase, path: path,
                message: "is not a pilottrace database (not an SQLite database at all); "
                    + "give another --db path or remove the file")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let (applicationID, objects): (Int32, Int)
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            (applicationID, objects) = try queue.read { db in
                (try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                 try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0)
            }
            try queue.close()
        } catch {
            throw PilotTraceStoreError(
                kind: .notAPilotTraceDatabase, path: path,
                message: "is not a readable pilottrace database: \(reason(error))")
        }
        if applicationID == Self.applicationID || (applicationID == 0 && objects == 0) { return }
        throw PilotTraceStoreError(
            kind: .notAPilotTraceDatabase, path: path,
            message: "is an SQLite database that pilottrace did not create (application_id \(applicationID), "
                + "\(objects) schema objects); give another --db path")
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return error.message.map { "\($0) (SQLite code \(error.extendedResultCode.rawValue))" } ?? "\(error)"
        }
        let error = error as NSError
        return error.localizedFailureReason ?? error.localizedDescription
    }

    // MARK: - Writing

    /// Starts writing an analysis of the input identified by `key`.
    ///
    /// In one transaction: reads the next free id of each table, deletes the analysis with the same key (and, by
    /// cascade, all its rows: analysing the same input again replaces it), inserts the new `analyses` row and its
    /// `captures`.
    ///
    /// - Parameters:
    ///   - key: The input's identity: ``AnalysisRow/key(captureDigests:)`` of the capture files' SHA-256s.
    ///   - captures: The capture files in the order they are read; `ordinal`s must be distinct. `analysisID` and
    ///     `id` are ignored.
    ///   - toolVersion: The pilottrace version writing the analysis.
    ///   - createdAt: When the run started (stored as ISO 8601 UTC).
    ///   - batchSize: How many buffered rows trigger a write.
    ///   - background: Whether full batches are written on the writer's own thread while the caller goes on (an
    ///     analysis run decodes the next batch while SQLite writes this one); ``AnalysisWriter/flush()`` and
    ///     ``AnalysisWriter/finish(frames:frameBytes:firstTime:lastTime:countersJSON:)`` always wait.
    ///   - source: Where the traffic comes from: `capture`, `live`, `proxy` or `replay`.
    /// - Returns: The writer to stream the run's rows into.
    public func beginAnalysis(
        key: String, captures: [CaptureRow], toolVersion: String, createdAt: Date = Date(), batchSize: Int = 5_000,
        background: Bool = false, source: String = "capture"
    ) throws -> AnalysisWriter {
        guard Set(captures.map(\.ordinal)).count == captures.count else {
            throw PilotTraceStoreError(kind: .invalidRow, path: path, message: "two captures have the same ordinal")
        }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        let created = formatter.string(from: createdAt)
        do {
            let (analysisID, captureIDs, next) = try pool.write { db -> (Int64, [Int: Int64], AnalysisWriter.NextIDs) in
                func nextID(_ table: String) throws -> Int64 {
                    try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) + 1 FROM \(table)") ?? 1
                }
                // Read before deleting, so the replaced analysis's ids are not handed out again.
                let next = AnalysisWriter.NextIDs(
                    flow: try nextID("flows"), session: try nextID("sessions"), http: try nextID("http_exchanges"),
                    mqtt: try nextID("mqtt_packets"), webSocket: try nextID("websocket_messages"))
                try db.execute(sql: "DELETE FROM analyses WHERE key = ?", arguments: [key])
                try AnalysisRow(key: key, createdAt: created, toolVersion: toolVersion, source: source).insert(db)
                let analysisID = db.lastInsertedRowID
                var captureIDs: [Int: Int64] = [:]
                for var capture in captures {
                    capture.id = nil
                    capture.analysisID = analysisID
                    try capture.insert(db)
                    captureIDs[capture.ordinal] = db.lastInsertedRowID
                }
                return (analysisID, captureIDs, next)
            }
            return AnalysisWriter(
                database: self, analysisID: analysisID, key: key, captureIDs: captureIDs, next: next,
                batchSize: max(1, batchSize), background: background)
        } catch {
            throw PilotTraceStoreError(
                kind: .writeFailed, path: path, message: "cannot begin the analysis: \(Self.reason(error))")
        }
    }

    /// Deletes an analysis and, by cascade, everything recorded for it.
    ///
    /// - Returns: Whether there was such an analysis.
    @discardableResult
    public func deleteAnalysis(id: Int64) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM analyses WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }
}

import Foundation
import GRDB

/// A pilottrace SQLite database: the schema, the analysis writer and the read queries.
///
/// Opened for writing, the database is in WAL mode (a GRDB `DatabasePool`: one writer at a time, concurrent readers)
/// with foreign keys on, and migrated to the current schema. Any number of processes may write analyses into it at
/// once: every id is assigned by the database (``AnalysisWriter``), every write is a short `BEGIN IMMEDIATE`
/// transaction, and a writer waits up to ``busyTimeout`` for another's. Opened read-only (the query commands), nothing
/// is written, not even a migration. See `docs/schema.md` for the tables.
///
/// ## Topics
/// ### Opening
/// - ``open(path:access:)``
/// - ``resolvePath(option:environment:)``
/// ### Writing
/// - ``beginAnalysis(key:captures:toolVersion:createdAt:batchSize:background:source:site:)``
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
    /// The database file, or the PostgreSQL URL with its password masked (what messages name).
    public let path: String
    let engine: StoreEngine
    /// Whether the database was opened read-only.
    public let isReadOnly: Bool

    /// The SQLite connections, when the database is an SQLite file.
    var sqlite: (any DatabaseWriter)? {
        if case .sqlite(let pool) = engine { return pool }
        return nil
    }

    /// How a command uses the database.
    public enum Access: Sendable {
        /// Analyses are written: the file and its folder are created if needed, the schema migrated.
        case readWrite
        /// Queries only: the file must exist and hold the current schema; nothing is written.
        case readOnly
    }

    /// Seconds a write waits for another process's transaction before it fails.
    public static let busyTimeout: TimeInterval = 30

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

    /// Opens the pilottrace database at `path`, an SQLite file or a `postgresql://` URL (``openPostgres(url:access:)``):
    /// for writing (creating the file and its folder if needed, migrating the schema), or read-only.
    ///
    /// - Throws: ``PilotTraceStoreError`` naming `path`: `.cannotOpen` when the folder or file cannot be created or
    ///   opened (or, read-only, does not exist), `.notAPilotTraceDatabase` when the file is not an SQLite database or is
    ///   one that pilottrace did not create, `.newerSchema` when a newer pilottrace migrated it, `.olderSchema` when it
    ///   is opened read-only and needs a migration first.
    public static func open(path: String, access: Access = .readWrite) throws -> PilotTraceDatabase {
        guard !path.isEmpty else {
            throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: "no database path given")
        }
        if PostgresLocation.isURL(path) { return try openPostgres(url: path, access: access) }
        let fileManager = FileManager.default
        var isFolder: ObjCBool = false
        let exists = fileManager.fileExists(atPath: path, isDirectory: &isFolder)
        if exists && isFolder.boolValue {
            throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: "is a folder, not a database file")
        }
        if access == .readOnly {
            guard exists else {
                throw PilotTraceStoreError(
                    kind: .cannotOpen, path: path, message: "no such database; run `pilottrace analyze <capture> --db \(path)` first")
            }
            try checkExistingFileUnderLock(path: path)
            return try openReadOnly(path: path)
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try fileManager.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw PilotTraceStoreError(
                kind: .cannotOpen, path: path,
                message: "cannot create the database folder \(folder.path): \(reason(error))")
        }
        if exists { try checkExistingFileUnderLock(path: path) }

        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(busyTimeout)
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
            // 8 MiB of page cache (SQLite's default is 2 MiB): the index pages an analysis appends to (one run of
            // mqtt_packets_by_flow per open connection) stay in memory instead of being read back from the file for
            // every row, which made storing grow faster than the capture. It was 32 MiB while every telemetry
            // packet was a row (16 MiB was then 10 % slower on a 1.4 GB capture with 4,000 devices online at once),
            // then 16 MiB with telemetry windows (a third of the rows); 8 MiB is as fast on the bench's shapes and the
            // storms, and peaks 8 MB lower (docs/benchmarks.md, "Login storms, third round").
            try db.execute(sql: "PRAGMA cache_size = -8192")
        }
        let pool: DatabasePool
        do {
            // Under the folder's lock, as closing is: opening puts the file in WAL mode, closing takes it out when no
            // one else uses it, and one process doing either while another did the other failed with "database is
            // locked" (SQLite does not wait for a journal mode change).
            pool = try withFolderLock(folder) { try DatabasePool(path: path, configuration: configuration) }
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
            if try !pool.read({ try migrator.hasCompletedMigrations($0) }) {
                // Several processes may open a new (or older) database at once: GRDB decides what to migrate before it
                // takes SQLite's write lock, so the migrations run under a lock on the folder, one process at a time
                // (a lock on the database file itself could not be released without dropping SQLite's own locks).
                try withFolderLock(folder) { try migrator.migrate(pool) }
            }
        } catch let error as PilotTraceStoreError {
            try? pool.close()
            throw error
        } catch {
            try? pool.close()
            throw PilotTraceStoreError(
                kind: .cannotOpen, path: path, message: "cannot prepare the database schema: \(reason(error))")
        }
        return PilotTraceDatabase(path: path, engine: .sqlite(pool), isReadOnly: false)
    }

    /// A read-only connection (`SQLITE_OPEN_READONLY`): works on a file the user may only read. A database at rest is
    /// in rollback-journal mode (``close()``), which needs nothing beside the file; one being written (WAL) is read
    /// through its `-shm` file.
    private static func openReadOnly(path: String) throws -> PilotTraceDatabase {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "pilottrace.read-only"
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: "cannot open the database read-only: \(reason(error))")
        }
        let migrator = Self.migrator
        do {
            let (superseded, completed) = try queue.read { db in
                (try migrator.hasBeenSuperseded(db), try migrator.hasCompletedMigrations(db))
            }
            if superseded {
                throw PilotTraceStoreError(
                    kind: .newerSchema, path: path,
                    message: "the database was written by a newer pilottrace (unknown schema migrations); use that version")
            }
            if !completed {
                throw PilotTraceStoreError(
                    kind: .olderSchema, path: path,
                    message: "the database was written by an older pilottrace; a writing command (analyze, capture, proxy) "
                        + "upgrades it, with write access to the file and its folder")
            }
        } catch let error as PilotTraceStoreError {
            try? queue.close()
            throw error
        } catch {
            try? queue.close()
            if let error = error as? DatabaseError, error.resultCode == .SQLITE_READONLY {
                throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: walWithoutSHM(error))
            }
            throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: "cannot read the database: \(reason(error))")
        }
        return PilotTraceDatabase(path: path, engine: .sqlite(queue), isReadOnly: true)
    }

    /// Checkpoints the WAL into the file and closes the database's connections, readers first, so the writer is the
    /// last and removes the WAL: the file is whole on its own (a process that exits without this leaves the WAL beside
    /// it, up to a hundred MB). When no other process has the database open, it goes back to rollback-journal mode, so
    /// a user who may only read the file can query it (a WAL database needs a writable `-shm` beside it); the next
    /// writer turns WAL on again. Throws when a connection is still in use.
    public func close() throws {
        let pool: any DatabaseWriter
        switch engine {
        case .postgres(let link):
            link.close()
            return
        case .sqlite(let writer):
            pool = writer
        }
        do {
            guard let pool = pool as? DatabasePool else {
                try pool.close()
                return
            }
            pool.invalidateReadOnlyConnections()
            try Self.withFolderLock(URL(fileURLWithPath: path).deletingLastPathComponent()) {
                try pool.writeWithoutTransaction { db in
                    // Without waiting (busy timeout 0): while another process uses the database, SQLite refuses both,
                    // and the last process to close does them.
                    try db.execute(sql: "PRAGMA busy_timeout = 0")
                    if (try? db.checkpoint(.truncate)) != nil {
                        _ = try? String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE")
                    }
                }
            }
            try pool.close()
        } catch {
            throw PilotTraceStoreError(kind: .writeFailed, path: path, message: "cannot close the database: \(Self.reason(error))")
        }
    }

    /// Runs `body` holding an exclusive `flock` on `folder` (waits for another process's).
    private static func withFolderLock<T>(_ folder: URL, _ body: () throws -> T) throws -> T {
        let fd = Foundation.open(folder.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return try body() }  // no lock to take: SQLite's transactions still protect each migration
        defer { Foundation.close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    /// The page size of a new database, in bytes.
    static let pageSize = 16_384

    /// ``checkExistingFile(path:)`` holding the folder's lock, which a process creating the database holds while it
    /// migrates: a database half-created by another process (GRDB's migration table already there, pilottrace's
    /// `application_id` not yet) is not taken for another program's.
    private static func checkExistingFileUnderLock(path: String) throws {
        try withFolderLock(URL(fileURLWithPath: path).deletingLastPathComponent()) { try checkExistingFile(path: path) }
    }

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
                (
                    try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
                )
            }
            try queue.close()
        } catch let error as DatabaseError where error.resultCode == .SQLITE_READONLY {
            throw PilotTraceStoreError(kind: .cannotOpen, path: path, message: walWithoutSHM(error))
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

    /// A reader that may not write found the database in WAL mode without the `-shm` file it needs.
    static func walWithoutSHM(_ error: DatabaseError) -> String {
        "cannot read the database without write access: it is in WAL mode (a writer is running, or one was killed) and "
            + "a reader needs its -shm file; run a writing command on it once, or give write access to its folder "
            + "(\(reason(error)))"
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? PilotTraceStoreError { return error.message }
        if let error = error as? DatabaseError {
            return error.message.map { "\($0) (SQLite code \(error.extendedResultCode.rawValue))" } ?? "\(error)"
        }
        let error = error as NSError
        return error.localizedFailureReason ?? error.localizedDescription
    }

    // MARK: - Writing

    /// Starts writing an analysis of the input identified by `key`.
    ///
    /// In one short transaction: deletes the analysis with the same key (and, by cascade, all its rows: analysing the
    /// same input again replaces it), inserts the new `analyses` row (state `running`) and its `captures`.
    ///
    /// - Parameters:
    ///   - key: The input's identity: ``AnalysisRow/key(captureDigests:)`` of the capture files' SHA-256s.
    ///   - captures: The capture files in the order they are read; `ordinal`s must be distinct. `analysisID` and
    ///     `id` are ignored.
    ///   - toolVersion: The pilottrace version writing the analysis.
    ///   - createdAt: When the run started (stored as ISO 8601 UTC).
    ///   - batchSize: How many buffered rows trigger a write.
    ///   - background: Whether full batches are written on the writer's own thread while the caller goes on (an
    ///     analysis run decodes the next batch while SQLite writes this one).
    ///   - source: Where the traffic comes from: `capture`, `live`, `proxy` or `replay`.
    ///   - site: The capture point that recorded it (``defaultSite``).
    /// - Returns: The writer to stream the run's rows into.
    public func beginAnalysis(
        key: String, captures: [CaptureRow], toolVersion: String, createdAt: Date = Date(), batchSize: Int = 5_000,
        background: Bool = false, source: String = "capture", site: String = PilotTraceDatabase.defaultSite
    ) throws -> AnalysisWriter {
        guard Set(captures.map(\.ordinal)).count == captures.count else {
            throw PilotTraceStoreError(kind: .invalidRow, path: path, message: "two captures have the same ordinal")
        }
        do {
            let analysisID = try write { tx -> Int64 in
                try tx.execute("DELETE FROM analyses WHERE key = ?", [.text(key)])
                guard
                    let analysisID = try tx.integer(
                        """
                        INSERT INTO analyses (key, created_at, tool_version, source, state, site) VALUES (?, ?, ?, ?, 'running', ?)
                        RETURNING id
                        """, [.text(key), .text(Self.timestamp(createdAt)), .text(toolVersion), .text(source), .text(site)])
                else { throw PilotTraceStoreError(kind: .writeFailed, path: path, message: "no id for the new analysis") }
                for var capture in captures {
                    capture.analysisID = analysisID
                    try tx.execute(RowInserts.upsertCaptureSQL, RowInserts.captureArguments(capture))
                }
                return analysisID
            }
            return AnalysisWriter(database: self, analysisID: analysisID, key: key, batchSize: max(1, batchSize), background: background)
        } catch let error as PilotTraceStoreError {
            throw error
        } catch {
            throw PilotTraceStoreError(
                kind: .writeFailed, path: path, message: "cannot begin the analysis: \(Self.reason(error))")
        }
    }

    /// The capture point name a writer uses when not told: the host name.
    public static var defaultSite: String { ProcessInfo.processInfo.hostName }

    /// `count` fresh ids for `table` (a table whose ids writers take in blocks: flows and messages), from the
    /// database, in increasing order. SQLite: consecutive, from `id_sequences` in one short `BEGIN IMMEDIATE`
    /// transaction; PostgreSQL: from the table's identity sequence. Writers in several processes never share an id.
    func reserveIDs(_ table: String, count: Int) throws -> [Int64] {
        do {
            switch engine {
            case .postgres(let link):
                try checkWritable()
                return try PostgresSchema.reserveIDs(link, table: table, count: count)
            case .sqlite:
                let first = try write { tx in
                    try tx.integer(
                        "UPDATE id_sequences SET next_id = next_id + ? WHERE name = ? RETURNING next_id - ?",
                        [.integer(Int64(count)), .text(table), .integer(Int64(count))])
                }
                guard let first else {
                    throw PilotTraceStoreError(kind: .writeFailed, path: path, message: "no id sequence for table \(table)")
                }
                return Array(first..<(first + Int64(count)))
            }
        } catch let error as PilotTraceStoreError {
            throw error
        } catch {
            throw PilotTraceStoreError(kind: .writeFailed, path: path, message: "cannot reserve \(table) ids: \(Self.reason(error))")
        }
    }

    func checkWritable() throws {
        if isReadOnly {
            throw PilotTraceStoreError(kind: .writeFailed, path: path, message: "the database was opened read-only")
        }
    }

    /// A wall-clock time as the store writes it: ISO 8601 in UTC.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// Deletes an analysis and, by cascade, everything recorded for it.
    ///
    /// - Returns: Whether there was such an analysis.
    @discardableResult
    public func deleteAnalysis(id: Int64) throws -> Bool {
        try write { tx in !(try tx.rows("DELETE FROM analyses WHERE id = ? RETURNING id", [.integer(id)])).isEmpty }
    }
}

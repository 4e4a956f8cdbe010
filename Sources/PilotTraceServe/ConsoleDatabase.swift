import NIOPosix
import PilotTraceStore

/// The store as the console reads it: a read-only database whose blocking calls run on NIO's thread pool, never on
/// an event loop. The engines serialise calls on their one connection, so requests take turns at the database.
public struct ConsoleDatabase: Sendable {
    public let database: PilotTraceDatabase
    let pool: NIOThreadPool

    /// - Parameters:
    ///   - database: The store, opened read-only (``PilotTraceDatabase/open(path:access:)`` with `.readOnly`).
    ///   - pool: Where the blocking calls run.
    public init(_ database: PilotTraceDatabase, pool: NIOThreadPool = .singleton) {
        self.database = database
        self.pool = pool
    }

    /// Runs `body` with the database on the thread pool.
    func run<T: Sendable>(_ body: @escaping @Sendable (PilotTraceDatabase) throws -> T) async throws -> T {
        let database = self.database
        return try await pool.runIfActive { try body(database) }
    }
}

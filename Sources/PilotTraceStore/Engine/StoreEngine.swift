import Foundation
import GRDB

/// The engine behind a ``PilotTraceDatabase``: an SQLite file through GRDB (the default, embedded), or a PostgreSQL
/// server through postgres-nio (``PostgresLink``).
enum StoreEngine: @unchecked Sendable {
    /// A `DatabasePool` when opened for writing, a read-only `DatabaseQueue` otherwise.
    case sqlite(any DatabaseWriter)
    case postgres(PostgresLink)
}

/// Statements inside one read or one transaction, on either engine. SQL is written once, with `?` placeholders, in
/// the dialect both engines share (docs/schema.md lists the differences the store works around).
protocol StoreStatements {
    /// Rows as column name → value.
    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[String: SQLValue]]
    func execute(_ sql: String, _ arguments: [SQLValue]) throws
    /// Rows decoded as records (GRDB's own decoding on SQLite, ``StoreRowDecoder`` with the same rules on PostgreSQL).
    func fetch<T: FetchableRecord & Decodable>(_ type: T.Type, _ sql: String, _ arguments: [SQLValue]) throws -> [T]
}

extension StoreStatements {
    func execute(_ sql: String) throws { try execute(sql, []) }
    func fetch<T: FetchableRecord & Decodable>(_ type: T.Type, _ sql: String) throws -> [T] { try fetch(type, sql, []) }

    /// The first column of the first row, as an integer (a count, an id).
    func integer(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int64? {
        guard let row = try rows(sql, arguments).first, let value = row.values.first else { return nil }
        switch value {
        case .integer(let v): return v
        case .real(let v): return Int64(exactly: v.rounded(.towardZero))
        default: return nil
        }
    }
}

struct SQLiteStatements: StoreStatements {
    let db: Database
    /// Whether each statement is prepared once per connection and kept (GRDB's statement cache): for the writer's
    /// fixed set of single statements, which run once per session (preparing `INSERT INTO sessions … RETURNING id`
    /// each time was 9 % of a login storm's analysis). Not for queries built around id lists, which would fill the
    /// cache with statements used once.
    var cached = false

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[String: SQLValue]] {
        let args = StatementArguments(arguments.map(\.databaseValue))
        let rows = cached ? try Row.fetchAll(db.cachedStatement(sql: sql), arguments: args) : try Row.fetchAll(db, sql: sql, arguments: args)
        return rows.map { row in
            var values: [String: SQLValue] = [:]
            for (name, value) in row { values[name] = SQLValue(value) }
            return values
        }
    }

    func execute(_ sql: String, _ arguments: [SQLValue]) throws {
        let args = StatementArguments(arguments.map(\.databaseValue))
        if cached {
            try db.cachedStatement(sql: sql).execute(arguments: args)
        } else {
            try db.execute(sql: sql, arguments: args)
        }
    }

    func fetch<T: FetchableRecord & Decodable>(_ type: T.Type, _ sql: String, _ arguments: [SQLValue]) throws -> [T] {
        try T.fetchAll(db, sql: sql, arguments: StatementArguments(arguments.map(\.databaseValue)))
    }
}

struct PostgresStatements: StoreStatements {
    let link: PostgresLink

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [[String: SQLValue]] { try link.query(sql, arguments) }

    func execute(_ sql: String, _ arguments: [SQLValue]) throws { try link.execute(sql, arguments) }

    func fetch<T: FetchableRecord & Decodable>(_ type: T.Type, _ sql: String, _ arguments: [SQLValue]) throws -> [T] {
        let decoder = StoreRowDecoder()
        return try link.query(sql, arguments).map { try decoder.decode(T.self, from: $0) }
    }
}

extension SQLValue {
    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let v): self = .integer(v)
        case .double(let v): self = .real(v)
        case .string(let v): self = .text(v)
        case .blob(let v): self = .blob(v)
        }
    }

    var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .integer(let v): v.databaseValue
        case .real(let v): v.databaseValue
        case .text(let v): v.databaseValue
        case .blob(let v): v.databaseValue
        }
    }

    init(_ value: Int?) { self = value.map { .integer(Int64($0)) } ?? .null }
    init(_ value: Int64?) { self = value.map { .integer($0) } ?? .null }
    init(_ value: Double?) { self = value.map { .real($0) } ?? .null }
    init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    init(_ value: Bool?) { self = value.map { .integer($0 ? 1 : 0) } ?? .null }
    init(_ value: Data?) { self = value.map { .blob($0) } ?? .null }
}

extension PilotTraceDatabase {
    /// Runs `body` with statements that only read (one read transaction on SQLite: a consistent picture).
    func read<T>(_ body: (any StoreStatements) throws -> T) throws -> T {
        switch engine {
        case .sqlite(let pool): return try pool.read { try body(SQLiteStatements(db: $0)) }
        case .postgres(let link): return try body(PostgresStatements(link: link))
        }
    }

    /// Runs `body` in one write transaction (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL).
    func write<T>(_ body: (any StoreStatements) throws -> T) throws -> T {
        try checkWritable()
        switch engine {
        case .sqlite(let pool): return try pool.write { try body(SQLiteStatements(db: $0)) }
        case .postgres(let link): return try link.transaction { try body(PostgresStatements(link: link)) }
        }
    }

    /// Records of a read query.
    func fetch<T: FetchableRecord & Decodable>(_ type: T.Type, _ sql: String, _ arguments: [SQLValue] = []) throws -> [T] {
        try read { try $0.fetch(type, sql, arguments) }
    }

    func fetchOne<T: FetchableRecord & Decodable>(_ type: T.Type, _ sql: String, _ arguments: [SQLValue] = []) throws -> T? {
        try fetch(type, sql, arguments).first
    }
}

import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// One connection to a PostgreSQL server, with a blocking API for pilottrace's synchronous code.
///
/// A link owns one NIO event loop (a `MultiThreadedEventLoopGroup` of one thread) and one `PostgresConnection` on
/// it; each call sends its statement and blocks the calling thread until the server has answered. **Calls are
/// serialised**: a recursive lock is held for each call and for the whole body of a ``transaction(_:)``, so a link
/// may be shared between threads, but they take turns (open a link per thread to work in parallel). Never call a
/// link from its own event loop (NIO callbacks of this link), which it would deadlock.
///
/// SQL is written with `?` placeholders, as for SQLite; they are rewritten to `$1`, `$2`, … outside quoted strings,
/// quoted identifiers, dollar-quoted strings and comments (so PostgreSQL's `?` JSON operators cannot be used: write
/// `jsonb_exists(…)` instead). One statement per call: the extended query protocol does not run several.
///
/// Values come back as ``SQLValue``s (``query(_:_:)``): `int2`/`int4`/`int8`/`oid` → `.integer`, `float4`/`float8`/
/// `numeric` → `.real`, `text`/`varchar`/`char(n)`/`name`/`json`/`jsonb`/`uuid` → `.text`, `bytea` → `.blob`, `bool` →
/// `.integer` 0/1, `timestamp`/`timestamptz`/`date` → `.text` in ISO 8601 (UTC), NULL → `.null`; any other type is
/// an error (cast it in the SQL). Bound values go as `int8`, `float8`, `text`, `bytea` and an untyped NULL.
///
/// Every failure is a ``PilotTraceStoreError`` whose path is the location's ``PostgresLocation/redacted`` URL (never
/// the password) and whose message is one line with the server's message and SQLSTATE: `.cannotOpen` when
/// connecting fails (refused, unreachable, timed out, TLS, authentication, no such database), `.writeFailed` when a
/// statement fails, `.invalidRow` when the arguments are inconsistent (placeholder count, row widths).
public final class PostgresLink: @unchecked Sendable {
    /// Where the link is connected.
    public let location: PostgresLocation

    /// How long ``connect(_:timeout:)`` waits for the connection, TLS and authentication, by default.
    public static let defaultConnectTimeout: TimeInterval = 10

    private let group: MultiThreadedEventLoopGroup
    private let connection: PostgresConnection
    private let logger: Logger
    private let lock = NSRecursiveLock()
    private var transactionDepth = 0
    private var closed = false
    /// Whether ``insert(table:columns:rows:returning:)`` may use `COPY … FROM STDIN` (tests turn it off to check the
    /// multi-row INSERT path).
    var copyEnabled = true

    private init(location: PostgresLocation, group: MultiThreadedEventLoopGroup, connection: PostgresConnection, logger: Logger) {
        self.location = location
        self.group = group
        self.connection = connection
        self.logger = logger
    }

    deinit { close() }

    // MARK: - Connecting

    /// Connects (TCP, TLS as `sslmode` says, authentication) to the location's database.
    ///
    /// - Parameter timeout: How long to wait for all of it (at most ``defaultConnectTimeout`` is what pilottrace
    ///   uses); a server that accepts the TCP connection but never answers fails the call after this long.
    /// - Throws: ``PilotTraceStoreError`` `.cannotOpen` naming the redacted URL, e.g. `cannot connect: Connection
    ///   refused`, `cannot connect: password authentication failed for user "pilot" (SQLSTATE 28P01)`, `cannot connect:
    ///   database "x" does not exist (SQLSTATE 3D000)`.
    public static func connect(_ location: PostgresLocation, timeout: TimeInterval = defaultConnectTimeout) throws -> PostgresLink {
        func failure(_ why: String) -> PilotTraceStoreError {
            PilotTraceStoreError(kind: .cannotOpen, path: location.redacted, message: "cannot connect: \(why)")
        }
        let tls: PostgresConnection.Configuration.TLS
        do {
            tls = try tlsConfiguration(location)
        } catch {
            throw failure("cannot set up TLS: \(reason(error))")
        }
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: tls)
        let nanoseconds = Int64((max(0.001, timeout) * 1e9).rounded())
        configuration.options.connectTimeout = .nanoseconds(nanoseconds)

        var logger = Logger(label: "pilottrace.postgres")
        logger.logLevel = .critical  // postgres-nio logs for servers; a command-line tool says its errors itself
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let future = PostgresConnection.connect(
            on: group.next(), configuration: configuration, id: nextConnectionID(), logger: logger)
        // postgres-nio enforces the timeout on the TCP connect and on the startup; this deadline bounds the whole wait
        // in any case (name resolution included).
        let outcome = FutureOutcome<PostgresConnection>()
        future.whenComplete { outcome.complete($0) }
        guard let result = outcome.wait(timeout: timeout) else {
            future.whenSuccess { connection in let _: EventLoopFuture<Void> = connection.close() }
            try? group.syncShutdownGracefully()
            throw failure("timed out after \(seconds(timeout)) s")
        }
        switch result {
        case .success(let connection):
            return PostgresLink(location: location, group: group, connection: connection, logger: logger)
        case .failure(let error):
            try? group.syncShutdownGracefully()
            throw failure(reason(error))
        }
    }

    private static func tlsConfiguration(_ location: PostgresLocation) throws -> PostgresConnection.Configuration.TLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch location.tls {
        case .disable: return .disable
        case .prefer, .require: configuration.certificateVerification = .none
        case .verifyCA: configuration.certificateVerification = .noHostnameVerification
        case .verifyFull: configuration.certificateVerification = .fullVerification
        }
        if let path = location.rootCertificatePath { configuration.trustRoots = .file(path) }
        let context = try NIOSSLContext(configuration: configuration)
        return location.tls == .prefer ? .prefer(context) : .require(context)
    }

    private static let connectionIDs = NSLock()
    nonisolated(unsafe) private static var lastConnectionID = 0
    private static func nextConnectionID() -> Int {
        connectionIDs.withLock {
            lastConnectionID += 1
            return lastConnectionID
        }
    }

    /// Closes the connection and shuts the link's event loop down. Idempotent; later calls fail with `.writeFailed`.
    public func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            _ = try? connection.close().wait()
            try? group.syncShutdownGracefully()
        }
    }

    // MARK: - Statements

    /// Runs one statement and returns its rows, each a dictionary from column name to value (when two columns have the
    /// same name, the last one wins: alias them).
    public func query(_ sql: String, _ binds: [SQLValue] = []) throws -> [[String: SQLValue]] {
        try lock.withLock {
            let result = try run(sql, binds)
            do {
                return try result.rows.map { row in
                    var values: [String: SQLValue] = [:]
                    values.reserveCapacity(row.count)
                    for cell in row { values[cell.columnName] = try Self.value(of: cell) }
                    return values
                }
            } catch {
                throw PilotTraceStoreError(
                    kind: .writeFailed, path: location.redacted, message: "cannot read the result of \(Self.excerpt(sql)): \(Self.reason(error))")
            }
        }
    }

    /// Runs one statement, ignoring any rows it returns.
    public func execute(_ sql: String, _ binds: [SQLValue] = []) throws {
        try lock.withLock { _ = try run(sql, binds) }
    }

    /// Runs `body` in a transaction: `BEGIN`, then `COMMIT` when it returns, `ROLLBACK` when it throws (the error is
    /// rethrown). Nested calls use savepoints, so an inner failure undoes only the inner body. Other threads wait for
    /// the whole body.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try lock.withLock {
            let depth = transactionDepth
            try execute(depth == 0 ? "BEGIN" : "SAVEPOINT pilottrace_\(depth)")
            transactionDepth += 1
            let value: T
            do {
                value = try body()
            } catch {
                transactionDepth -= 1
                if depth == 0 {
                    try? execute("ROLLBACK")
                } else {
                    try? execute("ROLLBACK TO SAVEPOINT pilottrace_\(depth)")
                    try? execute("RELEASE SAVEPOINT pilottrace_\(depth)")
                }
                throw error
            }
            transactionDepth -= 1
            // A failed COMMIT ends the transaction too (PostgreSQL rolls it back).
            try execute(depth == 0 ? "COMMIT" : "RELEASE SAVEPOINT pilottrace_\(depth)")
            return value
        }
    }

    private func run(_ sql: String, _ binds: [SQLValue]) throws -> PostgresQueryResult {
        guard !closed else {
            throw PilotTraceStoreError(kind: .writeFailed, path: location.redacted, message: "the connection is closed")
        }
        let (text, placeholders) = Self.numberedPlaceholders(sql)
        guard placeholders == binds.count else {
            throw PilotTraceStoreError(
                kind: .invalidRow, path: location.redacted,
                message: "\(Self.excerpt(sql)) has \(placeholders) placeholders but \(binds.count) values were given")
        }
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds { Self.append(value, to: &bindings) }
        do {
            return try connection.query(PostgresQuery(unsafeSQL: text, binds: bindings), logger: logger).wait()
        } catch {
            throw PilotTraceStoreError(
                kind: .writeFailed, path: location.redacted, message: "\(Self.excerpt(sql)) failed: \(Self.reason(error))")
        }
    }

    private static func append(_ value: SQLValue, to bindings: inout PostgresBindings) {
        switch value {
        case .null: bindings.appendNull()
        case .integer(let v): bindings.append(v)
        case .real(let v): bindings.append(v)
        case .text(let v): bindings.append(storable(v))
        case .blob(let v): bindings.append(ByteBuffer(bytes: v))
        }
    }

    /// PostgreSQL's text cannot hold U+0000 (SQLite's can): a NUL that came from a capture (a topic, a header) is
    /// stored as U+FFFD, the replacement character, rather than failing the whole batch (docs/schema.md says so).
    static func storable(_ s: String) -> String {
        s.utf8.contains(0) ? s.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : s
    }

    // MARK: - Batch inserts

    /// The most values one statement may bind (the protocol counts them in 16 bits).
    static let maxBindsPerStatement = 65_535
    /// The most rows one multi-row INSERT carries, however narrow the table.
    static let maxRowsPerStatement = 5_000

    /// Inserts `rows` into `table` in one go: with `COPY … FROM STDIN` (text format) when nothing is returned, else
    /// with multi-row `INSERT … VALUES (…), (…) RETURNING` statements of at most 65,535 values each, in one
    /// transaction (a savepoint inside one), so either every row is stored or none is.
    ///
    /// - Parameters:
    ///   - table: A plain table name (letters, digits, `_`); quoted, so case-sensitive.
    ///   - columns: Plain column names, likewise. Columns left out take their defaults (an identity `id` its next value).
    ///   - rows: One value per column each.
    ///   - returning: A column to return for each row, e.g. `"id"` for the ids the identity assigned.
    /// - Returns: The `returning` column's values (integers) in the order of `rows` (PostgreSQL returns a multi-row
    ///   INSERT's rows in VALUES order); empty when `returning` is nil.
    @discardableResult
    public func insert(table: String, columns: [String], rows: [[SQLValue]], returning: String? = nil) throws -> [Int64] {
        func invalid(_ why: String) -> PilotTraceStoreError {
            PilotTraceStoreError(kind: .invalidRow, path: location.redacted, message: "cannot insert into \(table): \(why)")
        }
        for name in [table] + columns + (returning.map { [$0] } ?? []) where !Self.isPlainIdentifier(name) {
            throw invalid("\"\(name)\" is not a plain identifier (letters, digits, _)")
        }
        guard !columns.isEmpty else { throw invalid("no columns given") }
        guard Set(columns).count == columns.count else { throw invalid("a column is named twice") }
        if let bad = rows.firstIndex(where: { $0.count != columns.count }) {
            throw invalid("row \(bad) has \(rows[bad].count) values for \(columns.count) columns")
        }
        guard !rows.isEmpty else { return [] }

        return try lock.withLock {
            guard !closed else {
                throw PilotTraceStoreError(kind: .writeFailed, path: location.redacted, message: "the connection is closed")
            }
            if returning == nil, copyEnabled, #available(macOS 15, *) {
                try copy(table: table, columns: columns, rows: rows)
                return []
            }
            return try transaction { try insertValues(table: table, columns: columns, rows: rows, returning: returning) }
        }
    }

    private func insertValues(table: String, columns: [String], rows: [[SQLValue]], returning: String?) throws -> [Int64] {
        let perStatement = max(1, min(Self.maxRowsPerStatement, Self.maxBindsPerStatement / columns.count))
        let head = "INSERT INTO \"\(table)\" (\(columns.map { "\"\($0)\"" }.joined(separator: ", "))) VALUES "
        let tuple = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        let tail = returning.map { " RETURNING \"\($0)\"" } ?? ""
        var ids: [Int64] = []
        ids.reserveCapacity(returning == nil ? 0 : rows.count)
        var start = 0
        while start < rows.count {
            let end = min(rows.count, start + perStatement)
            let sql = head + Array(repeating: tuple, count: end - start).joined(separator: ", ") + tail
            let binds = Array(rows[start..<end].joined())
            if let returning {
                for row in try query(sql, binds) {
                    guard case .integer(let id)? = row[returning] else {
                        throw PilotTraceStoreError(
                            kind: .writeFailed, path: location.redacted,
                            message: "INSERT INTO \(table) … RETURNING \(returning) gave \(row[returning]?.kindName ?? "no value"), not an integer")
                    }
                    ids.append(id)
                }
            } else {
                try execute(sql, binds)
            }
            start = end
        }
        return ids
    }

    @available(macOS 15, *)
    private func copy(table: String, columns: [String], rows: [[SQLValue]]) throws {
        let chunks = Self.copyText(rows)
        let connection = self.connection, logger = self.logger
        do {
            try blocking {
                try await connection.copyFrom(table: table, columns: columns, logger: logger) { writer in
                    for chunk in chunks { try await writer.write(chunk) }
                }
            }
        } catch {
            throw PilotTraceStoreError(
                kind: .writeFailed, path: location.redacted,
                message: "COPY \(table) (\(rows.count) rows) failed: \(Self.reason(error))")
        }
    }

    /// Runs async postgres-nio work to completion and blocks the calling thread meanwhile. The task runs on the link's
    /// own event loop (its executor preference), never on Swift's cooperative pool, so a caller that is itself on a
    /// cooperative thread (a test) cannot starve it.
    @available(macOS 15, *)
    private func blocking(_ operation: @escaping @Sendable () async throws -> Void) throws {
        let outcome = FutureOutcome<Void>()
        let executor = EventLoopTaskExecutor(group.next())
        Task(executorPreference: executor) {
            do {
                try await operation()
                outcome.complete(.success(()))
            } catch {
                outcome.complete(.failure(error))
            }
        }
        try outcome.wait(timeout: nil)!.get()
    }

    /// Rows as COPY's text format: tab-separated, `\N` for NULL, backslash escapes in texts, bytea as `\\x` + hex,
    /// in chunks of about 1 MiB.
    static func copyText(_ rows: [[SQLValue]], chunkSize: Int = 1 << 20) -> [ByteBuffer] {
        var chunks: [ByteBuffer] = []
        var buffer = ByteBufferAllocator().buffer(capacity: chunkSize + 4096)
        for row in rows {
            for (i, value) in row.enumerated() {
                if i > 0 { buffer.writeInteger(UInt8(ascii: "\t")) }
                switch value {
                case .null:
                    buffer.writeStaticString("\\N")
                case .integer(let v):
                    buffer.writeString(String(v))
                case .real(let v):
                    buffer.writeString(v.isNaN ? "NaN" : v == .infinity ? "Infinity" : v == -.infinity ? "-Infinity" : String(v))
                case .text(let s):
                    var s = storable(s)
                    s.withUTF8 { appendCopyEscaped($0, to: &buffer) }
                case .blob(let data):
                    buffer.writeStaticString("\\\\x")
                    data.withUnsafeBytes { bytes in
                        _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bytes.count * 2) { out in
                            for (i, byte) in bytes.enumerated() {
                                out[2 * i] = hexDigits[Int(byte >> 4)]
                                out[2 * i + 1] = hexDigits[Int(byte & 0x0F)]
                            }
                            return bytes.count * 2
                        }
                    }
                }
            }
            buffer.writeInteger(UInt8(ascii: "\n"))
            if buffer.readableBytes >= chunkSize {
                chunks.append(buffer)
                buffer = ByteBufferAllocator().buffer(capacity: chunkSize + 4096)
            }
        }
        if buffer.readableBytes > 0 { chunks.append(buffer) }
        return chunks
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// A text as COPY's text format wants it: backslash, newline, carriage return and tab escaped with a backslash.
    private static func appendCopyEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to buffer: inout ByteBuffer) {
        var plain = 0
        for j in bytes.indices {
            let escaped: UInt8
            switch bytes[j] {
            case UInt8(ascii: "\\"): escaped = UInt8(ascii: "\\")
            case UInt8(ascii: "\n"): escaped = UInt8(ascii: "n")
            case UInt8(ascii: "\r"): escaped = UInt8(ascii: "r")
            case UInt8(ascii: "\t"): escaped = UInt8(ascii: "t")
            default: continue
            }
            buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[plain..<j]))
            buffer.writeBytes([UInt8(ascii: "\\"), escaped])
            plain = j + 1
        }
        buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[plain...]))
    }

    static func isPlainIdentifier(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    // MARK: - Placeholders

    /// `sql` with each `?` outside quotes and comments replaced by `$1`, `$2`, …, and how many there were. Skips
    /// `'…'` strings (`''` inside; backslash escapes in `E'…'`), `"…"` identifiers, `$tag$…$tag$` strings, `-- …` and
    /// (nested) `/* … */` comments.
    static func numberedPlaceholders(_ sql: String) -> (sql: String, count: Int) {
        let s = Array(sql.utf8)
        guard s.contains(UInt8(ascii: "?")) else { return (sql, 0) }
        var out: [UInt8] = []
        out.reserveCapacity(s.count + 16)
        var count = 0
        var i = 0
        func isIdentifierByte(_ c: UInt8) -> Bool {
            c == UInt8(ascii: "_") || c == UInt8(ascii: "$") || (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c >= 0x80
        }
        func copy(to end: Int) {
            out.append(contentsOf: s[i..<min(end, s.count)])
            i = min(end, s.count)
        }
        while i < s.count {
            let c = s[i]
            let next: UInt8? = i + 1 < s.count ? s[i + 1] : nil
            switch c {
            case UInt8(ascii: "?"):
                count += 1
                out.append(contentsOf: Array("$\(count)".utf8))
                i += 1
            case UInt8(ascii: "'"):
                let backslashes = i > 0 && (s[i - 1] | 0x20) == UInt8(ascii: "e") && (i < 2 || !isIdentifierByte(s[i - 2]))
                var j = i + 1
                while j < s.count {
                    if backslashes && s[j] == UInt8(ascii: "\\") { j += 2; continue }
                    if s[j] == UInt8(ascii: "'") {
                        if j + 1 < s.count && s[j + 1] == UInt8(ascii: "'") { j += 2; continue }
                        break
                    }
                    j += 1
                }
                copy(to: j + 1)
            case UInt8(ascii: "\""):
                var j = i + 1
                while j < s.count {
                    if s[j] == UInt8(ascii: "\"") {
                        if j + 1 < s.count && s[j + 1] == UInt8(ascii: "\"") { j += 2; continue }
                        break
                    }
                    j += 1
                }
                copy(to: j + 1)
            case UInt8(ascii: "-") where next == UInt8(ascii: "-"):
                let j = s[i...].firstIndex(of: UInt8(ascii: "\n")) ?? s.count
                copy(to: j)
            case UInt8(ascii: "/") where next == UInt8(ascii: "*"):
                var depth = 0
                var j = i
                while j < s.count {
                    if s[j] == UInt8(ascii: "/"), j + 1 < s.count, s[j + 1] == UInt8(ascii: "*") {
                        depth += 1; j += 2
                    } else if s[j] == UInt8(ascii: "*"), j + 1 < s.count, s[j + 1] == UInt8(ascii: "/") {
                        depth -= 1; j += 2
                        if depth == 0 { break }
                    } else {
                        j += 1
                    }
                }
                copy(to: j)
            case UInt8(ascii: "$") where i == 0 || !isIdentifierByte(s[i - 1]):
                // $tag$ … $tag$ (tag empty or an identifier not starting with a digit); `$1` is a parameter.
                var j = i + 1
                while j < s.count, isIdentifierByte(s[j]), s[j] != UInt8(ascii: "$") { j += 1 }
                let tagIsValid =
                    j < s.count && s[j] == UInt8(ascii: "$")
                    && (j == i + 1 || !(s[i + 1] >= 0x30 && s[i + 1] <= 0x39))
                guard tagIsValid else { copy(to: i + 1); continue }
                let tag = Array(s[i...j])
                var k = j + 1
                var end = s.count
                while k + tag.count <= s.count {
                    if Array(s[k..<(k + tag.count)]) == tag { end = k + tag.count; break }
                    k += 1
                }
                copy(to: end)
            default:
                if isIdentifierByte(c) {
                    // A whole word at once, so a `$` inside one is not taken for a dollar quote.
                    var j = i + 1
                    while j < s.count, isIdentifierByte(s[j]) { j += 1 }
                    copy(to: j)
                } else {
                    out.append(c)
                    i += 1
                }
            }
        }
        return (String(decoding: out, as: UTF8.self), count)
    }

    // MARK: - Values

    // `ISO8601DateFormatter` is thread-safe for formatting.
    nonisolated(unsafe) private static let iso8601: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter
    }()

    static func value(of cell: PostgresCell) throws -> SQLValue {
        guard var bytes = cell.bytes else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8:
            return .integer(try cell.decode(Int64.self))
        case .oid where cell.format == .binary:
            guard let v = bytes.readInteger(as: UInt32.self) else { throw UnsupportedColumn(cell: cell) }
            return .integer(Int64(v))
        case .float4, .float8:
            return .real(try cell.decode(Double.self))
        case .numeric:
            let decimal = try cell.decode(Decimal.self)
            guard let v = Double("\(decimal)") else { throw UnsupportedColumn(cell: cell) }
            return .real(v)
        case .bool:
            return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .bytea:
            return .blob(Data(bytes.readableBytesView))
        case .text, .varchar, .bpchar, .name, .json, .jsonb, .uuid:
            return .text(try cell.decode(String.self))
        case .timestamp, .timestamptz, .date:
            return .text(iso8601.string(from: try cell.decode(Date.self)))
        default:
            if cell.format == .text, let s = bytes.readString(length: bytes.readableBytes) { return .text(s) }
            throw UnsupportedColumn(cell: cell)
        }
    }

    struct UnsupportedColumn: Error, CustomStringConvertible {
        var column: String
        var type: String
        init(cell: PostgresCell) {
            column = cell.columnName
            type = "\(cell.dataType)"
        }
        var description: String { "column \(column) has the type \(type), which pilottrace does not read (cast it in the SQL)" }
    }

    // MARK: - Errors

    /// A statement's beginning, on one line, for messages (never its bound values).
    static func excerpt(_ sql: String) -> String {
        let words = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return words.count <= 60 ? words : String(words.prefix(57)) + "…"
    }

    /// Why an operation failed, in one line: the server's message and SQLSTATE, or what went wrong on the way. Never a
    /// password, nor a statement's values (postgres-nio's own descriptions are not used: they may carry both).
    static func reason(_ error: any Error) -> String {
        let text: String
        switch error {
        case let error as PSQLError:
            switch error.code {
            case .server:
                let info = error.serverInfo
                var s = info?[.message] ?? "the server reported an error"
                // Not the detail of a CHECK or NOT NULL violation: "Failing row contains (…)" lists the whole row,
                // secrets included (MQTT passwords, tokens in targets).
                if let detail = info?[.detail], !detail.hasPrefix("Failing row contains") {
                    s += " (\(detail.count <= 200 ? detail : String(detail.prefix(199)) + "…"))"
                }
                if let state = info?[.sqlState] { s += " (SQLSTATE \(state))" }
                text = s
            case .connectionError:
                text = error.underlying.map(reason) ?? "the connection failed"
            case .sslUnsupported:
                text = "the server does not accept TLS connections (the URL's sslmode asks for TLS)"
            case .authMechanismRequiresPassword:
                text = "the server asks for a password and the URL gives none"
            case .unsupportedAuthMechanism:
                text = "the server asks for an authentication method postgres-nio does not support"
            case .saslError:
                text = "authentication failed" + (error.underlying.map { " (\(reason($0)))" } ?? "")
            case .serverClosedConnection:
                text = "the server closed the connection" + (error.underlying.map { " (\(reason($0)))" } ?? "")
            case .clientClosedConnection:
                text = "the connection is closed"
            case .tooManyParameters:
                text = "too many values for one statement (at most \(maxBindsPerStatement))"
            default:
                text = "\(error.code)" + (error.underlying.map { " (\(reason($0)))" } ?? "")
            }
        case let error as NIOConnectionError:
            if !error.connectionErrors.isEmpty {
                text = error.connectionErrors.map { "\(reason($0.error)) (\($0.target))" }.joined(separator: "; ")
            } else if error.dnsAError != nil || error.dnsAAAAError != nil {
                text = "cannot resolve the host name \(error.host)"
            } else {
                text = "cannot connect to \(error.host):\(error.port)"
            }
        case let error as IOError:
            text = String(cString: strerror(error.errnoCode))
        case let error as ChannelError:
            if case .connectTimeout(let amount) = error {
                text = "timed out after \(seconds(Double(amount.nanoseconds) / 1e9)) s"
            } else {
                text = "\(error)"
            }
        case let error as PilotTraceStoreError:
            text = error.message
        case let error as UnsupportedColumn:
            text = error.description
        case let error as PostgresDecodingError:
            text = "cannot read column \(error.columnName) (type \(error.postgresType)) as \(error.targetType)"
        default:
            text = "\(error)"
        }
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    private static func seconds(_ t: TimeInterval) -> String {
        t == t.rounded() ? String(Int(t)) : String(format: "%.1f", t)
    }
}

/// A result handed from an event loop (or a task) to a thread that blocks for it.
private final class FutureOutcome<Value>: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<Value, any Error>?

    func complete(_ result: Result<Value, any Error>) {
        condition.withLock {
            if self.result == nil { self.result = result }
            condition.signal()
        }
    }

    /// The result, or nil when `timeout` (seconds) passed first; waits indefinitely when `timeout` is nil.
    func wait(timeout: TimeInterval?) -> Result<Value, any Error>? {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        return condition.withLock {
            while result == nil {
                if let deadline {
                    if !condition.wait(until: deadline) { break }
                } else {
                    condition.wait()
                }
            }
            return result
        }
    }
}

/// Runs Swift concurrency jobs on a NIO event loop, so a task can prefer it over the cooperative pool.
@available(macOS 15, *)
private final class EventLoopTaskExecutor: TaskExecutor {
    private let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}

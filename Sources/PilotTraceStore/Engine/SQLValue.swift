import Foundation

/// One SQL value as the storage engines exchange it: SQLite's five storage classes, which PostgreSQL's column types
/// map onto (``PostgresLink``: integers → `integer`, floating point and numeric → `real`, texts and JSON → `text`,
/// `bytea` → `blob`, booleans → `integer` 0/1).
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)
}

extension SQLValue: CustomStringConvertible {
    /// A short rendering for messages: texts quoted, blobs by length only (they may hold secrets).
    public var description: String {
        switch self {
        case .null: "NULL"
        case .integer(let v): String(v)
        case .real(let v): String(v)
        case .text(let v): "'\(v)'"
        case .blob(let v): "<\(v.count) bytes>"
        }
    }
}

// MARK: - Decoding rows

/// Decodes the store's record structs (``AnalysisRow``, ``FlowRow``, …: `Codable`, snake_case `CodingKeys`) from a row
/// of ``SQLValue``s keyed by column name, with GRDB's rules for `Decodable` records, so a row read from PostgreSQL
/// decodes to what GRDB reads from the same row in SQLite:
///
/// - `Bool` from an integer (or real): nonzero is true;
/// - `Int`, `Int64`, … from an integer, or from a real within range (truncated, as GRDB's `Int64.fromDatabaseValue`);
///   an integer that does not fit the type is an error;
/// - `Double`, `Float` from a real or an integer;
/// - `String` from a text, or from a blob holding UTF-8; `Data` from a blob, or from a text (its UTF-8);
/// - `Optional` is nil for NULL and for a column the row does not have;
/// - any other `Decodable` (`[String]`, `[HTTPHeaderField]`, …) is first tried as a single value (a `String`-backed
///   enum decodes from its text), and when it asks for a keyed or unkeyed container, is JSON-decoded from the column's
///   text (or blob) with GRDB's default JSON decoder (`Data` as base64, dates as milliseconds since 1970, non-conforming
///   floats refused).
///
/// Columns the type does not know are ignored, as GRDB ignores them.
struct StoreRowDecoder {
    init() {}

    func decode<T: Decodable>(_ type: T.Type, from row: [String: SQLValue]) throws -> T {
        try T(from: RowDecoder(row: row, codingPath: []))
    }

    /// GRDB's `FetchableRecord.databaseJSONDecoder(for:)` default.
    static func jsonDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dataDecodingStrategy = .base64
        decoder.dateDecodingStrategy = .millisecondsSince1970
        decoder.nonConformingFloatDecodingStrategy = .throw
        return decoder
    }
}

/// Thrown by a column's single-value decoder when the type asks for a container: decode it from JSON instead.
private struct JSONRequired: Error {}

private struct RowDecoder: Decoder {
    let row: [String: SQLValue]
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(RowKeyedContainer<Key>(row: row, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self, .init(codingPath: codingPath, debugDescription: "a row decodes as a keyed container only"))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(
            SQLValue.self, .init(codingPath: codingPath, debugDescription: "a row decodes as a keyed container only"))
    }
}

private struct RowKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let row: [String: SQLValue]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { row.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { row[key.stringValue] != nil }

    private func column(_ key: Key) throws -> ColumnValue {
        guard let value = row[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key, .init(codingPath: codingPath, debugDescription: "the row has no column \(key.stringValue)"))
        }
        return ColumnValue(value: value, codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { (row[key.stringValue] ?? .null) == .null }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try column(key).bool() }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try column(key).string() }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try column(key).double() }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try column(key).double()) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try column(key).integer(Int.self) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try column(key).integer(Int8.self) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try column(key).integer(Int16.self) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try column(key).integer(Int32.self) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try column(key).integer(Int64.self) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try column(key).integer(UInt.self) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try column(key).integer(UInt8.self) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try column(key).integer(UInt16.self) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try column(key).integer(UInt32.self) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try column(key).integer(UInt64.self) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try column(key).decode(T.self) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        throw DecodingError.typeMismatch(
            type, .init(codingPath: codingPath + [key], debugDescription: "nested containers are read from JSON columns"))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self, .init(codingPath: codingPath + [key], debugDescription: "nested containers are read from JSON columns"))
    }

    func superDecoder() throws -> any Decoder { RowDecoder(row: row, codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RowDecoder(row: row, codingPath: codingPath) }
}

/// One column's value, with GRDB's conversions.
private struct ColumnValue {
    let value: SQLValue
    let codingPath: [any CodingKey]

    private func mismatch<T>(_ type: T.Type) -> DecodingError {
        if value == .null {
            return .valueNotFound(type, .init(codingPath: codingPath, debugDescription: "the column is NULL"))
        }
        return .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "cannot decode \(T.self) from \(value.kindName)"))
    }

    func bool() throws -> Bool {
        switch value {
        case .integer(let v): return v != 0
        case .real(let v): return v != 0
        default: throw mismatch(Bool.self)
        }
    }

    func string() throws -> String {
        switch value {
        case .text(let v): return v
        case .blob(let v):
            guard let s = String(data: v, encoding: .utf8) else { throw mismatch(String.self) }
            return s
        default: throw mismatch(String.self)
        }
    }

    func data() throws -> Data {
        switch value {
        case .blob(let v): return v
        case .text(let v): return Data(v.utf8)
        default: throw mismatch(Data.self)
        }
    }

    func double() throws -> Double {
        switch value {
        case .real(let v): return v
        case .integer(let v): return Double(v)
        default: throw mismatch(Double.self)
        }
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let wide: Int64
        switch value {
        case .integer(let v): wide = v
        case .real(let d) where d >= Double(Int64.min) && d < Double(Int64.max): wide = Int64(d)
        default: throw mismatch(I.self)
        }
        guard let v = I(exactly: wide) else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(wide) does not fit \(I.self)"))
        }
        return v
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == Data.self { return try data() as! T }
        do {
            return try T(from: ColumnDecoder(column: self))
        } catch is JSONRequired {
            let json: Data
            switch value {
            case .text(let s): json = Data(s.utf8)
            case .blob(let d): json = d
            default: throw mismatch(T.self)
            }
            do {
                return try StoreRowDecoder.jsonDecoder().decode(T.self, from: json)
            } catch let error as DecodingError {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: codingPath, debugDescription: "the column's JSON does not decode as \(T.self)",
                        underlyingError: error))
            }
        }
    }
}

/// A column seen as a single value; asking it for a container means the value is JSON.
private struct ColumnDecoder: Decoder, SingleValueDecodingContainer {
    let column: ColumnValue
    var codingPath: [any CodingKey] { column.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> { throw JSONRequired() }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw JSONRequired() }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { column.value == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try column.bool() }
    func decode(_ type: String.Type) throws -> String { try column.string() }
    func decode(_ type: Double.Type) throws -> Double { try column.double() }
    func decode(_ type: Float.Type) throws -> Float { Float(try column.double()) }
    func decode(_ type: Int.Type) throws -> Int { try column.integer(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try column.integer(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try column.integer(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try column.integer(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try column.integer(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try column.integer(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try column.integer(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try column.integer(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try column.integer(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try column.integer(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try column.decode(T.self) }
}

extension SQLValue {
    /// The storage class's name, for messages (never the value: it may be a secret).
    var kindName: String {
        switch self {
        case .null: "NULL"
        case .integer: "an integer"
        case .real: "a real"
        case .text: "a text"
        case .blob: "a blob"
        }
    }
}

// MARK: - Encoding rows

/// Encodes the store's record structs into their columns, in the order the type encodes them, as GRDB's
/// `EncodableRecord` does for `Encodable` records: `Bool` as integer 0/1, integers as integers, `Double`/`Float` as
/// reals, `String` as text, `Data` as blob, nil as NULL (every column is present, NULL or not), and any other value
/// (`[String]`, `[HTTPHeaderField]`, …) as compact JSON text written by `StoreJSON.encoder()` (sorted keys, `/` not
/// escaped): the text the records that hold such values write into SQLite.
///
/// Dates, URLs, UUIDs and Decimals, which GRDB stores in formats of its own, are refused: no record holds one.
struct StoreRowEncoder {
    init() {}

    func encode<T: Encodable>(_ value: T) throws -> [(column: String, value: SQLValue)] {
        let storage = RowStorage()
        try value.encode(to: RowEncoder(storage: storage, codingPath: []))
        return storage.columns
    }

    /// One value as a column's SQL value (a nested value as JSON text).
    static func sqlValue<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> SQLValue {
        switch value {
        case let v as Bool: return .integer(v ? 1 : 0)
        case let v as Int: return .integer(Int64(v))
        case let v as Int8: return .integer(Int64(v))
        case let v as Int16: return .integer(Int64(v))
        case let v as Int32: return .integer(Int64(v))
        case let v as Int64: return .integer(v)
        case let v as UInt: return try unsigned(v, codingPath)
        case let v as UInt8: return .integer(Int64(v))
        case let v as UInt16: return .integer(Int64(v))
        case let v as UInt32: return .integer(Int64(v))
        case let v as UInt64: return try unsigned(v, codingPath)
        case let v as Double: return .real(v)
        case let v as Float: return .real(Double(v))
        case let v as String: return .text(v)
        case let v as Data: return .blob(v)
        case is Date, is URL, is UUID, is Decimal:
            throw EncodingError.invalidValue(
                value,
                .init(
                    codingPath: codingPath, debugDescription: "\(T.self) has no SQL form in the store (GRDB would use a format of its own)"))
        default:
            do {
                let json = try StoreJSON.encoder().encode(value)
                return .text(String(decoding: json, as: UTF8.self))
            } catch let error as EncodingError {
                throw EncodingError.invalidValue(
                    value,
                    .init(
                        codingPath: codingPath, debugDescription: "cannot encode \(T.self) as JSON", underlyingError: error))
            }
        }
    }

    private static func unsigned<U: UnsignedInteger & FixedWidthInteger>(_ v: U, _ codingPath: [any CodingKey]) throws -> SQLValue {
        guard let i = Int64(exactly: v) else {
            throw EncodingError.invalidValue(v, .init(codingPath: codingPath, debugDescription: "\(v) does not fit a 64-bit integer"))
        }
        return .integer(i)
    }
}

private final class RowStorage {
    var columns: [(column: String, value: SQLValue)] = []
    var index: [String: Int] = [:]

    func set(_ column: String, _ value: SQLValue) {
        if let i = index[column] {
            columns[i].value = value
        } else {
            index[column] = columns.count
            columns.append((column, value))
        }
    }
}

private struct RowEncoder: Encoder {
    let storage: RowStorage
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(RowKeyedEncodingContainer<Key>(storage: storage, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        fatalError("a row encodes as a keyed container only (its columns)")
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        fatalError("a row encodes as a keyed container only (its columns)")
    }
}

private struct RowKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let storage: RowStorage
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { storage.set(key.stringValue, .null) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try put(value, key) }

    private func put<T: Encodable>(_ value: T, _ key: Key) throws {
        storage.set(key.stringValue, try StoreRowEncoder.sqlValue(value, codingPath: codingPath + [key]))
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try put(value, key) }

    // Synthesised `encode(to:)` calls these for optionals; the protocol's defaults skip a nil, GRDB stores NULL.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try opt(value, key) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try opt(value, key) }

    private mutating func opt<T: Encodable>(_ value: T?, _ key: Key) throws {
        if let value { try put(value, key) } else { try encodeNil(forKey: key) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        fatalError("nested containers are encoded as JSON values, not through the row's container")
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        fatalError("nested containers are encoded as JSON values, not through the row's container")
    }

    mutating func superEncoder() -> any Encoder { RowEncoder(storage: storage, codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { RowEncoder(storage: storage, codingPath: codingPath) }
}

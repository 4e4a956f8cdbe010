/// A JSON document (RFC 8259), as parsed from an HTTP body or a WebSocket text message.
///
/// Objects keep their members in wire order, duplicates included, because the order is what a person reading a
/// capture expects to see and because re-serialising must not reorder what the device or the cloud sent.
/// Numbers keep their literal text (see ``JSONNumber``), so a 64-bit id survives a round trip.
///
/// ## Topics
/// - ``parse(_:maxDepth:)``
/// - ``compact``
/// - ``pretty(indent:)``
/// - ``subscript(_:)-(String)``
///
/// Not `indirect`: arrays and objects already hold their elements in array storage, so a value is stored inline
/// (32 bytes) instead of each one, down to every `true` and every number, in a heap box of its own.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    /// Members in wire order; duplicate keys are kept.
    case object([(String, JSONValue)])

    /// The default nesting limit of ``parse(_:maxDepth:)``.
    public static let defaultMaxDepth = 256

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            guard a.count == b.count else { return false }
            for (x, y) in zip(a, b) where x.0 != y.0 || x.1 != y.1 { return false }
            return true
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let b): hasher.combine(1); hasher.combine(b)
        case .number(let n): hasher.combine(2); hasher.combine(n)
        case .string(let s): hasher.combine(3); hasher.combine(s)
        case .array(let a): hasher.combine(4); hasher.combine(a)
        case .object(let members):
            hasher.combine(5)
            hasher.combine(members.count)
            for (k, v) in members { hasher.combine(k); hasher.combine(v) }
        }
    }

    /// The value of the first member named `key`, when this is an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// The element at `index`, when this is an array and the index is in range.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let n) = self { return n.value }
        return nil
    }

    /// The number as an exact integer, when its literal is one that fits in an `Int64`.
    public var int64Value: Int64? {
        if case .number(let n) = self { return n.int64Value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
}

/// A JSON number: its value as a `Double` and the literal text it was written as.
///
/// Equality and hashing use the value, so `1`, `1.0` and `1e0` are equal; the literal is what serialisation
/// writes back. Integer literals also compare their text, so two ids that differ beyond `Double`'s 53 bits of
/// precision are not equal.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral
{
    public let value: Double
    /// The number exactly as written (RFC 8259 §6 grammar).
    public let literal: String

    /// A number from its literal; nil when the text is not an RFC 8259 number.
    public init?(literal: String) {
        let bytes = Array(literal.utf8)
        guard JSONParser.numberLength(bytes, from: 0) == bytes.count, let v = Double(literal) else { return nil }
        self.value = v
        self.literal = literal
    }

    /// A number from a value; the literal is Swift's shortest round-tripping form (`1`, not `1.0`, for
    /// integral values). Non-finite values, which JSON cannot represent, are written as `null` by serialisers.
    public init(_ value: Double) {
        self.value = value
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            self.literal = String(Int64(value))
        } else {
            self.literal = value.isFinite ? "\(value)" : "null"
        }
    }

    public init(_ value: Int) {
        self.value = Double(value)
        self.literal = String(value)
    }

    public init(integerLiteral value: Int) { self.init(value) }
    public init(floatLiteral value: Double) { self.init(value) }

    init(validatedLiteral: String, value: Double) {
        self.literal = validatedLiteral
        self.value = value
    }

    var isIntegerLiteral: Bool { !literal.utf8.contains { $0 == UInt8(ascii: ".") || $0 | 0x20 == UInt8(ascii: "e") } }

    public var int64Value: Int64? {
        if isIntegerLiteral { return Int64(literal) }
        guard value.isFinite, value == value.rounded(), abs(value) < 9.2e18 else { return nil }
        return Int64(value)
    }

    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        guard lhs.value == rhs.value else { return false }
        if lhs.isIntegerLiteral, rhs.isIntegerLiteral, abs(lhs.value) >= 9_007_199_254_740_992 {
            return lhs.literal == rhs.literal
        }
        return true
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(value) }

    public var description: String { literal }
}

/// Why a JSON document was rejected, and where (a byte offset into the document).
public struct JSONError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The document ended inside a value.
        public static let unexpectedEnd = Code(rawValue: "unexpected-end")
        /// A byte that cannot start or continue a value here.
        public static let unexpectedCharacter = Code(rawValue: "unexpected-character")
        /// RFC 8259 §2: only whitespace may follow the top-level value.
        public static let trailingCharacters = Code(rawValue: "trailing-characters")
        /// Arrays and objects nest deeper than the parser's limit.
        public static let tooDeep = Code(rawValue: "too-deep")
        /// RFC 8259 §6: a malformed number (leading zero, missing digits, …).
        public static let invalidNumber = Code(rawValue: "invalid-number")
        /// RFC 8259 §7: an unknown escape, or a malformed `\u` escape.
        public static let invalidEscape = Code(rawValue: "invalid-escape")
        /// RFC 8259 §7: a `\u` escape that is an unpaired UTF-16 surrogate.
        public static let invalidSurrogate = Code(rawValue: "invalid-surrogate")
        /// RFC 8259 §7: U+0000 to U+001F must be escaped inside strings.
        public static let controlCharacterInString = Code(rawValue: "control-character-in-string")
        /// RFC 8259 §8.1: the text is not well-formed UTF-8.
        public static let invalidUTF8 = Code(rawValue: "invalid-utf8")
    }

    public var code: Code
    /// Byte offset into the document.
    public var offset: Int
    public var message: String

    public init(_ code: Code, offset: Int, _ message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    public var description: String { "JSON \(code) at byte \(offset): \(message)" }
}

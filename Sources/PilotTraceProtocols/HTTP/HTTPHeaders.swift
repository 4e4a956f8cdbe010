/// The fields of a header or trailer section, in wire order, names in their original case.
///
/// RFC 9110 §5.1: field names are case-insensitive, so every lookup ignores case; the original spelling is kept
/// for display.
public struct HTTPHeaders: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Field: Sendable, Hashable {
        /// The name as sent.
        public var name: String
        /// The value with leading and trailing whitespace removed (RFC 9112 §5.1); obs-folds joined by SP.
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var fields: [Field]

    public init(_ fields: [Field] = []) { self.fields = fields }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.fields = elements.map { Field(name: $0.0, value: $0.1) }
    }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    public mutating func append(name: String, value: String) { fields.append(Field(name: name, value: value)) }

    /// The value of the first field named `name` (any case).
    public subscript(name: String) -> String? {
        let key = name.lowercased()
        return fields.first { $0.name.lowercased() == key }?.value
    }

    /// The values of all fields named `name` (any case), in order.
    public func values(_ name: String) -> [String] {
        let key = name.lowercased()
        return fields.filter { $0.name.lowercased() == key }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// RFC 9110 §5.6.1: the comma-separated list elements of every field named `name`, trimmed and lowercased,
    /// empty elements dropped (for Connection, Transfer-Encoding, Upgrade, Content-Encoding).
    public func tokens(_ name: String) -> [String] {
        values(name).flatMap { value in
            value.split(separator: ",").map { HTTPHeaders.trim(Substring($0)).lowercased() }.filter { !$0.isEmpty }
        }
    }

    static func trim(_ s: Substring) -> String {
        var t = s
        while let f = t.first, f == " " || f == "\t" { t.removeFirst() }
        while let l = t.last, l == " " || l == "\t" { t.removeLast() }
        return String(t)
    }
}

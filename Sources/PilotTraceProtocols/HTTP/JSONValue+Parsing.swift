extension JSONValue {
    /// Parses a complete JSON text (RFC 8259), strictly: no comments, no trailing commas, no leading zeros, no
    /// unescaped control characters, well-formed UTF-8, paired surrogates in `\u` escapes.
    ///
    /// The parser keeps its own stack instead of recursing, so hostile nesting cannot overflow the thread's
    /// stack; `maxDepth` bounds the nesting of the result (and so the recursion of anything that walks it).
    /// - Parameters:
    ///   - bytes: the UTF-8 text.
    ///   - maxDepth: the deepest nesting of arrays and objects accepted.
    /// - Returns: the value.
    /// - Throws: ``JSONError``.
    public static func parse<Bytes: Collection<UInt8>>(
        _ bytes: Bytes, maxDepth: Int = JSONValue.defaultMaxDepth
    ) throws(JSONError) -> JSONValue {
        var parser = JSONParser(bytes: Array(bytes), maxDepth: maxDepth)
        return try parser.parseDocument()
    }

    /// Parses a JSON text given as a string.
    public static func parse(
        _ text: String, maxDepth: Int = JSONValue.defaultMaxDepth
    ) throws(JSONError)
        -> JSONValue
    {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    /// True when the first byte after leading JSON whitespace is `{` or `[`: the cheap test for "this body or
    /// message is probably JSON" used when no media type says so.
    public static func looksLikeJSON<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        for b in bytes {
            switch b {
            case 0x20, 0x09, 0x0A, 0x0D: continue
            case UInt8(ascii: "{"), UInt8(ascii: "["): return true
            default: return false
            }
        }
        return false
    }
}

/// The iterative RFC 8259 parser behind ``JSONValue/parse(_:maxDepth:)``.
struct JSONParser {
    private enum Container {
        case array([JSONValue])
        case object([(String, JSONValue)], key: String)
    }

    let bytes: [UInt8]
    let maxDepth: Int
    private var i = 0
    private var stack: [Container] = []

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = max(0, maxDepth)
    }

    mutating func parseDocument() throws(JSONError) -> JSONValue {
        while true {
            // Parse one value, or open a container and go round again for its first element.
            skipWhitespace()
            guard i < bytes.count else { throw JSONError(.unexpectedEnd, offset: i, "expected a value") }
            var value: JSONValue
            switch bytes[i] {
            case UInt8(ascii: "{"):
                try push()
                i += 1
                skipWhitespace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                    i += 1
                    stack.removeLast()
                    value = .object([])
                } else {
                    let key = try parseKey()
                    stack[stack.count - 1] = .object([], key: key)
                    continue
                }
            case UInt8(ascii: "["):
                try push()
                stack[stack.count - 1] = .array([])
                i += 1
                skipWhitespace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
                    i += 1
                    stack.removeLast()
                    value = .array([])
                } else {
                    continue
                }
            case UInt8(ascii: "\""):
                value = .string(try parseString())
            case UInt8(ascii: "t"):
                try literal("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                value = .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = .number(try parseNumber())
            default:
                throw JSONError(.unexpectedCharacter, offset: i, "unexpected \(Self.describe(bytes[i])), expected a value")
            }

            // Hand the finished value to its container; close containers as long as they end here.
            while true {
                guard let top = stack.popLast() else {
                    skipWhitespace()
                    guard i == bytes.count else {
                        throw JSONError(.trailingCharacters, offset: i, "unexpected \(Self.describe(bytes[i])) after the value")
                    }
                    return value
                }
                skipWhitespace()
                let next: UInt8? = i < bytes.count ? bytes[i] : nil
                switch top {
                case .array(var elements):
                    elements.append(value)
                    if next == UInt8(ascii: ",") {
                        i += 1
                        stack.append(.array(elements))
                    } else if next == UInt8(ascii: "]") {
                        i += 1
                        value = .array(elements)
                        continue
                    } else {
                        throw unexpected(next, expected: "',' or ']'")
                    }
                case .object(var members, let key):
                    members.append((key, value))
                    if next == UInt8(ascii: ",") {
                        i += 1
                        let nextKey = try parseKey()
                        stack.append(.object(members, key: nextKey))
                    } else if next == UInt8(ascii: "}") {
                        i += 1
                        value = .object(members)
                        continue
                    } else {
                        throw unexpected(next, expected: "',' or '}'")
                    }
                }
                break
            }
        }
    }

    private mutating func push() throws(JSONError) {
        guard stack.count < maxDepth else {
            throw JSONError(.tooDeep, offset: i, "nesting deeper than \(maxDepth)")
        }
        stack.append(.array([]))
    }

    /// Parses `"key"` `:` with the whitespace around them.
    private mutating func parseKey() throws(JSONError) -> String {
        skipWhitespace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
            throw unexpected(i < bytes.count ? bytes[i] : nil, expected: "a string key")
        }
        let key = try parseString()
        skipWhitespace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else {
            throw unexpected(i < bytes.count ? bytes[i] : nil, expected: "':'")
        }
        i += 1
        return key
    }

    private func unexpected(_ byte: UInt8?, expected: String) -> JSONError {
        guard let byte else { return JSONError(.unexpectedEnd, offset: i, "expected \(expected)") }
        return JSONError(.unexpectedCharacter, offset: i, "unexpected \(Self.describe(byte)), expected \(expected)")
    }

    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let start = i
        var p = word.utf8Start
        for _ in 0..<word.utf8CodeUnitCount {
            guard i < bytes.count else { throw JSONError(.unexpectedEnd, offset: i, "truncated literal") }
            guard bytes[i] == p.pointee else {
                throw JSONError(.unexpectedCharacter, offset: start, "invalid literal, expected \(word)")
            }
            i += 1
            p += 1
        }
    }

    private mutating func parseNumber() throws(JSONError) -> JSONNumber {
        let start = i
        guard let length = Self.numberLength(bytes, from: start) else {
            throw JSONError(.invalidNumber, offset: start, "malformed number")
        }
        i = start + length
        if i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
            throw JSONError(.invalidNumber, offset: start, "leading zero in number")
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        return JSONNumber(validatedLiteral: text, value: Double(text) ?? .nan)
    }

    /// The length of the RFC 8259 §6 number starting at `start`, or nil when the bytes there are not one.
    static func numberLength(_ bytes: [UInt8], from start: Int) -> Int? {
        var j = start
        func isDigit(_ k: Int) -> Bool { k < bytes.count && bytes[k] >= 0x30 && bytes[k] <= 0x39 }
        if j < bytes.count, bytes[j] == UInt8(ascii: "-") { j += 1 }
        guard isDigit(j) else { return nil }
        if bytes[j] == UInt8(ascii: "0") {
            j += 1
        } else {
            while isDigit(j) { j += 1 }
        }
        if j < bytes.count, bytes[j] == UInt8(ascii: ".") {
            j += 1
            guard isDigit(j) else { return nil }
            while isDigit(j) { j += 1 }
        }
        if j < bytes.count, bytes[j] | 0x20 == UInt8(ascii: "e") {
            j += 1
            if j < bytes.count, bytes[j] == UInt8(ascii: "+") || bytes[j] == UInt8(ascii: "-") { j += 1 }
            guard isDigit(j) else { return nil }
            while isDigit(j) { j += 1 }
        }
        return j - start
    }

    private mutating func parseString() throws(JSONError) -> String {
        let start = i
        i += 1  // the opening quote
        var out: [UInt8] = []
        var escaped = false
        var ascii = true
        var runStart = i
        while true {
            guard i < bytes.count else { throw JSONError(.unexpectedEnd, offset: start, "unterminated string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                // Most strings (keys, SNs, methods) have no escape: made from the bytes in place, and an ASCII one
                // needs no UTF-8 validation.
                if !escaped {
                    let run = bytes[runStart..<i]
                    i += 1
                    if ascii { return String(decoding: run, as: UTF8.self) }
                    guard let s = String(validating: run, as: UTF8.self) else {
                        throw JSONError(.invalidUTF8, offset: start, "string is not well-formed UTF-8")
                    }
                    return s
                }
                out.append(contentsOf: bytes[runStart..<i])
                i += 1
                break
            } else if b == UInt8(ascii: "\\") {
                escaped = true
                out.append(contentsOf: bytes[runStart..<i])
                try parseEscape(into: &out)
                runStart = i
            } else if b < 0x20 {
                throw JSONError(.controlCharacterInString, offset: i, "unescaped control character 0x\(hex2(b)) in string")
            } else {
                if b >= 0x80 { ascii = false }
                i += 1
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else {
            throw JSONError(.invalidUTF8, offset: start, "string is not well-formed UTF-8")
        }
        return s
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws(JSONError) {
        let start = i
        i += 1  // the backslash
        guard i < bytes.count else { throw JSONError(.unexpectedEnd, offset: start, "unterminated escape") }
        let c = bytes[i]
        i += 1
        switch c {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            let unit = try hex4(escapeAt: start)
            var scalarValue = UInt32(unit)
            if (0xD800...0xDBFF).contains(unit) {
                guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                    throw JSONError(.invalidSurrogate, offset: start, "high surrogate \\u\(hex4String(unit)) not followed by a low surrogate")
                }
                let lowStart = i
                i += 2
                let low = try hex4(escapeAt: lowStart)
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw JSONError(.invalidSurrogate, offset: lowStart, "high surrogate followed by \\u\(hex4String(low))")
                }
                scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw JSONError(.invalidSurrogate, offset: start, "unpaired low surrogate \\u\(hex4String(unit))")
            }
            // Cannot fail: surrogates were excluded above and the value is at most 0x10FFFF.
            let scalar = Unicode.Scalar(scalarValue) ?? "\u{FFFD}"
            UTF8.encode(scalar) { out.append($0) }
        default:
            throw JSONError(.invalidEscape, offset: start, "unknown escape \\\(Self.describe(c))")
        }
    }

    private mutating func hex4(escapeAt start: Int) throws(JSONError) -> UInt16 {
        guard bytes.count - i >= 4 else { throw JSONError(.unexpectedEnd, offset: start, "truncated \\u escape") }
        var v: UInt16 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let d: UInt8
            switch b {
            case 0x30...0x39: d = b - 0x30
            case 0x41...0x46: d = b - 0x41 + 10
            case 0x61...0x66: d = b - 0x61 + 10
            default: throw JSONError(.invalidEscape, offset: start, "\\u escape needs four hex digits")
            }
            v = v << 4 | UInt16(d)
            i += 1
        }
        return v
    }

    private func hex4String(_ v: UInt16) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - s.count) + s
    }

    private func hex2(_ v: UInt8) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return s.count == 1 ? "0" + s : s
    }

    static func describe(_ b: UInt8) -> String {
        (0x21...0x7E).contains(b) ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x\(String(b, radix: 16, uppercase: true))"
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact form.
    public var description: String { compact }

    /// The value as JSON without insignificant whitespace, members in their original order, numbers as
    /// their original literals.
    public var compact: String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        write(to: &out, indent: nil, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    /// The value as indented JSON (`"key": value`, one member or element per line).
    /// - Parameter indent: spaces per level.
    public func pretty(indent: Int = 2) -> String {
        var out: [UInt8] = []
        write(to: &out, indent: Array(repeating: UInt8(ascii: " "), count: max(0, indent)), level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes UTF-8 bytes (a `String` grown scalar by scalar cost a sixth of a login storm's analysis).
    private func write(to out: inout [UInt8], indent: [UInt8]?, level: Int) {
        switch self {
        case .null: out += "null".utf8
        case .bool(let b): out += (b ? "true" : "false").utf8
        case .number(let n): out += n.literal.utf8
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let elements):
            guard !elements.isEmpty else {
                out += "[]".utf8
                return
            }
            out.append(UInt8(ascii: "["))
            for (k, element) in elements.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.newline(&out, indent, level + 1)
                element.write(to: &out, indent: indent, level: level + 1)
            }
            JSONValue.newline(&out, indent, level)
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            guard !members.isEmpty else {
                out += "{}".utf8
                return
            }
            out.append(UInt8(ascii: "{"))
            for (k, (key, value)) in members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.newline(&out, indent, level + 1)
                JSONValue.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                if indent != nil { out.append(UInt8(ascii: " ")) }
                value.write(to: &out, indent: indent, level: level + 1)
            }
            JSONValue.newline(&out, indent, level)
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func newline(_ out: inout [UInt8], _ indent: [UInt8]?, _ level: Int) {
        guard let indent else { return }
        out.append(UInt8(ascii: "\n"))
        for _ in 0..<level { out += indent }
    }

    /// `s` as a JSON string literal, escaped as ``compact`` and ``pretty(indent:)`` write strings (see
    /// `writeString`): for code that writes JSON text itself.
    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        writeString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 8259 §7: escapes `"`, `\` and the control characters (`\u001f`, lowercase hex); everything else is
    /// written as UTF-8, runs without escapes copied at once.
    static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var run = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                out += UnsafeBufferPointer(rebasing: bytes[run..<i])
                run = i + 1
                out.append(UInt8(ascii: "\\"))
                switch b {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(b)
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    out += [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xF)]]
                }
            }
            out += UnsafeBufferPointer(rebasing: bytes[run...])
        }
        out.append(UInt8(ascii: "\""))
    }
}

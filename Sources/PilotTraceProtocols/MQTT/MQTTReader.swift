/// Reads MQTT data types (MQTT 3.1.1 §1.5, 5.0 §1.5) from a complete region of a buffer, turning every
/// short read into a typed ``MQTTError`` with the stream offset of the field.
///
/// Built on ``ByteCursor``: the region is known to be complete, so running out of bytes is a malformed packet,
/// not a request for more.
struct MQTTReader {
    var cursor: ByteCursor
    /// Stream offset of `cursor.bytes[0]`.
    let base: Int
    /// Stream offset of the packet's first byte.
    let packetOffset: Int
    /// What the end of the region is, for messages ("packet", "properties").
    let regionName: String

    init(_ bytes: [UInt8], from: Int, to: Int, base: Int, packetOffset: Int, regionName: String = "packet") {
        self.cursor = ByteCursor(bytes, from: from, to: to)
        self.base = base
        self.packetOffset = packetOffset
        self.regionName = regionName
    }

    var offset: Int { base + cursor.index }
    var index: Int { cursor.index }
    var remaining: Int { cursor.remaining }
    var isAtEnd: Bool { cursor.isAtEnd }

    func error(_ code: MQTTError.Code, at offset: Int, _ message: String) -> MQTTError {
        MQTTError(code, offset: offset, packetOffset: packetOffset, message)
    }

    func pastEnd(_ what: String, at offset: Int) -> MQTTError {
        error(.lengthPastEnd, at: offset, "\(what) runs past the end of the \(regionName)")
    }

    /// MQTT 3.1.1 §1.5.1: a byte.
    mutating func u8(_ what: String) throws(MQTTError) -> UInt8 {
        let at = offset
        guard let v = cursor.u8() else { throw pastEnd(what, at: at) }
        return v
    }

    /// MQTT 3.1.1 §1.5.2: a big-endian 16-bit integer.
    mutating func u16(_ what: String) throws(MQTTError) -> UInt16 {
        let at = offset
        guard let v = cursor.u16() else { throw pastEnd(what, at: at) }
        return v
    }

    /// MQTT 5.0 §1.5.3: a big-endian 32-bit integer.
    mutating func u32(_ what: String) throws(MQTTError) -> UInt32 {
        let at = offset
        guard let v = cursor.u32() else { throw pastEnd(what, at: at) }
        return v
    }

    /// MQTT 5.0 §1.5.5: a Variable Byte Integer of at most four bytes.
    mutating func variableByteInteger(_ what: String) throws(MQTTError) -> UInt32 {
        let at = offset
        var value: UInt32 = 0
        for i in 0..<4 {
            guard let b = cursor.u8() else { throw pastEnd(what, at: at) }
            value |= UInt32(b & 0x7F) << (7 * UInt32(i))
            if b & 0x80 == 0 { return value }
        }
        throw error(.malformedVariableByteInteger, at: at, "\(what) continues past four bytes (§1.5.5)")
    }

    /// Raw bytes with a two-byte length prefix (MQTT 5.0 §1.5.6 Binary Data).
    mutating func lengthPrefixed(_ what: String) throws(MQTTError) -> ArraySlice<UInt8> {
        let at = offset
        guard let n = cursor.u16() else { throw pastEnd("\(what) length", at: at) }
        guard let bytes = cursor.take(Int(n)) else {
            throw pastEnd("\(what) (\(n) bytes)", at: at)
        }
        return bytes
    }

    /// MQTT 3.1.1 §1.5.3 / 5.0 §1.5.4: a UTF-8 Encoded String: two-byte length, then well-formed UTF-8 that
    /// must not contain U+0000 (nor surrogates, which well-formed UTF-8 excludes). Errors point at the length.
    mutating func string(_ what: String) throws(MQTTError) -> String {
        let at = offset
        let bytes = try lengthPrefixed(what)
        guard !bytes.contains(0), let s = String(validating: bytes, as: UTF8.self) else {
            throw error(.invalidUTF8, at: at, "\(what) is not well-formed UTF-8 without U+0000 (§1.5.3)")
        }
        return s
    }

    /// MQTT 5.0 §1.5.6 Binary Data, kept up to `cap` bytes.
    mutating func binary(_ what: String, cap: Int) throws(MQTTError) -> MQTTPayload {
        let bytes = try lengthPrefixed(what)
        return MQTTPayload(stored: Array(bytes.prefix(max(0, cap))), length: bytes.count)
    }

    /// MQTT 5.0 §2.2.2: a property block (Property Length, then properties). Returns empty properties for
    /// versions before 5.0 without reading anything.
    mutating func properties(version: MQTTVersion) throws(MQTTError) -> MQTTProperties {
        guard version == .v5 else { return MQTTProperties() }
        let at = offset
        let length = try variableByteInteger("Property Length")
        guard Int(length) <= remaining else {
            throw error(
                .propertyLengthPastEnd, at: at,
                "Property Length \(length) runs past the end of the \(regionName) (\(remaining) bytes left, §2.2.2.1)")
        }
        var block = MQTTReader(
            cursor.bytes, from: cursor.index, to: cursor.index + Int(length), base: base,
            packetOffset: packetOffset, regionName: "properties")
        _ = cursor.skip(Int(length))
        var result: [MQTTProperty] = []
        while !block.isAtEnd {
            let idAt = block.offset
            let raw = try block.variableByteInteger("property identifier")
            guard raw <= 0xFF, let type = MQTTPropertyIdentifier(rawValue: UInt8(raw)).valueType else {
                throw error(.unknownProperty, at: idAt, "property identifier \(raw) is not defined (§2.2.2.2)")
            }
            let id = MQTTPropertyIdentifier(rawValue: UInt8(raw))
            let name = id.name
            let value: MQTTProperty.Value
            switch type {
            case .byte: value = .byte(try block.u8(name))
            case .twoByteInteger: value = .twoByteInteger(try block.u16(name))
            case .fourByteInteger: value = .fourByteInteger(try block.u32(name))
            case .variableByteInteger: value = .variableByteInteger(try block.variableByteInteger(name))
            case .utf8String: value = .string(try block.string(name))
            case .binaryData: value = .binary(Array(try block.lengthPrefixed(name)))
            case .utf8StringPair:
                let key = try block.string("\(name) name")
                value = .stringPair(name: key, value: try block.string("\(name) value"))
            }
            result.append(MQTTProperty(id, value))
        }
        return MQTTProperties(result)
    }

    /// Fails when bytes are left in the region.
    func expectEnd(_ what: String) throws(MQTTError) {
        guard isAtEnd else {
            throw error(.trailingBytes, at: offset, "\(remaining) unexpected byte(s) after the \(what)")
        }
    }
}

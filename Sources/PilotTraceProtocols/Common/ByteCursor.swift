/// Reads big-endian fields from a byte array without copying; every read returns nil when the bytes run out.
///
/// Decoders frame first (is the whole message here?) and then parse the frame with a cursor, so a nil from a
/// cursor inside a complete frame means the frame is malformed, not that more bytes are needed.
public struct ByteCursor {
    public let bytes: [UInt8]
    public private(set) var index: Int
    public let end: Int

    public init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.index = start
        self.end = end ?? bytes.count
    }

    public var remaining: Int { end - index }
    public var isAtEnd: Bool { index >= end }

    public mutating func u8() -> UInt8? {
        guard index < end else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    public mutating func u16() -> UInt16? {
        guard end - index >= 2 else { return nil }
        defer { index += 2 }
        return UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
    }

    public mutating func u32() -> UInt32? {
        guard end - index >= 4 else { return nil }
        defer { index += 4 }
        return UInt32(bytes[index]) << 24 | UInt32(bytes[index + 1]) << 16 | UInt32(bytes[index + 2]) << 8 | UInt32(bytes[index + 3])
    }

    public mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, end - index >= n else { return nil }
        defer { index += n }
        return bytes[index..<(index + n)]
    }

    public mutating func skip(_ n: Int) -> Bool {
        guard n >= 0, end - index >= n else { return false }
        index += n
        return true
    }
}

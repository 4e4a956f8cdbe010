/// Why a capture file could not be read, and where.
public struct CaptureFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case cannotOpen = "cannot-open"
        case notACapture = "not-a-capture"
        case unsupportedVersion = "unsupported-version"
        case corruptHeader = "corrupt-header"
        case absurdLength = "absurd-length"
        case unknownInterface = "unknown-interface"
        case io = "io-error"
        case compression = "compression-error"
    }

    public var path: String
    /// Byte offset in the (decompressed) file where the problem is, when known.
    public var offset: UInt64?
    public var kind: Kind
    public var message: String

    public init(path: String, offset: UInt64?, kind: Kind, message: String) {
        self.path = path
        self.offset = offset
        self.kind = kind
        self.message = message
    }

    public var description: String {
        if let offset { return "\(path): offset \(offset): \(message)" }
        return "\(path): \(message)"
    }
}

import Crypto

/// SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104) for the whole project: capture files' digests, the password digests
/// the session tracker compares, the lab's HS256 tokens. One implementation, swift-crypto's (BoringSSL, with the
/// processor's SHA instructions where it has them); these names keep the project's callers to plain byte arrays.
public struct SHA256: Sendable {
    private var hasher = Crypto.SHA256()

    public init() {}

    /// Adds bytes to the message.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        if let done = bytes.withContiguousStorageIfAvailable({ hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }) {
            return done
        }
        hasher.update(data: Array(bytes))
    }

    /// Adds the bytes at `pointer` (a file read into a buffer) without copying them.
    public mutating func update(bufferPointer: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bufferPointer) }

    /// The 32-byte digest of everything added.
    public func finalize() -> [UInt8] { Array(hasher.finalize()) }

    /// The 32-byte digest of `bytes`.
    public static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }
}

/// HMAC-SHA-256 (RFC 2104, FIPS 198-1).
public enum HMACSHA256 {
    /// The 32-byte authentication code of `message` under `key`.
    public static func authenticationCode(for message: some Collection<UInt8>, key: some Collection<UInt8>) -> [UInt8] {
        Array(HMAC<Crypto.SHA256>.authenticationCode(for: Array(message), using: SymmetricKey(data: Array(key))))
    }
}

/// SHA-1 (FIPS 180-4), for the Community ID of flows, which is defined over it (nothing in pilottrace uses SHA-1 for
/// security).
public enum SHA1 {
    /// The 20-byte digest of `message`.
    public static func hash(_ message: [UInt8]) -> [UInt8] { Array(Insecure.SHA1.hash(data: message)) }
}

import Crypto

/// A TLS record (RFC 8446 §5.1, RFC 5246 §6.2): content type, version and fragment.
public struct TLSRecord: Hashable, Sendable {
    public enum ContentType: UInt8, Sendable {
        case changeCipherSpec = 20, alert = 21, handshake = 22, applicationData = 23
    }

    public var contentType: UInt8
    public var version: UInt16
    public var fragment: [UInt8]

    /// The largest fragment any version allows: 2^14 plus TLS 1.2's 2048 bytes of expansion (RFC 5246 §6.2.3).
    public static let maxFragment = 16_384 + 2048

    /// A record's framing went wrong: these bytes are not TLS records (or not any more).
    public enum FramingError: Error, Hashable, Sendable {
        case notARecord(contentType: UInt8, version: UInt16)
        case tooLong(Int)
    }

    /// Takes one record off the front of `buffer`, from `start`.
    /// - Returns: the record and the index after it, or nil when more bytes are needed.
    /// - Throws: ``FramingError`` when the header is not a TLS record header.
    public static func read(_ buffer: [UInt8], from start: Int = 0) throws(FramingError) -> (TLSRecord, next: Int)? {
        guard buffer.count - start >= 5 else { return nil }
        let type = buffer[start], version = UInt16(buffer[start + 1]) << 8 | UInt16(buffer[start + 2])
        guard (20...24).contains(type), version >> 8 == 3, version & 0xFF <= 4 else { throw .notARecord(contentType: type, version: version) }
        let length = Int(buffer[start + 3]) << 8 | Int(buffer[start + 4])
        guard length <= maxFragment else { throw .tooLong(length) }
        guard buffer.count - start - 5 >= length else { return nil }
        return (TLSRecord(contentType: type, version: version, fragment: Array(buffer[(start + 5)..<(start + 5 + length)])), start + 5 + length)
    }
}

/// One direction's record protection: AEAD keys and the record sequence number.
///
/// TLS 1.3 (RFC 8446 §5.2–5.3): nonce = IV ⊕ sequence number, the record header authenticated, the inner content type
/// after the content and its zero padding. TLS 1.2: AES-GCM (RFC 5288 §3) with the 4-byte salt and the record's 8-byte
/// explicit nonce, ChaCha20-Poly1305 (RFC 7905 §2) with IV ⊕ sequence number; the additional data is sequence number,
/// type, version and plaintext length (RFC 5246 §6.2.3.3).
public struct TLSRecordProtection: Sendable {
    public enum Error: Swift.Error, Hashable, Sendable {
        /// The tag did not verify: the wrong key, or the bytes were damaged.
        case authenticationFailed
        /// The record is too short to hold a tag (and an explicit nonce).
        case tooShort
        /// TLS 1.3: nothing but padding (no content type).
        case noContentType
    }

    public let aead: TLSCipherSuite.AEAD
    public let tls13: Bool
    let key: SymmetricKey
    let iv: [UInt8]
    public private(set) var sequence: UInt64 = 0

    public init(aead: TLSCipherSuite.AEAD, keys: TLSKeySchedule.TrafficKeys, tls13: Bool) {
        self.aead = aead
        self.tls13 = tls13
        key = SymmetricKey(data: keys.key)
        iv = keys.iv
    }

    /// Decrypts and authenticates one protected record.
    /// - Returns: the plaintext and its real content type (TLS 1.3's inner type).
    public mutating func open(_ record: TLSRecord) throws(Error) -> (contentType: UInt8, plaintext: [UInt8]) {
        let tagLength = 16
        let f = record.fragment
        let explicit = !tls13 && aead != .chacha20Poly1305 ? 8 : 0
        guard f.count >= explicit + tagLength else { throw .tooShort }
        var nonce: [UInt8]
        if explicit > 0 {
            nonce = iv + f[0..<8]
        } else {
            nonce = iv
            for i in 0..<8 { nonce[4 + i] ^= UInt8(truncatingIfNeeded: sequence >> (56 - 8 * UInt64(i))) }
        }
        let ciphertext = f[explicit..<(f.count - tagLength)], tag = f[(f.count - tagLength)...]
        var aad: [UInt8]
        if tls13 {
            aad = [record.contentType, UInt8(record.version >> 8), UInt8(record.version & 0xFF), UInt8(f.count >> 8), UInt8(f.count & 0xFF)]
        } else {
            aad = (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (56 - 8 * UInt64($0))) }
            aad += [record.contentType, UInt8(record.version >> 8), UInt8(record.version & 0xFF), UInt8(ciphertext.count >> 8), UInt8(ciphertext.count & 0xFF)]
        }
        var plaintext: [UInt8]
        do {
            switch aead {
            case .aes128GCM, .aes256GCM:
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                plaintext = Array(try AES.GCM.open(box, using: key, authenticating: aad))
            case .chacha20Poly1305:
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                plaintext = Array(try ChaChaPoly.open(box, using: key, authenticating: aad))
            }
        } catch {
            throw .authenticationFailed
        }
        sequence &+= 1
        guard tls13 else { return (record.contentType, plaintext) }
        while let last = plaintext.last, last == 0 { plaintext.removeLast() }
        guard let type = plaintext.popLast() else { throw .noContentType }
        return (type, plaintext)
    }
}

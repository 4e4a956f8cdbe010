import Crypto

/// Record keys from logged secrets: TLS 1.3's HKDF-Expand-Label (RFC 8446 §7.1, §7.3) and TLS 1.2's PRF key block
/// (RFC 5246 §5, §6.3). Pure functions of bytes.
public enum TLSKeySchedule {
    /// One direction's record key and IV.
    public struct TrafficKeys: Sendable, Hashable {
        public var key: [UInt8]
        /// TLS 1.3 and ChaCha20 in TLS 1.2: the 12-byte IV XORed with the sequence number; AES-GCM in TLS 1.2: the
        /// 4-byte implicit salt (the record carries the other 8 bytes).
        public var iv: [UInt8]
    }

    /// RFC 8446 §7.1: HKDF-Expand(secret, HkdfLabel(length, "tls13 " + label, context), length).
    public static func expandLabel(_ secret: [UInt8], _ label: String, context: [UInt8] = [], length: Int, hash: TLSCipherSuite.Hash) -> [UInt8] {
        let fullLabel = Array("tls13 \(label)".utf8)
        var info: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xFF), UInt8(fullLabel.count)]
        info += fullLabel
        info.append(UInt8(context.count))
        info += context
        let out: SymmetricKey
        switch hash {
        case .sha256: out = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: info, outputByteCount: length)
        case .sha384: out = HKDF<SHA384>.expand(pseudoRandomKey: secret, info: info, outputByteCount: length)
        }
        return out.withUnsafeBytes { Array($0) }
    }

    /// RFC 8446 §7.3: a traffic secret's record key and IV.
    public static func tls13Keys(secret: [UInt8], suite: TLSCipherSuite) -> TrafficKeys? {
        guard let aead = suite.aead else { return nil }
        return TrafficKeys(
            key: expandLabel(secret, "key", length: aead.keyLength, hash: suite.hash),
            iv: expandLabel(secret, "iv", length: 12, hash: suite.hash))
    }

    /// RFC 8446 §7.2: the next generation of a traffic secret, after a KeyUpdate.
    public static func nextTrafficSecret(_ secret: [UInt8], hash: TLSCipherSuite.Hash) -> [UInt8] {
        expandLabel(secret, "traffic upd", length: hash.length, hash: hash)
    }

    /// RFC 5246 §5: PRF(secret, label, seed) = P_<hash>(secret, label + seed), `length` bytes.
    public static func prf(_ secret: [UInt8], _ label: String, seed: [UInt8], length: Int, hash: TLSCipherSuite.Hash) -> [UInt8] {
        switch hash {
        case .sha256: pHash(SHA256.self, secret, Array(label.utf8) + seed, length)
        case .sha384: pHash(SHA384.self, secret, Array(label.utf8) + seed, length)
        }
    }

    static func pHash<H: HashFunction>(_: H.Type, _ secret: [UInt8], _ seed: [UInt8], _ length: Int) -> [UInt8] {
        let key = SymmetricKey(data: secret)
        var out: [UInt8] = []
        out.reserveCapacity(length + H.Digest.byteCount)
        var a = seed  // A(0)
        while out.count < length {
            a = Array(HMAC<H>.authenticationCode(for: a, using: key))
            out += HMAC<H>.authenticationCode(for: a + seed, using: key)
        }
        return Array(out.prefix(length))
    }

    /// RFC 5246 §6.3: the client's and the server's write keys and IVs from the master secret (AEAD suites: no MAC key;
    /// RFC 5288 §3: a 4-byte salt for AES-GCM; RFC 7905 §2: a 12-byte IV for ChaCha20-Poly1305).
    public static func tls12Keys(
        masterSecret: [UInt8], clientRandom: [UInt8], serverRandom: [UInt8], suite: TLSCipherSuite
    ) -> (client: TrafficKeys, server: TrafficKeys)? {
        guard let aead = suite.aead else { return nil }
        let keyLength = aead.keyLength, ivLength = aead == .chacha20Poly1305 ? 12 : 4
        let block = prf(masterSecret, "key expansion", seed: serverRandom + clientRandom, length: 2 * (keyLength + ivLength), hash: suite.hash)
        var i = 0
        func take(_ n: Int) -> [UInt8] {
            defer { i += n }
            return Array(block[i..<(i + n)])
        }
        let clientKey = take(keyLength), serverKey = take(keyLength), clientIV = take(ivLength), serverIV = take(ivLength)
        return (TrafficKeys(key: clientKey, iv: clientIV), TrafficKeys(key: serverKey, iv: serverIV))
    }
}

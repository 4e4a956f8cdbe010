/// A TLS cipher suite: the ones pilottrace decrypts (AEAD: AES-GCM and ChaCha20-Poly1305, TLS 1.2 and 1.3), and the
/// names of common others, so an undecryptable flow can name what it used.
public struct TLSCipherSuite: Hashable, Sendable, CustomStringConvertible {
    /// The record protection.
    public enum AEAD: Hashable, Sendable {
        case aes128GCM, aes256GCM, chacha20Poly1305

        public var keyLength: Int { self == .aes128GCM ? 16 : 32 }
    }

    /// The hash of the key schedule (TLS 1.3 HKDF, TLS 1.2 PRF).
    public enum Hash: Hashable, Sendable {
        case sha256, sha384

        public var length: Int { self == .sha256 ? 32 : 48 }
    }

    public var code: UInt16
    /// The IANA name (`TLS_AES_128_GCM_SHA256`), or `0x…` when unknown.
    public var name: String
    /// nil when pilottrace cannot decrypt it (CBC, RC4, …).
    public var aead: AEAD?
    public var hash: Hash

    public var isSupported: Bool { aead != nil }
    public var description: String { name }

    public init(code: UInt16) {
        self.code = code
        if let known = Self.known[code] {
            (name, aead, hash) = known
        } else {
            name = "0x" + String(code, radix: 16, uppercase: true).leftPadded(to: 4)
            (aead, hash) = (nil, .sha256)
        }
    }

    /// IANA TLS Cipher Suites registry; RFC 8446 §B.4, RFC 5288, RFC 5289, RFC 7905.
    static let known: [UInt16: (String, AEAD?, Hash)] = [
        0x1301: ("TLS_AES_128_GCM_SHA256", .aes128GCM, .sha256),
        0x1302: ("TLS_AES_256_GCM_SHA384", .aes256GCM, .sha384),
        0x1303: ("TLS_CHACHA20_POLY1305_SHA256", .chacha20Poly1305, .sha256),
        0x1304: ("TLS_AES_128_CCM_SHA256", nil, .sha256),
        0x1305: ("TLS_AES_128_CCM_8_SHA256", nil, .sha256),
        0x009C: ("TLS_RSA_WITH_AES_128_GCM_SHA256", .aes128GCM, .sha256),
        0x009D: ("TLS_RSA_WITH_AES_256_GCM_SHA384", .aes256GCM, .sha384),
        0x009E: ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", .aes128GCM, .sha256),
        0x009F: ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", .aes256GCM, .sha384),
        0xC02B: ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", .aes128GCM, .sha256),
        0xC02C: ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", .aes256GCM, .sha384),
        0xC02F: ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", .aes128GCM, .sha256),
        0xC030: ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", .aes256GCM, .sha384),
        0xCCA8: ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", .chacha20Poly1305, .sha256),
        0xCCA9: ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", .chacha20Poly1305, .sha256),
        0xCCAA: ("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", .chacha20Poly1305, .sha256),
        0x002F: ("TLS_RSA_WITH_AES_128_CBC_SHA", nil, .sha256),
        0x0035: ("TLS_RSA_WITH_AES_256_CBC_SHA", nil, .sha256),
        0x003C: ("TLS_RSA_WITH_AES_128_CBC_SHA256", nil, .sha256),
        0x003D: ("TLS_RSA_WITH_AES_256_CBC_SHA256", nil, .sha256),
        0xC009: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", nil, .sha256),
        0xC00A: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", nil, .sha256),
        0xC013: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", nil, .sha256),
        0xC014: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", nil, .sha256),
        0xC023: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", nil, .sha256),
        0xC027: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", nil, .sha256),
        0xC028: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", nil, .sha384),
        0xC0AC: ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", nil, .sha256),
        0x000A: ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", nil, .sha256),
        0x0005: ("TLS_RSA_WITH_RC4_128_SHA", nil, .sha256),
    ]
}

/// A TLS protocol version as the handshake settled it.
public enum TLSVersion: String, Hashable, Sendable, CustomStringConvertible {
    case tls10 = "TLS 1.0", tls11 = "TLS 1.1", tls12 = "TLS 1.2", tls13 = "TLS 1.3"

    public init?(wire: UInt16) {
        switch wire {
        case 0x0301: self = .tls10
        case 0x0302: self = .tls11
        case 0x0303: self = .tls12
        case 0x0304: self = .tls13
        default: return nil
        }
    }

    public var description: String { rawValue }
}

extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

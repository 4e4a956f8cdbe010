/// What decrypting a TLS connection with the key log achieved: no secrets, only what the handshake said in the clear
/// and which keys were used, so it can be stored and reported.
public struct TLSDecryption: Hashable, Sendable {
    public var version: TLSVersion?
    public var cipherSuite: TLSCipherSuite?
    /// The protocol the server chose by ALPN.
    public var alpn: String?
    /// Why the records were not decrypted; nil when they were.
    public var failure: TLSDecryptingStream.Failure?

    public var decrypted: Bool { failure == nil }

    public init(version: TLSVersion? = nil, cipherSuite: TLSCipherSuite? = nil, alpn: String? = nil, failure: TLSDecryptingStream.Failure? = nil) {
        self.version = version
        self.cipherSuite = cipherSuite
        self.alpn = alpn
        self.failure = failure
    }

    init(_ stream: TLSDecryptingStream) {
        self.init(version: stream.version, cipherSuite: stream.suite, alpn: stream.alpn, failure: stream.failure)
    }

    /// `TLS 1.3 TLS_AES_128_GCM_SHA256, ALPN mqtt`, as far as known.
    public var summary: String {
        var parts: [String] = []
        if let version { parts.append(version.rawValue) }
        if let cipherSuite { parts.append(cipherSuite.name) }
        var s = parts.isEmpty ? "TLS" : parts.joined(separator: " ")
        if let alpn { s += ", ALPN \(alpn)" }
        return s
    }
}

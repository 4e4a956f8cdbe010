/// What a TLS ClientHello says in the clear: enough to name an encrypted flow (RFC 8446 §4.1.2, RFC 6066 §3).
public struct TLSClientHello: Hashable, Sendable {
    /// The `legacy_version` of the ClientHello (0x0303 for TLS 1.2 and 1.3).
    public var legacyVersion: UInt16
    /// The server name indication, when sent.
    public var serverName: String?
    /// ALPN protocol names offered (RFC 7301), e.g. `mqtt`, `http/1.1`.
    public var alpn: [String]
    /// Whether `supported_versions` offers TLS 1.3.
    public var offersTLS13: Bool

    public enum Detection: Hashable, Sendable {
        case notTLS
        case clientHello(TLSClientHello)
        /// A TLS handshake record whose ClientHello could not be read (malformed or not a ClientHello).
        case tlsUnreadable
    }

    /// Looks at the first client bytes of a flow.
    /// - Returns: nil when more bytes are needed to decide.
    public static func detect(_ b: [UInt8]) -> Detection? {
        guard let first = b.first else { return nil }
        guard first == 0x16 else { return .notTLS }
        guard b.count >= 3 else { return nil }
        guard b[1] == 0x03, b[2] <= 0x04 else { return .notTLS }
        guard b.count >= 5 else { return nil }
        let recordLength = Int(b[3]) << 8 | Int(b[4])
        guard recordLength > 0, recordLength <= 16_384 + 2048 else { return .notTLS }
        guard b.count >= 5 + recordLength else { return nil }
        var c = ByteCursor(b, from: 5, to: 5 + recordLength)
        return parse(&c).map { .clientHello($0) } ?? .tlsUnreadable
    }

    static func parse(_ c: inout ByteCursor) -> TLSClientHello? {
        guard c.u8() == 1, let h1 = c.u8(), let h2 = c.u16() else { return nil }  // handshake type 1: ClientHello
        let length = Int(h1) << 16 | Int(h2)
        let end = min(c.end, c.index + length)
        var body = ByteCursor(c.bytes, from: c.index, to: end)
        guard let version = body.u16(), body.skip(32),  // random
            let sid = body.u8(), body.skip(Int(sid)),
            let suites = body.u16(), body.skip(Int(suites)),
            let comp = body.u8(), body.skip(Int(comp))
        else { return nil }
        var hello = TLSClientHello(legacyVersion: version, serverName: nil, alpn: [], offersTLS13: false)
        guard let extLength = body.u16() else { return hello }  // no extensions
        var ext = ByteCursor(body.bytes, from: body.index, to: min(body.end, body.index + Int(extLength)))
        while let type = ext.u16(), let len = ext.u16(), let data = ext.take(Int(len)) {
            var d = ByteCursor(Array(data))
            switch type {
            case 0:  // server_name: list of (type, name)
                _ = d.u16()
                while let nameType = d.u8(), let n = d.u16(), let name = d.take(Int(n)) {
                    if nameType == 0 { hello.serverName = String(decoding: name, as: UTF8.self) }
                }
            case 16:  // application_layer_protocol_negotiation
                _ = d.u16()
                while let n = d.u8(), let name = d.take(Int(n)) { hello.alpn.append(String(decoding: name, as: UTF8.self)) }
            case 43:  // supported_versions
                _ = d.u8()
                while let v = d.u16() { if v == 0x0304 { hello.offersTLS13 = true } }
            default: break
            }
        }
        return hello
    }
}

import Testing

@testable import PilotTraceProtocols

/// Hex to bytes, for the published vectors (whitespace allowed).
func tlsHex(_ s: String) -> [UInt8] {
    let digits = Array(s.utf8.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
}

extension UInt8 {
    fileprivate var isWhitespace: Bool { self == 0x20 || self == 0x0A || self == 0x09 }
}

/// Key derivation against published vectors: RFC 8448 §3 (TLS 1.3) and the TLS 1.2 PRF vectors posted to the IETF TLS
/// working group (SHA-256 and SHA-384, "test label").
@Suite struct TLSKeyScheduleTests {
    static let suite = TLSCipherSuite(code: 0x1301)

    @Test func rfc8448HandshakeTrafficKeys() {
        let server = TLSKeySchedule.tls13Keys(secret: RFC8448.serverHandshake, suite: Self.suite)
        #expect(server?.key == tlsHex("3fce516009c21727d0f2e4e86ee403bc"))
        #expect(server?.iv == tlsHex("5d313eb2671276ee13000b30"))
        let client = TLSKeySchedule.tls13Keys(secret: RFC8448.clientHandshake, suite: Self.suite)
        #expect(client?.key == tlsHex("dbfaa693d1762c5b666af5d950258d01"))
        #expect(client?.iv == tlsHex("5bd3c71b836e0b76bb73265f"))
    }

    @Test func rfc8448ApplicationTrafficKeys() {
        let server = TLSKeySchedule.tls13Keys(secret: RFC8448.serverTraffic, suite: Self.suite)
        #expect(server?.key == tlsHex("9f02283b6c9c07efc26bb9f2ac92e356"))
        #expect(server?.iv == tlsHex("cf782b88dd83549aadf1e984"))
        let client = TLSKeySchedule.tls13Keys(secret: RFC8448.clientTraffic, suite: Self.suite)
        #expect(client?.key == tlsHex("17422dda596ed5d9acd890e3c63f5051"))
        #expect(client?.iv == tlsHex("5b78923dee08579033e523d9"))
    }

    @Test func rfc8448FinishedKeyIsTheSameExpandLabel() {
        // RFC 8448 §3: {server} derive finished key from the server handshake traffic secret.
        #expect(
            TLSKeySchedule.expandLabel(RFC8448.serverHandshake, "finished", length: 32, hash: .sha256)
                == tlsHex("008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8"))
    }

    @Test func rfc8448ClientApplicationRecordOpens() throws {
        let keys = try #require(TLSKeySchedule.tls13Keys(secret: RFC8448.clientTraffic, suite: Self.suite))
        var p = TLSRecordProtection(aead: .aes128GCM, keys: keys, tls13: true)
        let (record, _) = try #require(try TLSRecord.read(RFC8448.record(RFC8448.clientApplicationData)))
        let opened = try p.open(record)
        #expect(opened.contentType == 23)
        #expect(opened.plaintext == Array(0...0x31))
        #expect(p.sequence == 1)
    }

    @Test func aTamperedRecordFailsAuthentication() throws {
        let keys = try #require(TLSKeySchedule.tls13Keys(secret: RFC8448.clientTraffic, suite: Self.suite))
        var p = TLSRecordProtection(aead: .aes128GCM, keys: keys, tls13: true)
        var bytes = RFC8448.record(RFC8448.clientApplicationData)
        bytes[20] ^= 1
        let (record, _) = try #require(try TLSRecord.read(bytes))
        #expect(throws: TLSRecordProtection.Error.authenticationFailed) { try p.open(record) }
        #expect(p.sequence == 0)
    }

    @Test func keyUpdateDerivesTheNextSecretWithTrafficUpd() {
        // RFC 8446 §7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length).
        let next = TLSKeySchedule.nextTrafficSecret(RFC8448.clientTraffic, hash: .sha256)
        #expect(next == TLSKeySchedule.expandLabel(RFC8448.clientTraffic, "traffic upd", length: 32, hash: .sha256))
        #expect(next.count == 32 && next != RFC8448.clientTraffic)
    }

    @Test func tls12PRFSHA256() {
        let out = TLSKeySchedule.prf(
            tlsHex("9bbe436ba940f017b17652849a71db35"), "test label", seed: tlsHex("a0ba9f936cda311827a6f796ffd5198c"), length: 100, hash: .sha256)
        #expect(
            out
                == tlsHex(
                    """
                    e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab
                    4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66
                    """))
    }

    @Test func tls12PRFSHA384() {
        let out = TLSKeySchedule.prf(
            tlsHex("b80b733d6ceefcdc71566ea48e5567df"), "test label", seed: tlsHex("cd665cf6a8447dd6ff8b27555edb7465"), length: 148, hash: .sha384)
        #expect(
            out
                == tlsHex(
                    """
                    7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd
                    8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d9184259b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6
                    91c8f3a26854308d5eaa3be85e0990703d73e56f
                    """))
    }

    @Test func tls12KeyBlockSplitsAsRFC5246Says() throws {
        let master = [UInt8](repeating: 7, count: 48), cr = [UInt8](repeating: 1, count: 32), sr = [UInt8](repeating: 2, count: 32)
        let gcm = try #require(TLSKeySchedule.tls12Keys(masterSecret: master, clientRandom: cr, serverRandom: sr, suite: TLSCipherSuite(code: 0xC02F)))
        let block = TLSKeySchedule.prf(master, "key expansion", seed: sr + cr, length: 40, hash: .sha256)
        #expect(gcm.client.key == Array(block[0..<16]) && gcm.server.key == Array(block[16..<32]))
        #expect(gcm.client.iv == Array(block[32..<36]) && gcm.server.iv == Array(block[36..<40]))
        let chacha = try #require(TLSKeySchedule.tls12Keys(masterSecret: master, clientRandom: cr, serverRandom: sr, suite: TLSCipherSuite(code: 0xCCA8)))
        #expect(chacha.client.key.count == 32 && chacha.client.iv.count == 12)
        #expect(TLSKeySchedule.tls12Keys(masterSecret: master, clientRandom: cr, serverRandom: sr, suite: TLSCipherSuite(code: 0xC013)) == nil)
    }

    @Test func cipherSuitesAreNamed() {
        #expect(TLSCipherSuite(code: 0x1302).name == "TLS_AES_256_GCM_SHA384" && TLSCipherSuite(code: 0x1302).hash == .sha384)
        #expect(TLSCipherSuite(code: 0x1303).aead == .chacha20Poly1305)
        #expect(!TLSCipherSuite(code: 0xC013).isSupported && TLSCipherSuite(code: 0xC013).name == "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")
        #expect(TLSCipherSuite(code: 0x0A0A).name == "0x0A0A")
    }
}

/// RFC 8448 §3, "Simple 1-RTT Handshake": secrets, hellos and protected records.
enum RFC8448 {
    static let clientRandom = tlsHex("cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7")
    static let clientHandshake = tlsHex("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
    static let serverHandshake = tlsHex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    static let clientTraffic = tlsHex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
    static let serverTraffic = tlsHex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")

    /// The key log an NSS client would have written for this handshake.
    static var keyLog: String {
        let random = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7"
        return """
            # RFC 8448 section 3
            CLIENT_HANDSHAKE_TRAFFIC_SECRET \(random) b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21
            SERVER_HANDSHAKE_TRAFFIC_SECRET \(random) b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38
            CLIENT_TRAFFIC_SECRET_0 \(random) 9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5
            SERVER_TRAFFIC_SECRET_0 \(random) a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643

            """
    }

    /// The ClientHello handshake message (196 octets).
    static let clientHello = tlsHex(
        """
        010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113031302010000910000000b0009000006736572766572ff01000100000a00
        140012001d0017001800190100010101020103010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b00030203
        04000d0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c00024001
        """)
    /// The ServerHello handshake message (90 octets).
    static let serverHello = tlsHex(
        """
        020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b
        833df1dd69b1b04e751f0f002b00020304
        """)
    /// {server} EncryptedExtensions … Finished, under the server handshake keys.
    static let serverHandshakeRecord = tlsHex(
        """
        d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40aa40aa2b8ea73f848a7ca07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389280f
        526134aadc7fc78c4b729df828b5ecf7b13bd9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9d7477609aee6e122a4cf51427325250c7d0e509289444c
        9b3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cbb360987255cc744110c453baa4fcd610928d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead686945
        ba246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b3684596c960bd596eea520a56a8d650f563aad27409960dca63d3e688611ea5e22f4415cf9538d51a200c27
        034272968a264ed6540c84838d89f72c24461aad6d26f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b659622245317b49eeda0c6258f100d7d961ffb138647e92ea3
        30faeea6dfa31c7a84dc3bd7e1b7a6c7178af36879018e3f252107f243d243dc7339d5684c8b0378bf30244da8c87c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cca71e45994
        26f7d461e66f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe5a37668936b335583b599186dc5c6918a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f
        8afe67f76913fa388cb5630c8ca01e0c65d11c66a1e2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b66763038ebba42f3b38edc0399f3a9f23faa6397
        8c317fc9fa66a73f60f0504de93b5b845e275592c12335ee340bbc4fddd502784016e4b3be7ef04dda49f4b440a30cb5d2af939828fd4ae3794e44f94df5a631ede42c1719bfdabf025
        3fe5175be898e750edc53370d2b
        """)
    /// {server} NewSessionTicket, under the server application keys (sequence 0).
    static let serverTicketRecord = tlsHex(
        """
        3a6b8f90414a97d6959c3487680de5134a2b240e6cffac116e95d41d6af8f6b580dcf3d11d63c758db289a015940252f55713e061dc13e078891a38efbcf5753ad8ef170ad3c7353d16
        d9da773b9ca7f2b9fa1b6c0d4a3d03f75e09c30ba1e62972ac46f75f7b981be63439b2999ce13064615139891d5e4c5b406f16e3fc181a77ca475840025db2f0a77f81b5ab05b94c0134
        6755f69232c86519d86cbeeac87aac347d143f9605d64f650db4d023e70e952ca49fe5137121c74bc2697687e248746d6df353005f3bce18696129c8153556b3b6c6779b37bf15985684f
        """)
    /// {client} Finished, under the client handshake keys.
    static let clientFinishedRecord = tlsHex(
        "75ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546")
    /// {client} and {server} application data: 50 octets 00…31 (the server's is its second application record).
    static let clientApplicationData = tlsHex(
        "a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4")
    static let serverApplicationData = tlsHex(
        "2e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d")
    /// {client} and {server} close_notify alerts.
    static let clientAlert = tlsHex("c9872760655666b74d7ff1153efd6db6d0b0e3")
    static let serverAlert = tlsHex("b58fd67166ebf599d24720cfbe7efa7a8864a9")

    /// A record: type (23 unless said), version 0x0303, length, fragment.
    static func record(_ fragment: [UInt8], type: UInt8 = 23, version: UInt16 = 0x0303) -> [UInt8] {
        [type, UInt8(version >> 8), UInt8(version & 0xFF), UInt8(fragment.count >> 8), UInt8(fragment.count & 0xFF)] + fragment
    }

    /// The client's bytes on the wire: ClientHello, Finished, application data, close_notify.
    static var clientStream: [UInt8] {
        record(clientHello, type: 22, version: 0x0301) + record(clientFinishedRecord) + record(clientApplicationData) + record(clientAlert)
    }

    /// The server's: ServerHello, the encrypted flight, NewSessionTicket, application data, close_notify.
    static var serverStream: [UInt8] {
        record(serverHello, type: 22) + record(serverHandshakeRecord) + record(serverTicketRecord) + record(serverApplicationData) + record(serverAlert)
    }
}

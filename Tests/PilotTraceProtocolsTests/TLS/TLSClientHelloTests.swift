import Testing

@testable import PilotTraceProtocols

@Suite struct TLSClientHelloTests {
    /// A ClientHello from Python's ssl module (OpenSSL 3) for server_hostname mqtt.cloud.example, ALPN mqtt + http/1.1.
    static let hello: [UInt8] = {
        let hex =
            "1603010200010001fc03038b0ad35d085451b19d64a57184d85419164fc6144f6aa9ffc3ec422f2f5cb70220b5ee8c703b1586f19bc646a7c6c324e120b09e10d8c2beefcba905793a9f6d730024130213031301c02cc030c02bc02fcca9cca8c024c028c023c027009f009e006b006700ff0100018f0000001700150000126d7174742e636c6f75642e6578616d706c65000b000403000102000a00160014001d0017001e00190018010001010102010301040023000000100010000e046d71747408687474702f312e310016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b00050403040303002d00020101003300260024001d002040cfd75868ffbeda1c8ecd4b7034c18ae04210baab96a5bba1f2d769bbbb2a39001500c700000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        var out: [UInt8] = []
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
        return out
    }()

    @Test func readsServerNameALPNAndVersions() {
        guard case .clientHello(let h)? = TLSClientHello.detect(Self.hello) else {
            Issue.record("not detected")
            return
        }
        #expect(h.serverName == "mqtt.cloud.example")
        #expect(h.alpn == ["mqtt", "http/1.1"])
        #expect(h.legacyVersion == 0x0303)
        #expect(h.offersTLS13)
    }

    @Test func needsTheWholeRecordAndSaysSoWithNil() {
        for n in [0, 1, 2, 4, 5, 100, Self.hello.count - 1] {
            #expect(TLSClientHello.detect(Array(Self.hello[0..<n])) == nil, "\(n) bytes")
        }
    }

    @Test func otherProtocolsAreNotTLS() {
        #expect(TLSClientHello.detect(Array("GET / HTTP/1.1\r\n".utf8)) == .notTLS)
        #expect(TLSClientHello.detect([0x10, 0x20, 0x00, 0x04]) == .notTLS)  // MQTT CONNECT
        #expect(TLSClientHello.detect([0x16, 0x02, 0x00]) == .notTLS)
    }

    @Test func aHandshakeRecordThatIsNotAClientHelloIsUnreadable() {
        var server = Self.hello
        server[5] = 2  // ServerHello
        #expect(TLSClientHello.detect(server) == .tlsUnreadable)
        var cut = Self.hello
        cut[8] = 0xff  // handshake length beyond the record: the body parse runs out
        cut[7] = 0xff
        #expect(TLSClientHello.detect(cut) != nil)
    }
}

import Foundation
import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// The decrypting stream on RFC 8448's handshake: whole, byte by byte, and with what goes wrong in captures.
@Suite struct TLSDecryptingStreamTests {
    struct Run {
        var stream = TLSDecryptingStream()
        var plaintext: [Direction: [UInt8]] = [.toServer: [], .toClient: []]
        var frames: [CaptureFrame] = []

        mutating func feed(_ dir: Direction, _ bytes: [UInt8], log: TLSKeyLog, frame: Int = 1) {
            var out: [TLSDecryptingStream.Plaintext] = []
            stream.feed(dir, bytes, at: Timestamp(seconds: 1, nanoseconds: 0), frame: CaptureFrame(number: frame), keys: { log.secrets(for: $0) }, into: &out)
            for p in out {
                plaintext[p.direction]! += p.bytes
                frames.append(p.frame)
            }
        }
    }

    static let log = TLSKeyLog(Array(RFC8448.keyLog.utf8))

    /// The RFC's order on the wire: ClientHello, the server's flight, the client's Finished and data, the server's data.
    static func exchange(_ run: inout Run, log: TLSKeyLog = log, chunk: Int = .max) {
        let c = RFC8448.clientStream, s = RFC8448.serverStream
        let clientHelloEnd = 5 + RFC8448.clientHello.count
        func feed(_ dir: Direction, _ bytes: ArraySlice<UInt8>) {
            var i = bytes.startIndex
            while i < bytes.endIndex {
                let j = min(bytes.endIndex, i + min(chunk, bytes.count))
                run.feed(dir, Array(bytes[i..<j]), log: log, frame: i)
                i = j
            }
        }
        feed(.toServer, c[..<clientHelloEnd])
        feed(.toClient, s[...])
        feed(.toServer, c[clientHelloEnd...])
    }

    @Test func decryptsTheRFC8448Exchange() {
        var run = Run()
        Self.exchange(&run)
        #expect(run.stream.failure == nil)
        #expect(run.stream.version == .tls13)
        #expect(run.stream.suite?.name == "TLS_AES_128_GCM_SHA256")
        #expect(run.stream.clientRandom == RFC8448.clientRandom)
        #expect(run.plaintext[.toServer] == Array(0...0x31))
        #expect(run.plaintext[.toClient] == Array(0...0x31))
        // The server's flight (one record), NewSessionTicket, data, alert; the client's Finished, data, alert.
        #expect(run.stream.decryptedRecords == 7)
    }

    @Test(arguments: [1, 3, 7, 100, 1000])
    func decryptsTheSameInPieces(chunk: Int) {
        var run = Run()
        Self.exchange(&run, chunk: chunk)
        #expect(run.stream.failure == nil)
        #expect(run.plaintext[.toServer] == Array(0...0x31))
        #expect(run.plaintext[.toClient] == Array(0...0x31))
    }

    @Test func plaintextCarriesTheFrameThatCompletedItsRecord() {
        var run = Run()
        Self.exchange(&run, chunk: 10)
        // The server's data record ends at its stream offset; fed 10 bytes at a time, the frame is its last chunk's start.
        let s = RFC8448.serverStream
        let end = s.count - (5 + RFC8448.serverAlert.count)
        #expect(run.frames.contains(CaptureFrame(number: (end - 1) / 10 * 10)))
    }

    @Test func noKeyForThisClientRandom() {
        var run = Run()
        Self.exchange(&run, log: TLSKeyLog())
        #expect(run.stream.failure == .noKey)
        #expect(run.stream.failure?.description == "no key for this client random in the key log")
        #expect(run.plaintext[.toServer]!.isEmpty && run.plaintext[.toClient]!.isEmpty)
        // What the handshake said in the clear is still known.
        #expect(run.stream.version == .tls13 && run.stream.suite?.code == 0x1301)
    }

    @Test func aWrongKeyFailsAuthentication() {
        var wrong = RFC8448.keyLog
        wrong = wrong.replacingOccurrences(of: "b67b7d690cc16c4e", with: "b67b7d690cc16c4f")
        var run = Run()
        Self.exchange(&run, log: TLSKeyLog(Array(wrong.utf8)))
        #expect(run.stream.failure == .authenticationFailed(.toClient))
        #expect(run.stream.failure?.description.contains("wrong key or corrupt capture") == true)
        #expect(run.plaintext[.toClient]!.isEmpty)
    }

    @Test func aCorruptRecordFailsAuthentication() {
        var run = Run()
        var s = RFC8448.serverStream
        s[5 + RFC8448.serverHello.count + 5 + 100] ^= 0x80
        run.feed(.toServer, RFC8448.record(RFC8448.clientHello, type: 22, version: 0x0301), log: Self.log)
        run.feed(.toClient, s, log: Self.log)
        #expect(run.stream.failure == .authenticationFailed(.toClient))
    }

    @Test func onlyTheApplicationSecretsStillDecryptTheData() {
        let appOnly = RFC8448.keyLog.split(separator: "\n").filter { !$0.contains("HANDSHAKE") }.joined(separator: "\n")
        var run = Run()
        Self.exchange(&run, log: TLSKeyLog(Array(appOnly.utf8)))
        #expect(run.stream.failure == nil)
        #expect(run.plaintext[.toServer] == Array(0...0x31))
        #expect(run.plaintext[.toClient] == Array(0...0x31))
    }

    @Test func aTruncatedHandshakeSaysSo() {
        var run = Run()
        run.feed(.toServer, RFC8448.record(RFC8448.clientHello, type: 22, version: 0x0301), log: Self.log)
        // The capture ends inside the ServerHello record.
        run.feed(.toClient, Array(RFC8448.serverStream.prefix(40)), log: Self.log)
        #expect(run.stream.failure == nil)
        #expect(run.stream.finish() == .handshakeNotCaptured("the capture has no ServerHello"))
    }

    @Test func aGapDuringTheHandshakeSaysSo() {
        var run = Run()
        run.feed(.toServer, RFC8448.record(RFC8448.clientHello, type: 22, version: 0x0301), log: Self.log)
        run.stream.gap(.toClient)
        #expect(run.stream.failure?.code == "handshake-not-captured")
    }

    @Test func anUnsupportedSuiteIsNamed() {
        // A TLS 1.2 ServerHello choosing TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA (0xC013), no extensions.
        let body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 0x42, count: 32) + [0x00, 0xC0, 0x13, 0x00]
        let serverHello: [UInt8] = [2, 0, 0, UInt8(body.count)] + body
        var run = Run()
        run.feed(.toServer, RFC8448.record(RFC8448.clientHello, type: 22, version: 0x0301), log: Self.log)
        run.feed(.toClient, RFC8448.record(serverHello, type: 22), log: Self.log)
        #expect(run.stream.failure == .unsupportedSuite(TLSCipherSuite(code: 0xC013)))
        #expect(run.stream.failure?.description == "unsupported cipher suite TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")
        #expect(run.stream.version == .tls12)
    }

    @Test func bytesThatAreNotRecordsStopTheStream() {
        var run = Run()
        run.feed(.toServer, Array("GET / HTTP/1.1\r\n\r\n".utf8), log: Self.log)
        #expect(run.stream.failure?.code == "malformed")
        // Nothing more is read, nothing buffered.
        run.feed(.toServer, RFC8448.clientStream, log: Self.log)
        #expect(run.stream.clientRandom == nil)
    }
}

@Suite struct TLSKeyLogTests {
    @Test func readsTheNSSLabelsAndSkipsTheRest() {
        let random = String(repeating: "ab", count: 32)
        let text = """
            # a comment
            CLIENT_RANDOM \(random) \(String(repeating: "01", count: 48))
            CLIENT_EARLY_TRAFFIC_SECRET \(random) \(String(repeating: "02", count: 32))
            SERVER_TRAFFIC_SECRET_0 \(random) \(String(repeating: "03", count: 32))\r
            CLIENT_RANDOM short 0102
            CLIENT_RANDOM \(random) zz
            garbage
            """
        let log = TLSKeyLog(Array(text.utf8))
        #expect(log.count == 1)
        let s = log.secrets(for: [UInt8](repeating: 0xAB, count: 32))
        #expect(s?.masterSecret == [UInt8](repeating: 1, count: 48))
        #expect(s?.serverTraffic == [UInt8](repeating: 3, count: 32))
        #expect(s?.clientTraffic == nil)
        // Never the secrets in words.
        #expect(!"\(log)".contains("0101") && "\(log)" == "TLS key log (1 session)")
    }

    @Test func linesAddedLaterMerge() {
        let random = String(repeating: "cd", count: 32)
        var log = TLSKeyLog(Array("CLIENT_HANDSHAKE_TRAFFIC_SECRET \(random) \(String(repeating: "05", count: 32))\n".utf8))
        log.merge(TLSKeyLog(Array("CLIENT_TRAFFIC_SECRET_0 \(random) \(String(repeating: "06", count: 32))\n".utf8)))
        let s = log.secrets(for: [UInt8](repeating: 0xCD, count: 32))
        #expect(s?.clientHandshake != nil && s?.clientTraffic != nil)
    }
}

@Suite struct TLSServerHelloTests {
    @Test func aTLS12ServerHelloGivesItsALPNAndSuite() {
        // legacy_version 0x0303, random, no session id, 0xC02F, no compression; extensions: EMS (23), ALPN "http/1.1".
        let alpn: [UInt8] = [0x00, 0x10, 0x00, 0x0B, 0x00, 0x09, 0x08] + Array("http/1.1".utf8)
        let extensions: [UInt8] = [0x00, 0x17, 0x00, 0x00] + alpn
        let body: [UInt8] =
            [0x03, 0x03] + [UInt8](repeating: 7, count: 32) + [0x00, 0xC0, 0x2F, 0x00]
            + [UInt8(extensions.count >> 8), UInt8(extensions.count & 0xFF)] + extensions
        let hello: [UInt8] = [2, 0, 0, UInt8(body.count)] + body
        var stream = TLSDecryptingStream()
        var out: [TLSDecryptingStream.Plaintext] = []
        let master = [UInt8](repeating: 9, count: 48)
        stream.feed(.toServer, RFC8448.record(RFC8448.clientHello, type: 22, version: 0x0301), at: .zero, frame: .unknown, keys: { _ in nil }, into: &out)
        stream.feed(
            .toClient, RFC8448.record(hello, type: 22), at: .zero, frame: .unknown,
            keys: { _ in
                var s = TLSKeyLog.Secrets()
                s.masterSecret = master
                return s
            }, into: &out)
        #expect(stream.failure == nil)
        #expect(stream.version == .tls12 && stream.suite?.name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        #expect(stream.alpn == "http/1.1")
    }
}

@Suite struct TLSGrowingKeyLogTests {
    @Test func trafficSecretsLoggedAfterTheServerHelloAreFoundAtFinished() {
        // The log has only the handshake secrets when the ServerHello is read, all four by the Finished messages.
        let handshakeOnly = TLSKeyLog(Array(RFC8448.keyLog.split(separator: "\n").filter { $0.contains("HANDSHAKE") }.joined(separator: "\n").utf8))
        let full = TLSKeyLog(Array(RFC8448.keyLog.utf8))
        var stream = TLSDecryptingStream()
        var out: [TLSDecryptingStream.Plaintext] = []
        var log = handshakeOnly
        let c = RFC8448.clientStream, s = RFC8448.serverStream
        let clientHelloEnd = 5 + RFC8448.clientHello.count, serverHelloEnd = 5 + RFC8448.serverHello.count
        stream.feed(.toServer, Array(c[..<clientHelloEnd]), at: .zero, frame: .unknown, keys: { log.secrets(for: $0) }, into: &out)
        stream.feed(.toClient, Array(s[..<serverHelloEnd]), at: .zero, frame: .unknown, keys: { log.secrets(for: $0) }, into: &out)
        log = full
        stream.feed(.toClient, Array(s[serverHelloEnd...]), at: .zero, frame: .unknown, keys: { log.secrets(for: $0) }, into: &out)
        stream.feed(.toServer, Array(c[clientHelloEnd...]), at: .zero, frame: .unknown, keys: { log.secrets(for: $0) }, into: &out)
        #expect(stream.failure == nil)
        #expect(out.map(\.bytes) == [Array(0...0x31), Array(0...0x31)])
    }
}

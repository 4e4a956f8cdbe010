import PilotTraceWire

/// One TLS connection's two record streams in, the application data's plaintext out, with the capture time and frame
/// of the bytes that completed each record: what the HTTP, WebSocket and MQTT decoders then read as if the connection
/// had been clear text.
///
/// Follows the handshake in the clear (ClientHello, ServerHello) and, in TLS 1.3, encrypted (EncryptedExtensions,
/// Finished, KeyUpdate) to know which keys protect each record; the keys come from the key log, by client random
/// (RFC 8446 §7, RFC 5246 §6.3). Pure: no I/O; buffers at most one record per direction. What cannot be decrypted is
/// a ``Failure``, and the stream then stops.
public struct TLSDecryptingStream: Sendable {
    /// Why a connection's records cannot be decrypted.
    public enum Failure: Hashable, Sendable, CustomStringConvertible {
        /// The key log has no secrets for this client random.
        case noKey
        /// The server chose a cipher suite pilottrace does not decrypt.
        case unsupportedSuite(TLSCipherSuite)
        /// A record's tag did not verify: the logged key is not this connection's, or the capture damaged the record.
        case authenticationFailed(Direction)
        /// The handshake (ClientHello, ServerHello) is not in the capture, or bytes of it are missing.
        case handshakeNotCaptured(String)
        /// The bytes stopped being TLS records.
        case malformed(String)

        public var description: String {
            switch self {
            case .noKey: "no key for this client random in the key log"
            case .unsupportedSuite(let s): "unsupported cipher suite \(s.name)"
            case .authenticationFailed(let d):
                "record authentication failed (\(d == .toServer ? "client" : "server") records): wrong key or corrupt capture"
            case .handshakeNotCaptured(let why): "handshake not captured (\(why))"
            case .malformed(let why): "not TLS records (\(why))"
            }
        }

        /// A stable short name, for the store and JSON.
        public var code: String {
            switch self {
            case .noKey: "no-key"
            case .unsupportedSuite: "unsupported-cipher-suite"
            case .authenticationFailed: "authentication-failed"
            case .handshakeNotCaptured: "handshake-not-captured"
            case .malformed: "malformed"
            }
        }
    }

    /// Decrypted application data.
    public struct Plaintext: Sendable {
        public var direction: Direction
        public var bytes: [UInt8]
        /// The capture time and frame of the bytes that completed the record.
        public var time: Timestamp
        public var frame: CaptureFrame
    }

    /// Where the secrets come from: the key log, asked by client random once the ServerHello says which keys are needed.
    public typealias KeyLookup = (_ clientRandom: [UInt8]) -> TLSKeyLog.Secrets?

    public private(set) var clientRandom: [UInt8]?
    public private(set) var serverRandom: [UInt8]?
    public private(set) var version: TLSVersion?
    public private(set) var suite: TLSCipherSuite?
    /// The protocol the server chose by ALPN (RFC 7301), when it did.
    public private(set) var alpn: String?
    /// Why decryption stopped, once it has.
    public private(set) var failure: Failure?
    /// Records decrypted and authenticated so far.
    public private(set) var decryptedRecords = 0

    enum Phase: Sendable {
        /// Records are in the clear (before TLS 1.2's ChangeCipherSpec, before TLS 1.3's ServerHello).
        case clear
        /// TLS 1.3 handshake keys (or, without them in the log, trying the application keys on each record).
        case handshake
        case application
    }

    struct Side: Sendable {
        var buffer: [UInt8] = []
        var handshake = HandshakeReader()
        var phase = Phase.clear
        var protection: TLSRecordProtection?
        /// TLS 1.2: the keys that take over at this side's ChangeCipherSpec.
        var pending: TLSRecordProtection?
        /// TLS 1.3: the application traffic secret in use (KeyUpdate derives the next one from it).
        var trafficSecret: [UInt8]?
        var stopped = false
    }

    var sides = [Side(), Side()]

    public init() {}

    /// Bytes held of records not yet complete (at most a record per direction).
    public var bufferedByteCount: Int { sides[0].buffer.count + sides[1].buffer.count }

    /// Whether the stream stopped decrypting (see ``failure``).
    public var hasFailed: Bool { failure != nil }

    /// Reads `bytes` of one direction; appends the application data of the records they complete.
    public mutating func feed(
        _ dir: Direction, _ bytes: [UInt8], at time: Timestamp, frame: CaptureFrame, keys: KeyLookup, into out: inout [Plaintext]
    ) {
        guard failure == nil, !sides[dir.rawValue].stopped else { return }
        sides[dir.rawValue].buffer += bytes
        var consumed = 0
        let buffer = sides[dir.rawValue].buffer
        while failure == nil {
            let next: (TLSRecord, next: Int)?
            do {
                next = try TLSRecord.read(buffer, from: consumed)
            } catch {
                fail(.malformed(Self.describe(error)))
                break
            }
            guard let (record, after) = next else { break }
            consumed = after
            process(record, dir, time, frame, keys, &out)
        }
        if failure != nil {
            sides = [Side(), Side()]
        } else if consumed > 0 {
            sides[dir.rawValue].buffer.removeFirst(consumed)
        }
    }

    /// Bytes of one direction were never captured: its records can no longer be followed (sequence numbers are lost).
    public mutating func gap(_ dir: Direction) {
        guard failure == nil else { return }
        if version == nil || decryptedRecords == 0 && sides[dir.rawValue].phase != .application {
            fail(.handshakeNotCaptured("bytes missing during the handshake"))
        } else {
            sides[dir.rawValue].stopped = true
            sides[dir.rawValue].buffer = []
        }
    }

    /// The connection ended: why nothing was decrypted, when nothing was (nil when it was, or might still have been:
    /// the handshake completed but no application data followed).
    public mutating func finish() -> Failure? {
        if failure == nil {
            if clientRandom == nil {
                fail(.handshakeNotCaptured("no ClientHello"))
            } else if version == nil {
                fail(.handshakeNotCaptured("the capture has no ServerHello"))
            }
        }
        return failure
    }

    mutating func fail(_ f: Failure) {
        if failure == nil { failure = f }
    }

    static func describe(_ e: TLSRecord.FramingError) -> String {
        switch e {
        case .notARecord(let type, let version): "content type \(type), version 0x\(String(version, radix: 16))"
        case .tooLong(let n): "record of \(n) bytes"
        }
    }

    mutating func process(_ record: TLSRecord, _ dir: Direction, _ time: Timestamp, _ frame: CaptureFrame, _ keys: KeyLookup, _ out: inout [Plaintext]) {
        let d = dir.rawValue
        if record.contentType == TLSRecord.ContentType.changeCipherSpec.rawValue {
            // TLS 1.2: this side's next records are protected. TLS 1.3: a middlebox-compatibility no-op (RFC 8446 §D.4).
            if version != .tls13 {
                guard let pending = sides[d].pending else {
                    fail(.handshakeNotCaptured(version == nil ? "no ServerHello before ChangeCipherSpec" : "no keys"))
                    return
                }
                sides[d].protection = pending
                sides[d].phase = .application
            }
            return
        }
        guard sides[d].phase != .clear else {
            switch record.contentType {
            case TLSRecord.ContentType.handshake.rawValue: handshake(record.fragment, dir, keys)
            case TLSRecord.ContentType.alert.rawValue: break
            default: fail(.handshakeNotCaptured("encrypted records before the ServerHello"))
            }
            return
        }
        var opened: (contentType: UInt8, plaintext: [UInt8])
        if var p = sides[d].protection {
            do {
                opened = try p.open(record)
            } catch {
                fail(error == .authenticationFailed ? .authenticationFailed(dir) : .malformed("record too short for its tag"))
                return
            }
            sides[d].protection = p
        } else if sides[d].phase == .handshake, let secret = sides[d].trafficSecret, let suite, var p = Self.protection13(secret, suite) {
            // No handshake secrets in the log: skip the handshake records, take the first one the application keys open.
            guard let o = try? p.open(record) else { return }
            opened = o
            sides[d].protection = p
            sides[d].phase = .application
        } else {
            fail(.noKey)
            return
        }
        decryptedRecords += 1
        switch opened.contentType {
        case TLSRecord.ContentType.applicationData.rawValue:
            if !opened.plaintext.isEmpty { out.append(Plaintext(direction: dir, bytes: opened.plaintext, time: time, frame: frame)) }
        case TLSRecord.ContentType.handshake.rawValue:
            handshake(opened.plaintext, dir, keys)
        default:
            break  // alerts (close_notify)
        }
    }

    static func protection13(_ secret: [UInt8], _ suite: TLSCipherSuite) -> TLSRecordProtection? {
        guard let aead = suite.aead, let keys = TLSKeySchedule.tls13Keys(secret: secret, suite: suite) else { return nil }
        return TLSRecordProtection(aead: aead, keys: keys, tls13: true)
    }

    mutating func handshake(_ bytes: [UInt8], _ dir: Direction, _ keys: KeyLookup) {
        let messages: [(type: UInt8, body: [UInt8])]
        do {
            messages = try sides[dir.rawValue].handshake.feed(bytes)
        } catch {
            fail(.malformed("handshake message too long"))
            return
        }
        for (type, body) in messages where failure == nil {
            switch (type, dir) {
            case (1, .toServer): clientHello(body)
            case (2, .toClient): serverHello(body, keys)
            case (8, .toClient): alpn = Self.alpn(inExtensions: body, from: 0) ?? alpn
            case (20, _) where version == .tls13: finished(dir, keys)
            case (24, _) where version == .tls13: keyUpdate(dir)
            default: break
            }
        }
    }

    mutating func clientHello(_ body: [UInt8]) {
        guard body.count >= 34 else { return fail(.malformed("ClientHello too short")) }
        clientRandom = Array(body[2..<34])
    }

    /// RFC 8446 §4.1.3: SHA-256 of "HelloRetryRequest", the random of a HelloRetryRequest.
    static let helloRetryRandom: [UInt8] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    ]

    mutating func serverHello(_ body: [UInt8], _ keys: KeyLookup) {
        var c = ByteCursor(body)
        guard let legacy = c.u16(), let random = c.take(32), let sid = c.u8(), c.skip(Int(sid)), let code = c.u16(), c.skip(1) else {
            return fail(.malformed("ServerHello too short"))
        }
        guard Array(random) != Self.helloRetryRandom else { return }  // the real ServerHello follows the second ClientHello
        serverRandom = Array(random)
        var negotiated = legacy
        let extensions = c.index
        if let extLength = c.u16() {
            var ext = ByteCursor(body, from: c.index, to: min(body.count, c.index + Int(extLength)))
            while let type = ext.u16(), let len = ext.u16(), let data = ext.take(Int(len)) {
                if type == 43, data.count == 2 { negotiated = UInt16(data[data.startIndex]) << 8 | UInt16(data[data.startIndex + 1]) }
            }
            alpn = Self.alpn(inExtensions: body, from: extensions)
        }
        let suite = TLSCipherSuite(code: code)
        self.suite = suite
        version = TLSVersion(wire: negotiated)
        guard let aead = suite.aead, version == .tls12 || version == .tls13 else { return fail(.unsupportedSuite(suite)) }
        guard let clientRandom else { return fail(.handshakeNotCaptured("no ClientHello")) }
        guard let secrets = keys(clientRandom) else { return fail(.noKey) }
        if version == .tls13 {
            for dir in Direction.allCases {
                let hs = dir == .toServer ? secrets.clientHandshake : secrets.serverHandshake
                let traffic = dir == .toServer ? secrets.clientTraffic : secrets.serverTraffic
                guard hs != nil || traffic != nil else { return fail(.noKey) }
                sides[dir.rawValue].phase = .handshake
                sides[dir.rawValue].protection = hs.flatMap { Self.protection13($0, suite) }
                sides[dir.rawValue].trafficSecret = traffic
            }
        } else {
            guard let master = secrets.masterSecret,
                let k = TLSKeySchedule.tls12Keys(masterSecret: master, clientRandom: clientRandom, serverRandom: Array(random), suite: suite)
            else { return fail(.noKey) }
            sides[0].pending = TLSRecordProtection(aead: aead, keys: k.client, tls13: false)
            sides[1].pending = TLSRecordProtection(aead: aead, keys: k.server, tls13: false)
        }
    }

    /// TLS 1.3: after its Finished, a side protects its records with its application traffic secret (RFC 8446 §7.2).
    mutating func finished(_ dir: Direction, _ keys: KeyLookup) {
        let d = dir.rawValue
        guard sides[d].phase == .handshake else { return }
        if sides[d].trafficSecret == nil, let clientRandom, let secrets = keys(clientRandom) {
            // A log still being written when the ServerHello was read: its traffic secrets may have come since.
            sides[d].trafficSecret = dir == .toServer ? secrets.clientTraffic : secrets.serverTraffic
        }
        guard let secret = sides[d].trafficSecret, let suite, let p = Self.protection13(secret, suite) else { return fail(.noKey) }
        sides[d].protection = p
        sides[d].phase = .application
    }

    /// TLS 1.3: after a KeyUpdate, the next generation of the sender's traffic secret (RFC 8446 §4.6.3, §7.2).
    mutating func keyUpdate(_ dir: Direction) {
        let d = dir.rawValue
        guard sides[d].phase == .application, let secret = sides[d].trafficSecret, let suite else { return }
        let next = TLSKeySchedule.nextTrafficSecret(secret, hash: suite.hash)
        sides[d].trafficSecret = next
        sides[d].protection = Self.protection13(next, suite)
    }

    /// The first protocol of an ALPN extension (RFC 7301 §3.1) in the extensions block at `from` (its 2-byte length).
    static func alpn(inExtensions body: [UInt8], from: Int) -> String? {
        var c = ByteCursor(body, from: from)
        guard let total = c.u16() else { return nil }
        var ext = ByteCursor(body, from: c.index, to: min(body.count, c.index + Int(total)))
        while let type = ext.u16(), let len = ext.u16(), let data = ext.take(Int(len)) {
            guard type == 16 else { continue }
            var d = ByteCursor(Array(data))
            guard d.u16() != nil, let n = d.u8(), let name = d.take(Int(n)) else { return nil }
            return String(decoding: name, as: UTF8.self)
        }
        return nil
    }
}

/// Splits a direction's handshake bytes into messages (RFC 8446 §4: type, 24-bit length, body), across records.
/// Bodies are kept only for the messages the decryption reads (hellos, EncryptedExtensions, Finished, KeyUpdate);
/// certificates are skipped without being buffered.
struct HandshakeReader: Sendable {
    var header: [UInt8] = []
    var remaining = 0
    var keep = false
    var body: [UInt8] = []

    static let kept: Set<UInt8> = [1, 2, 8, 20, 24]
    static let maxKept = 1 << 16

    struct TooLong: Error {}

    mutating func feed(_ bytes: [UInt8]) throws(TooLong) -> [(type: UInt8, body: [UInt8])] {
        var out: [(UInt8, [UInt8])] = []
        var i = 0
        while i < bytes.count {
            if header.count < 4 {
                header.append(bytes[i])
                i += 1
                guard header.count == 4 else { continue }
                remaining = Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
                keep = Self.kept.contains(header[0])
                if keep && remaining > Self.maxKept { throw TooLong() }
            } else {
                let n = min(remaining, bytes.count - i)
                if keep { body += bytes[i..<(i + n)] }
                remaining -= n
                i += n
            }
            if header.count == 4 && remaining == 0 {
                out.append((header[0], body))
                header.removeAll(keepingCapacity: true)
                body = []
            }
        }
        return out
    }
}

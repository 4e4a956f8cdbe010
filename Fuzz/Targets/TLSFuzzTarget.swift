import PilotTraceProtocols
import PilotTraceWire

/// One input of the `tls` fuzz target: the TLS record parser, handshake reader and decryption
/// (``TLSDecryptingStream``) on a conversation, with a key log that travels in the input, then the same conversation
/// through the stream analyzer with that key log (detection on the plaintext, the decoders after it).
///
/// Input: byte 0 the chunk size the records are fed in; bytes 1–2 the key log's length (big-endian), then the key log
/// text; then the conversation as `(direction byte: 0 client, 1 server; 2-byte length; bytes)` pieces, as
/// `scripts/fuzz` extracts them from `Captures/tls*.pcap` with their `.keys`. Must return, never trap; the stream
/// buffers at most one record per direction.
///
/// Returns the plaintext bytes decrypted plus the messages decoded, so tests can tell an input reaches the decryption.
public enum TLSFuzzTarget {
    @discardableResult
    public static func run(_ input: [UInt8]) -> Int {
        guard input.count >= 3 else { return 0 }
        let chunk = max(1, Int(input[0]))
        let logLength = min(input.count - 3, Int(input[1]) << 8 | Int(input[2]))
        let log = TLSKeyLog(input[3..<(3 + logLength)])
        var pieces: [(Direction, [UInt8])] = []
        var i = 3 + logLength
        while i + 3 <= input.count {
            let dir: Direction = input[i] & 1 == 0 ? .toServer : .toClient
            let n = min(input.count - i - 3, Int(input[i + 1]) << 8 | Int(input[i + 2]))
            let bytes = Array(input[(i + 3)..<(i + 3 + n)])
            var k = 0
            while k < bytes.count {
                pieces.append((dir, Array(bytes[k..<min(bytes.count, k + chunk)])))
                k += chunk
            }
            i += 3 + n
        }
        var reached = 0
        var stream = TLSDecryptingStream()
        var out: [TLSDecryptingStream.Plaintext] = []
        for (n, (dir, bytes)) in pieces.enumerated() {
            stream.feed(dir, bytes, at: Timestamp(nanoseconds: Int64(n)), frame: CaptureFrame(number: n + 1), keys: { log.secrets(for: $0) }, into: &out)
            precondition(stream.bufferedByteCount <= 2 * (5 + TLSRecord.maxFragment))
        }
        _ = stream.finish()
        reached += out.reduce(0) { $0 + $1.bytes.count }

        // The same through the analyzer: plaintext classified and decoded as clear text.
        var analyzer = StreamAnalyzer()
        analyzer.tlsKeys = log
        let a = Endpoint(address: IPAddress("10.0.0.1")!, port: 40000), b = Endpoint(address: IPAddress("10.0.0.2")!, port: 8883)
        let id = ConnectionID(rawValue: 1)
        let info = ConnectionInfo(id: id, client: a, server: b, roleEvidence: .syn, firstSeen: Timestamp(nanoseconds: 0))
        var messages: [MessageEvent] = []
        analyzer.consume(.opened(info), into: &messages)
        for (n, (dir, bytes)) in pieces.enumerated() {
            analyzer.consume(.data(id, dir, bytes, Timestamp(nanoseconds: Int64(n)), frame: CaptureFrame(number: n + 1)), into: &messages)
        }
        let end = Timestamp(nanoseconds: Int64(pieces.count))
        for dir in Direction.allCases { analyzer.consume(.end(id, dir, end), into: &messages) }
        let summary = ConnectionSummary(
            info: info, lastSeen: end, synSeen: true, synAckSeen: true, handshakeAckSeen: true, toServer: DirectionStats(),
            toClient: DirectionStats(), closeReason: .fin)
        analyzer.consume(.closed(summary), into: &messages)
        return reached + messages.count
    }
}

import PilotTraceProtocols
import PilotTraceWire

/// One input of the `decoders` fuzz target: the pure decoders (MQTT, HTTP, WebSocket, detection, packet decoding and
/// reassembly, the stream analyzer) on bytes whose first byte picks the decoder and whose second picks the chunk size
/// the rest is fed in, so the fuzzer explores both the bytes and how they are split.
///
/// Every decoder must return, throw a typed error, or say "need more": a crash, a hang or unbounded memory is a
/// finding. Shared by `Fuzz/FuzzDecoders.swift` (libFuzzer) and the replay of `Fuzz/regressions/decoders/`.
///
/// Returns how far the input got (packets, events or messages decoded, detections made), so tests can tell that an
/// input reaches the decoder it is meant for.
///
/// Selectors (the first byte modulo 7): 0 MQTT stream decoder, 1 HTTP connection decoder, 2 WebSocket frames,
/// 3 detection and JSON, 4 frames of every link type through the TCP pipeline, 5 the stream analyzer with directions
/// taking turns by chunk, 6 a recorded conversation through the stream analyzer (``conversation(_:chunk:variant:)``).
public enum DecodersFuzzTarget {
    @discardableResult
    public static func run(_ input: [UInt8]) -> Int {
        guard input.count >= 2 else { return 0 }
        let selector = input[0]
        let chunk = max(1, Int(input[1]))
        let bytes = Array(input[2...])
        var chunks: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            chunks.append(Array(bytes[i..<min(bytes.count, i + chunk)]))
            i += chunk
        }
        let t = Timestamp(nanoseconds: 1)
        var reached = 0
        switch selector % 7 {
        case 0:
            var d = MQTTStreamDecoder(configuration: .init(maxStoredPayload: 256, maxRemainingLength: 1 << 16))
            for c in chunks {
                d.feed(c)
                while let _ = try? d.next() { reached += 1 }
                precondition(d.bufferedByteCount <= d.maximumBufferedBytes + c.count)
            }
        case 1:
            var d = HTTPConnectionDecoder()
            for (n, c) in chunks.enumerated() {
                d.feed(n % 3 == 2 ? .toClient : .toServer, c, at: t)
                reached += d.drainEvents().count
            }
            d.finish(at: t)
            reached += d.drainEvents().count
        case 2:
            var d = WebSocketFrameDecoder(direction: .toServer)
            for c in chunks {
                d.feed(c, at: t)
                reached += d.drainEvents().count
            }
        case 3:
            // Each says yes, no, or (nil) "need more".
            let detections: [Bool?] = [
                TLSClientHello.detect(bytes) != nil, MQTTStreamDecoder.looksLikeConnect(bytes),
                MQTTStreamDecoder.plausibleStream(bytes, minimumPackets: 3), HTTPConnectionDecoder.looksLikeRequest(bytes),
                HTTPConnectionDecoder.looksLikeStatusLine(bytes),
            ]
            reached = detections.filter { $0 == true }.count
            if let v = try? JSONValue.parse(bytes) {
                _ = v.compact
                reached += 1
            }
        case 4:
            // Frames of every link type through the packet decoder and the reassembler.
            var pipeline = TCPPipeline()
            var events: [StreamEvent] = []
            let links: [LinkType] = [.ethernet, .linuxSLL, .linuxSLL2, .null, .raw, .ipv4, .ipv6]
            for (n, c) in chunks.enumerated() {
                c.withUnsafeBytes { raw in
                    let record = CaptureRecord(
                        timestamp: Timestamp(nanoseconds: Int64(n) * 1_000_000), linkType: links[n % links.count],
                        data: raw, originalLength: raw.count)
                    pipeline.process(record, into: &events)
                }
                reached += events.count
                events.removeAll(keepingCapacity: true)
            }
            pipeline.finish(into: &events)
            reached += events.count
        case 5:
            // The stream analyzer on a connection whose two directions take turns.
            var analyzer = StreamAnalyzer()
            var out: [MessageEvent] = []
            let info = connection(serverPort: 1883, roleEvidence: selector & 8 == 0 ? .syn : .portHeuristic, at: t)
            analyzer.consume(.opened(info), into: &out)
            for (n, c) in chunks.enumerated() {
                let dir: Direction = n % 2 == 0 ? .toServer : .toClient
                analyzer.consume(c.first == 0xFF ? .gap(info.id, dir, length: c.count, t) : .data(info.id, dir, c, t), into: &out)
                reached += out.count
                out.removeAll(keepingCapacity: true)
            }
            analyzer.consume(.closed(summary(info, at: t)), into: &out)
            reached += out.count
        default:
            reached = conversation(bytes, chunk: chunk, variant: Int(selector / 7))
        }
        return reached
    }

    /// A TCP conversation as its two reassembled streams recorded it, through the stream analyzer: segments of
    /// `[flags][length, 2 bytes big-endian][bytes]`, flags bit 0 the direction (0 to the server, 1 to the client) and
    /// bit 1 a gap of `length` bytes (no bytes follow); each segment is delivered in pieces of `chunk` bytes. The
    /// variant's bit 0 makes the roles a port guess instead of a handshake, bit 1 puts the server on port 80.
    /// `scripts/fuzz` seeds this from the streams of `Captures/`. Returns the number of messages decoded.
    static func conversation(_ bytes: [UInt8], chunk: Int, variant: Int) -> Int {
        var messages = 0
        var t = Timestamp(nanoseconds: 1_000_000_000)
        var analyzer = StreamAnalyzer()
        var out: [MessageEvent] = []
        let info = connection(serverPort: variant & 2 == 0 ? 1883 : 80, roleEvidence: variant & 1 == 0 ? .syn : .portHeuristic, at: t)
        analyzer.consume(.opened(info), into: &out)
        var i = 0
        while i + 3 <= bytes.count {
            let flags = bytes[i]
            let length = Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            i += 3
            let dir: Direction = flags & 1 == 0 ? .toServer : .toClient
            t = t.adding(seconds: 0.001)
            if flags & 2 != 0 {
                analyzer.consume(.gap(info.id, dir, length: length, t), into: &out)
            } else {
                let segment = bytes[i..<min(bytes.count, i + length)]
                i += segment.count
                var j = segment.startIndex
                while j < segment.endIndex {
                    let piece = Array(segment[j..<min(segment.endIndex, j + chunk)])
                    analyzer.consume(.data(info.id, dir, piece, t), into: &out)
                    j += piece.count
                }
            }
            messages += out.count
            out.removeAll(keepingCapacity: true)
        }
        analyzer.consume(.closed(summary(info, at: t)), into: &out)
        return messages + out.count
    }

    static func connection(serverPort: UInt16, roleEvidence: RoleEvidence, at t: Timestamp) -> ConnectionInfo {
        ConnectionInfo(
            id: ConnectionID(rawValue: 1), client: Endpoint(address: .v4(1), port: 50_000),
            server: Endpoint(address: .v4(2), port: serverPort), roleEvidence: roleEvidence, firstSeen: t)
    }

    static func summary(_ info: ConnectionInfo, at t: Timestamp) -> ConnectionSummary {
        ConnectionSummary(
            info: info, lastSeen: t, synSeen: true, synAckSeen: true, handshakeAckSeen: true,
            toServer: DirectionStats(), toClient: DirectionStats(), closeReason: .fin)
    }
}

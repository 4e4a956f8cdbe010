// libFuzzer entry point for pilottrace's pure decoders (see scripts/fuzz, `make fuzz`).
//
// The first input byte picks the decoder, the second the chunk size the rest is fed in, so the fuzzer explores
// both the bytes and how they are split. Every decoder must return, throw a typed error, or say "need more":
// a crash, a hang or unbounded memory is a finding.
import PilotTraceProtocols
import PilotTraceWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoders(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count >= 2 else { return 0 }
    let input = UnsafeRawBufferPointer(start: start, count: count)
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
    switch selector % 6 {
    case 0:
        var d = MQTTStreamDecoder(configuration: .init(maxStoredPayload: 256, maxRemainingLength: 1 << 16))
        for c in chunks {
            d.feed(c)
            while let _ = try? d.next() {}
            precondition(d.bufferedByteCount <= d.maximumBufferedBytes + c.count)
        }
    case 1:
        var d = HTTPConnectionDecoder()
        for (n, c) in chunks.enumerated() {
            d.feed(n % 3 == 2 ? .toClient : .toServer, c, at: t)
            _ = d.drainEvents()
        }
        d.finish(at: t)
        _ = d.drainEvents()
    case 2:
        var d = WebSocketFrameDecoder(direction: .toServer)
        for c in chunks {
            d.feed(c, at: t)
            _ = d.drainEvents()
        }
    case 3:
        _ = TLSClientHello.detect(bytes)
        _ = MQTTStreamDecoder.looksLikeConnect(bytes)
        _ = MQTTStreamDecoder.plausibleStream(bytes, minimumPackets: 3)
        _ = HTTPConnectionDecoder.looksLikeRequest(bytes)
        _ = HTTPConnectionDecoder.looksLikeStatusLine(bytes)
        if let v = try? JSONValue.parse(bytes) { _ = v.compact }
    case 4:
        // Frames of every link type through the packet decoder and the reassembler.
        var pipeline = TCPPipeline()
        var events: [StreamEvent] = []
        let links: [LinkType] = [.ethernet, .linuxSLL, .linuxSLL2, .null, .raw, .ipv4, .ipv6]
        for (n, c) in chunks.enumerated() {
            c.withUnsafeBytes { raw in
                let record = CaptureRecord(timestamp: Timestamp(nanoseconds: Int64(n) * 1_000_000), linkType: links[n % links.count],
                                           data: raw, originalLength: raw.count)
                pipeline.process(record, into: &events)
            }
            events.removeAll(keepingCapacity: true)
        }
        pipeline.finish(into: &events)
    default:
        // The stream analyzer on a connection whose two directions take turns.
        var analyzer = StreamAnalyzer()
        var out: [MessageEvent] = []
        let info = ConnectionInfo(id: ConnectionID(rawValue: 1), client: Endpoint(address: .v4(1), port: 50_000),
                                  server: Endpoint(address: .v4(2), port: 1883), roleEvidence: selector & 8 == 0 ? .syn : .portHeuristic,
                                  firstSeen: t)
        analyzer.consume(.opened(info), into: &out)
        for (n, c) in chunks.enumerated() {
            let dir: Direction = n % 2 == 0 ? .toServer : .toClient
            analyzer.consume(c.first == 0xFF ? .gap(info.id, dir, length: c.count, t) : .data(info.id, dir, c, t), into: &out)
            out.removeAll(keepingCapacity: true)
        }
        analyzer.consume(.closed(ConnectionSummary(info: info, lastSeen: t, synSeen: true, synAckSeen: true, handshakeAckSeen: true,
                                                   toServer: DirectionStats(), toClient: DirectionStats(), closeReason: .fin)), into: &out)
    }
    return 0
}

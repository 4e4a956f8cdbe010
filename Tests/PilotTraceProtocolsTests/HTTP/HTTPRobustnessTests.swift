import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Seeded random and mutated streams: the decoders must not crash, must not hang and must keep their buffers
/// bounded, whatever they are fed.
@Suite struct HTTPRobustnessTests {
    typealias T = HTTPTestSupport
    let b = HTTPTestSupport.bytes

    /// Small limits, so that the bounds are reached often.
    let config = HTTPDecoderConfiguration(
        maxHeaderSectionBytes: 2048, maxBodyBytes: 4096, maxDecodedBodyBytes: 4096, maxChunkLineBytes: 256,
        maxPendingRequests: 32, maxWebSocketMessageBytes: 4096)

    /// What one side can hold at most, summed over both (see ``HTTPConnectionDecoder/bufferedByteCount``): a
    /// resync candidate line, a body, held upgrade input, a WebSocket message and a frame header, each plus one
    /// input piece.
    var bound: Int {
        let piece = 256
        let perSide =
            (HTTPConnectionDecoder.maxDetectableLineBytes + piece) + config.maxBodyBytes
            + (config.maxHeaderSectionBytes + piece) + (config.maxWebSocketMessageBytes + 14 + 125)
        return 2 * perSide
    }

    /// Valid conversations the mutations start from.
    func seeds() -> [[T.Step]] {
        let json = b(#"{"biz_code":"device_osd","data":{"sn":"1581F5FHB22A","list":[1,2,{"a":null}]}}"#)
        let gz = T.deflate(json, windowBits: 31)
        let upgrade = b("GET /mqtt?x-auth-token=t HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
        let key: [UInt8] = [1, 2, 3, 4]
        return [
            [
                .data(.toServer, b("POST /api/v1/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(json.count)\r\n\r\n") + json),
                .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: \(gz.count)\r\n\r\n") + gz),
                .data(
                    .toServer,
                    b("GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nPUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n")
                ),
                .data(
                    .toClient,
                    b(
                        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                    )),
                .end(.toServer),
                .data(.toClient, b("HTTP/1.0 200 OK\r\n\r\nuntil close")),
                .end(.toClient),
            ],
            [
                .data(.toServer, upgrade),
                .data(
                    .toClient,
                    b("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n") + T.frame(opcode: 1, payload: json)),
                .data(
                    .toServer,
                    T.frame(fin: false, opcode: 2, payload: [0x10, 0x0C], mask: key) + T.frame(opcode: 9, payload: [], mask: key)
                        + T.frame(opcode: 0, payload: [1, 2, 3], mask: key)),
                .data(.toClient, T.frame(opcode: 2, payload: [UInt8](repeating: 7, count: 300)) + T.frame(opcode: 8, payload: [0x03, 0xE8, 0x62])),
            ],
        ]
    }

    func mutate(_ steps: [T.Step], _ rng: inout T.SplitMix64) -> [T.Step] {
        var out: [T.Step] = []
        for step in steps {
            guard case .data(let d, var bytes) = step else {
                out.append(step)
                continue
            }
            for _ in 0..<Int.random(in: 0...4, using: &rng) where !bytes.isEmpty {
                let k = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<7, using: &rng) {
                case 0: bytes[k] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes[k] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                case 2: bytes.remove(at: k)
                case 3:
                    bytes.insert(contentsOf: [UInt8](repeating: UInt8.random(in: 0...255, using: &rng), count: Int.random(in: 1...3000, using: &rng)), at: k)
                case 4:
                    bytes.insert(
                        contentsOf: b(["\r\n", "0\r\n", "HTTP/1.1 ", "GET / HTTP/1.1\r\n", "ffffffffffffffffff", ":"].randomElement(using: &rng)!), at: k)
                case 5:
                    // Split around a gap.
                    out.append(.data(d, Array(bytes[..<k])))
                    out.append(.gap(d, [1, 7, 100, 5000, 1 << 40, Int.max].randomElement(using: &rng)!))
                    bytes = Array(bytes[k...])
                default: bytes = Array(bytes[..<k])
                }
            }
            out.append(.data(d, bytes))
        }
        if Int.random(in: 0..<4, using: &rng) == 0 { out.shuffle(using: &rng) }
        return out
    }

    func randomStream(_ rng: inout T.SplitMix64) -> [T.Step] {
        (0..<Int.random(in: 1...6, using: &rng)).map { _ in
            let d: Direction = Bool.random(using: &rng) ? .toServer : .toClient
            if Int.random(in: 0..<8, using: &rng) == 0 { return .gap(d, Int.random(in: 1...10_000, using: &rng)) }
            let alphabet = b("GETPOSHTP/1. \r\n:0123456789abcdef;{}[]\"")
            let n = Int.random(in: 0...2000, using: &rng)
            let printable = Bool.random(using: &rng)
            return .data(d, (0..<n).map { _ in printable ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng) })
        }
    }

    /// Feeds in random pieces of at most 256 bytes, checking the buffer bound after every call.
    func feed(_ steps: [T.Step], _ rng: inout T.SplitMix64) -> (events: Int, peak: Int) {
        var decoder = HTTPConnectionDecoder(configuration: config)
        var events = 0
        var peak = 0
        var clock = 0
        for step in steps {
            clock += 1
            switch step {
            case .data(let d, let bytes):
                var i = 0
                while i < bytes.count {
                    let n = min(bytes.count - i, Int.random(in: 1...256, using: &rng))
                    decoder.feed(d, Array(bytes[i..<(i + n)]), at: T.time(clock))
                    peak = max(peak, decoder.bufferedByteCount)
                    events += decoder.drainEvents().count
                    i += n
                }
            case .gap(let d, let n):
                decoder.gap(d, length: n, at: T.time(clock))
            case .end(let d):
                decoder.end(d, at: T.time(clock))
            }
            peak = max(peak, decoder.bufferedByteCount)
            events += decoder.drainEvents().count
        }
        decoder.finish(at: T.time(clock + 1))
        events += decoder.drainEvents().count
        return (events, peak)
    }

    @Test func mutatedAndRandomHTTPStreams() {
        var rng = T.SplitMix64(seed: 0x5EED_0001)
        let seeds = seeds()
        var peak = 0
        var total = 0
        for n in 0..<3000 {
            let steps = n % 3 == 2 ? randomStream(&rng) : mutate(seeds[n % seeds.count], &rng)
            let result = feed(steps, &rng)
            peak = max(peak, result.peak)
            total += result.events
            if result.peak > bound {
                Issue.record("case \(n): \(result.peak) bytes buffered, bound \(bound)")
                break
            }
        }
        #expect(total > 3000)
        #expect(peak <= bound)
    }

    @Test func unmutatedSeedsDecodeCleanly() {
        for seed in seeds() {
            let events = T.decode(seed, configuration: config)
            #expect(T.errors(events).isEmpty)
            #expect(!events.contains { if case .webSocketError = $0 { true } else { false } })
        }
    }

    @Test func mutatedAndRandomWebSocketStreams() {
        var rng = T.SplitMix64(seed: 0x5EED_0002)
        let config = WebSocketFrameDecoder.Configuration(maxMessageBytes: 1024, permessageDeflate: true)
        let key: [UInt8] = [9, 8, 7, 6]
        let valid =
            T.frame(fin: false, opcode: 1, payload: b(#"{"a":[1,2"#), mask: key) + T.frame(opcode: 9, payload: b("p"))
            + T.frame(opcode: 0, payload: b("]}")) + T.frame(opcode: 2, payload: [UInt8](repeating: 1, count: 2000))
            + T.frame(rsv: 4, opcode: 1, payload: T.deflate(b("hello hello hello"), windowBits: -15))
            + T.frame(opcode: 8, payload: [0x03, 0xE9, 0x78])
        var peak = 0
        var messages = 0
        for n in 0..<3000 {
            var bytes = valid
            if n % 3 == 2 {
                bytes = (0..<Int.random(in: 0...3000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                for _ in 0..<Int.random(in: 1...4, using: &rng) where !bytes.isEmpty {
                    let k = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: bytes[k] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.remove(at: k)
                    case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: k)
                    default: bytes = Array(bytes[..<k])
                    }
                }
            }
            var decoder = WebSocketFrameDecoder(direction: .toServer, configuration: config)
            var i = 0
            while i < bytes.count {
                let size = min(bytes.count - i, Int.random(in: 1...200, using: &rng))
                if Int.random(in: 0..<50, using: &rng) == 0 { decoder.gap(length: Int.random(in: 1...300, using: &rng), at: T.time(1)) }
                decoder.feed(Array(bytes[i..<(i + size)]), at: T.time(0))
                peak = max(peak, decoder.bufferedByteCount)
                messages += T.wsMessages(decoder.drainEvents()).count
                i += size
            }
            decoder.end(at: T.time(2))
            messages += T.wsMessages(decoder.drainEvents()).count
        }
        #expect(peak <= 1024 + 14 + 125)
        #expect(messages > 3000)
    }

    @Test func mutatedJSONEitherParsesAndRoundTripsOrThrows() throws {
        var rng = T.SplitMix64(seed: 0x5EED_0003)
        let base = b(#"{"biz_code":"device_osd","ts":1700000000000,"data":{"lat":22.5,"list":[true,false,null,-1.5e-3,"\u00e9\ud83d\ude81"],"s":"a\"b"}}"#)
        let alphabet = b("{}[]:,\"\\u0123456789eE+-.truefalsn \t\n")
        var parsed = 0
        for _ in 0..<5000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...3, using: &rng) where !bytes.isEmpty {
                let k = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[k] = alphabet.randomElement(using: &rng)!
                case 1: bytes.remove(at: k)
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: k)
                }
            }
            if let value = try? JSONValue.parse(bytes) {
                parsed += 1
                #expect(try JSONValue.parse(value.compact) == value)
                #expect(try JSONValue.parse(value.pretty()) == value)
            }
        }
        #expect(parsed > 0)
    }
}

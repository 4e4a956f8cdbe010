// Micro-benchmarks of the pure core, one packet per inner iteration: every metric marked `*` in the output is per
// packet (mallocs per packet, instructions per packet, time per packet). Inputs are built once, before measuring.
import Benchmark
import PilotTraceFlow
import PilotTraceLab
import PilotTraceProtocols
import PilotTraceWire

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .instructions, .mallocCountTotal]
    // 1,000 packets per measured iteration; results are shown per packet.
    let perPacket = Benchmark.Configuration(
        metrics: metrics, timeUnits: .nanoseconds, warmupIterations: 3, scalingFactor: .kilo,
        maxDuration: .seconds(2), maxIterations: 200)

    // MARK: MQTT

    // A device's osd PUBLISH (QoS 0, ~230 bytes), delivered in three segments so every packet spans segments.
    Benchmark("MQTT stream decoder: osd PUBLISH split across 3 segments", configuration: perPacket) { benchmark in
        let packet = Frames.publish("thing/product/5YSZL260000042/osd", Frames.osdJSON)
        let cut1 = packet.count / 3, cut2 = 2 * packet.count / 3
        let pieces = [Array(packet[..<cut1]), Array(packet[cut1..<cut2]), Array(packet[cut2...])]
        var decoder = MQTTStreamDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for p in pieces {
                decoder.feed(p)
                while let record = try? decoder.next() { blackHole(record) }
            }
        }
    }

    // The same packet arriving whole (one segment, one packet): the decoder's floor.
    Benchmark("MQTT stream decoder: osd PUBLISH in one segment", configuration: perPacket) { benchmark in
        let packet = Frames.publish("thing/product/5YSZL260000042/osd", Frames.osdJSON)
        var decoder = MQTTStreamDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            decoder.feed(packet)
            while let record = try? decoder.next() { blackHole(record) }
        }
    }

    // MARK: HTTP

    // One login exchange (request + response with a JSON body: two messages per iteration) on a kept-alive connection.
    Benchmark("HTTP decoder: login request and response (Content-Length)", configuration: perPacket) { benchmark in
        let request = Frames.loginRequest, response = Frames.loginResponse(chunked: false)
        var decoder = HTTPConnectionDecoder()
        let t = Timestamp(nanoseconds: 1_795_000_000_000_000_000)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            decoder.feed(.toServer, request, at: t)
            decoder.feed(.toClient, response, at: t)
            blackHole(decoder.drainEvents())
        }
    }

    Benchmark("HTTP decoder: login request and chunked response", configuration: perPacket) { benchmark in
        let request = Frames.loginRequest, response = Frames.loginResponse(chunked: true)
        var decoder = HTTPConnectionDecoder()
        let t = Timestamp(nanoseconds: 1_795_000_000_000_000_000)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            decoder.feed(.toServer, request, at: t)
            decoder.feed(.toClient, response, at: t)
            blackHole(decoder.drainEvents())
        }
    }

    // MARK: TCP

    // Frames through the packet decoder and the reassembler (TCPPipeline): one 1,000-byte data segment per
    // iteration, in order, then with every pair of segments swapped (each second segment is buffered, then both
    // are delivered).
    for outOfOrder in [false, true] {
        Benchmark(
            "TCP reassembly (decode + reassemble): \(outOfOrder ? "out-of-order (pairs swapped)" : "in-order") segments",
            configuration: perPacket
        ) { benchmark in
            let frames = Frames.connection(segments: 20_000, size: 1000, swapPairs: outOfOrder)
            var replay = Replay(frames: frames)
            var events: [StreamEvent] = []
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                replay.next(into: &events)
                blackHole(events.count)
                events.removeAll(keepingCapacity: true)
            }
        }
    }

    // MARK: The whole path

    // A generated capture (20 devices logging in, osd every 2 s, noise) through TCPPipeline → StreamAnalyzer →
    // SessionTracker + DeviationEngine, frame by frame, as `analyze --no-store` runs it.
    Benchmark("Pipeline per frame: TCPPipeline → StreamAnalyzer → SessionTracker + DeviationEngine", configuration: perPacket) { benchmark in
        var parameters = TrafficGenerator.Parameters()
        parameters.devices = 20
        parameters.duration = 120
        parameters.noise = 2
        var frames: [(Timestamp, [UInt8])] = []
        TrafficGenerator(parameters).run { t, f in frames.append((t, f)) }
        var path = WholePath()
        var i = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            if i == frames.count {
                i = 0
                path = WholePath()  // time starts again: fresh state (amortised over the whole capture)
            }
            path.process(frames[i].0, frames[i].1)
            i += 1
        }
    }
}

/// The pipeline as `AnalysisRun.analyzeWithoutStoring` drives it, one frame at a time.
struct WholePath: ~Copyable {
    var pipeline = TCPPipeline()
    var analyzer = StreamAnalyzer()
    let tracker = SessionTracker()
    let engine = DeviationEngine()
    var events: [StreamEvent] = []
    var decoded: [MessageEvent] = []

    mutating func process(_ t: Timestamp, _ frame: [UInt8]) {
        frame.withUnsafeBytes { bytes in
            pipeline.process(CaptureRecord(timestamp: t, linkType: .ethernet, data: bytes, originalLength: bytes.count), into: &events)
        }
        guard !events.isEmpty else { return }
        analyzer.consume(events, into: &decoded)
        for m in decoded {
            tracker.consume(m)
            engine.consume(m)
        }
        tracker.advance(to: t)
        events.removeAll(keepingCapacity: true)
        decoded.removeAll(keepingCapacity: true)
    }
}

/// Replays one connection's frames through a TCPPipeline, starting over with a fresh pipeline when they run out.
struct Replay: ~Copyable {
    let frames: [[UInt8]]
    var pipeline = TCPPipeline()
    var i = 0
    var t: Int64 = 1_795_000_000_000_000_000
    init(frames: [[UInt8]]) {
        self.frames = frames
        var discard: [StreamEvent] = []
        for _ in 0..<3 { next(into: &discard) }  // the handshake
    }

    mutating func next(into events: inout [StreamEvent]) {
        if i == frames.count {
            pipeline = TCPPipeline()
            i = 0
        }
        t += 1000
        frames[i].withUnsafeBytes { bytes in
            pipeline.process(
                CaptureRecord(timestamp: Timestamp(nanoseconds: t), linkType: .ethernet, data: bytes, originalLength: bytes.count),
                into: &events)
        }
        i += 1
    }
}

/// Wire bytes for the benchmarks.
enum Frames {
    static let osdJSON =
        #"{"tid":"o17","bid":"o","timestamp":1795000000000,"gateway":"5YSZL260000042","data":{"capacity_percent":87,"latitude":22.5,"longitude":113.9,"height":120.5}}"#

    /// A QoS 0 PUBLISH (the lab's MQTT builder, as the synthetic captures use).
    static func publish(_ topic: String, _ json: String) -> [UInt8] { MQTTWire.publish(topic, json) }

    static let loginRequest: [UInt8] = {
        let body = #"{"username":"pilot42","password":"pw42","flag":2}"#
        return Array(
            "POST /manage/api/v1/login HTTP/1.1\r\nHost: cloud\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
    }()

    static func loginResponse(chunked: Bool) -> [UInt8] {
        let body =
            #"{"code":0,"message":"success","data":{"username":"pilot42","workspace_id":"w1","mqtt_username":"rc42","mqtt_password":"mp42","mqtt_addr":"tcp://10.1.0.1:1883","access_token":"eyJhbGciOiJIUzI1NiJ9.eyJkZXZpY2UiOiJ42In0.c2lnbmF0dXJl"}}"#
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        guard chunked else { return Array((head + "Content-Length: \(body.utf8.count)\r\n\r\n" + body).utf8) }
        let bytes = Array(body.utf8)
        var text = head + "Transfer-Encoding: chunked\r\n\r\n"
        var i = 0
        while i < bytes.count {
            let n = min(64, bytes.count - i)
            text += String(n, radix: 16) + "\r\n" + String(decoding: bytes[i..<(i + n)], as: UTF8.self) + "\r\n"
            i += n
        }
        return Array((text + "0\r\n\r\n").utf8)
    }

    /// A handshake, then `segments` client data segments of `size` bytes (osd publishes back to back), synthesised in
    /// the lab generator's layout (Ethernet, minimal headers).
    static func connection(segments: Int, size: Int, swapPairs: Bool) -> [[UInt8]] {
        var tcp = TCPFrameSynthesizer(
            client: Endpoint(address: .v4(0x0A00_000A), port: 50_000), server: Endpoint(address: .v4(0x0A01_0001), port: 1883),
            initialSequence: (client: 1000, server: 5000), maximumSegmentSize: size, format: TrafficGenerator.format)
        var frames = tcp.handshake()
        var stream: [UInt8] = []
        let osd = publish("thing/product/5YSZL260000042/osd", osdJSON)
        while stream.count < segments * size { stream += osd }
        var data: [[UInt8]] = []
        for k in 0..<segments { data += tcp.data(Array(stream[(k * size)..<((k + 1) * size)]), from: .toServer) }
        if swapPairs { for k in stride(from: 0, to: data.count - 1, by: 2) { data.swapAt(k, k + 1) } }
        frames += data
        return frames
    }
}

import PilotTraceFlow
import PilotTraceProtocols
import PilotTraceWire
import Testing
@testable import PilotTraceLab

@Suite struct TrafficGeneratorTests {
    /// Runs a generated capture through the whole pure pipeline.
    func analyze(_ p: TrafficGenerator.Parameters) -> (sessions: [Session], findings: [Deviation], counters: PacketCounters, frames: Int, sorted: Bool) {
        var pipeline = TCPPipeline()
        var analyzer = StreamAnalyzer()
        var tracker = SessionTracker()
        var engine = DeviationEngine()
        var events: [StreamEvent] = [], decoded: [MessageEvent] = []
        var frames = 0, sorted = true, last = Timestamp.zero
        TrafficGenerator(p).run { t, frame in
            frames += 1
            if t < last { sorted = false }
            last = t
            frame.withUnsafeBytes { raw in
                pipeline.process(CaptureRecord(timestamp: t, linkType: .ethernet, data: raw, originalLength: raw.count), into: &events)
            }
            analyzer.consume(events, into: &decoded)
            events.removeAll(keepingCapacity: true)
            for m in decoded { tracker.consume(m); engine.consume(m) }
            decoded.removeAll(keepingCapacity: true)
            tracker.advance(to: t)
        }
        pipeline.finish(into: &events)
        analyzer.consume(events, into: &decoded)
        for m in decoded { tracker.consume(m); engine.consume(m) }
        let sessions = tracker.finish(at: last)
        return (sessions, engine.finish(sessions: sessions, captureEnd: last), pipeline.counters, frames, sorted)
    }

    @Test func theGeneratedCaptureIsWhatItsParametersSay() {
        var p = TrafficGenerator.Parameters()
        p.devices = 12
        p.duration = 30
        p.noise = 2
        p.seed = 7
        let r = analyze(p)
        #expect(r.sorted)
        #expect(r.counters.malformed == 0)
        let expectation = TrafficGenerator(p).expectation
        #expect(r.sessions.count == expectation.sessions)
        #expect(r.sessions.allSatisfy { $0.state == .offline })
        #expect(r.sessions.filter { $0.events.contains { $0.step == .reconnect } }.count == expectation.reconnects)
        #expect(Set(r.sessions.compactMap(\.gatewaySN)).count == 12)
        #expect(r.findings.filter { $0.rule.severity >= .warning }.isEmpty, "\(r.findings.filter { $0.rule.severity >= .warning }.map(\.text))")
        for s in r.sessions {
            #expect(s.events.first?.step == .h5Page)
            #expect(s.events.last?.step == .mqttDisconnect)
        }
    }

    @Test func theSameSeedGivesTheSameBytes() {
        var p = TrafficGenerator.Parameters()
        p.devices = 3
        p.duration = 10
        var a: [UInt8] = [], b: [UInt8] = []
        TrafficGenerator(p).run { _, f in a += f }
        TrafficGenerator(p).run { _, f in b += f }
        #expect(a == b)
        p.seed = 2
        var c: [UInt8] = []
        TrafficGenerator(p).run { _, f in c += f }
        #expect(a != c)
    }
}

import Dispatch
import Foundation
import NIOConcurrencyHelpers
import PilotTraceWire
import Testing

@testable import PilotTraceProxy

/// The recorder under concurrent use: every connection's bytes come out whole, in order, in strictly increasing time.
struct ProxyRecorderTests {
    @Test func concurrentConnectionsComeOutWholeAndInTimeOrder() throws {
        let frames = NIOLockedValueBox<[ProxyRecorder.Frame]>([])
        // A clock that stands still: the recorder alone must keep times strictly increasing.
        let recorder = ProxyRecorder(clock: { 1_800_000_000_000_000_000 }) { batch in frames.withLockedValue { $0 += batch } }
        let connections = 8, chunks = 50
        DispatchQueue.concurrentPerform(iterations: connections) { i in
            let id = recorder.open(client: Endpoint(address: IPAddress("10.0.0.\(i + 2)")!, port: UInt16(40_000 + i)),
                                   server: Endpoint(address: IPAddress("10.0.0.1")!, port: 8080))
            for c in 0..<chunks {
                recorder.data(id, [UInt8](repeating: UInt8(c), count: 1000 + c * 37), from: c % 3 == 0 ? .toClient : .toServer)
            }
            if i == 0 { recorder.rst(id, from: .toServer) } else { recorder.fin(id, from: .toServer) }
            recorder.close(id, serverFirst: false)
        }
        recorder.flush()
        let out = frames.withLockedValue { $0 }
        #expect(recorder.connectionCount == connections)
        #expect(recorder.frameCount == out.count)
        #expect(zip(out, out.dropFirst()).allSatisfy { $0.time < $1.time })

        var pipeline = TCPPipeline()
        var events: [StreamEvent] = []
        for f in out {
            f.bytes.withUnsafeBytes { pipeline.process(CaptureRecord(timestamp: f.time, linkType: .raw, data: $0, originalLength: f.bytes.count), into: &events) }
        }
        pipeline.finish(into: &events)
        var bytes: [ConnectionID: [Direction: Int]] = [:]
        var closes: [CloseReason] = []
        for e in events {
            switch e {
            case .data(let id, let d, let b, _, _): bytes[id, default: [:]][d, default: 0] += b.count
            case .gap: Issue.record("gap")
            case .closed(let s): closes.append(s.closeReason)
            default: break
            }
        }
        let up = (0..<chunks).filter { $0 % 3 != 0 }.map { 1000 + $0 * 37 }.reduce(0, +)
        let down = (0..<chunks).filter { $0 % 3 == 0 }.map { 1000 + $0 * 37 }.reduce(0, +)
        #expect(bytes.count == connections)
        #expect(bytes.values.allSatisfy { $0[.toServer] == up && $0[.toClient] == down })
        #expect(closes.sorted { $0.rawValue < $1.rawValue } == [CloseReason.fin] * (connections - 1) + [.rst])
    }
}

private func * <T>(lhs: [T], rhs: Int) -> [T] { Array((0..<rhs).flatMap { _ in lhs }) }

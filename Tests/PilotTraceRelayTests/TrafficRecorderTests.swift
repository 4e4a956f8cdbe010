import Dispatch
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceRelay

/// The one recorder of the proxy and the replay: its frames are the synthesiser's, stamped strictly in time order;
/// under concurrent use every connection's bytes come out whole and in order; a failing consumer stops it.
struct TrafficRecorderTests {
    /// What the sink received. The sink runs on the recorder's queue only and is read after `flush()`.
    final class Received: @unchecked Sendable {
        var frames: [TrafficRecorder.Frame] = []
        var batches = 0
    }

    let client = Endpoint(address: IPAddress("10.0.0.2")!, port: 40_000)
    let server = Endpoint(address: IPAddress("10.0.0.1")!, port: 8080)

    @Test func theFramesAreTheSynthesisersStampedWithTheClock() {
        let received = Received()
        var now: Int64 = 1_800_000_000_000_000_000
        let recorder = TrafficRecorder(clock: { now }, initialSequences: { (client: 100, server: 900) }) { received.frames += $0 }
        let id = recorder.open(client: client, server: server)
        now += 1_000
        recorder.data(id, Array("GET / HTTP/1.1\r\n\r\n".utf8), from: .toServer)
        recorder.data(id, Array("HTTP/1.1 204 No Content\r\n\r\n".utf8), from: .toClient)
        now += 1_000
        recorder.fin(id, from: .toClient)
        recorder.close(id, serverFirst: true)
        recorder.flush()

        var s = TCPFrameSynthesizer(client: client, server: server, initialSequence: (client: 100, server: 900))
        let expected =
            s.handshake() + s.data(Array("GET / HTTP/1.1\r\n\r\n".utf8), from: .toServer)
            + s.data(Array("HTTP/1.1 204 No Content\r\n\r\n".utf8), from: .toClient) + s.fin(from: .toClient) + s.close(serverFirst: true)
        #expect(received.frames.map(\.bytes) == expected)
        // Each event's time, then 1 ns apart within it: the handshake's three frames at the open, and so on.
        let t0: Int64 = 1_800_000_000_000_000_000
        #expect(received.frames.map(\.time.nanoseconds) == [t0, t0 + 1, t0 + 2, t0 + 1_000, t0 + 1_001, t0 + 2_000, t0 + 2_001, t0 + 2_002, t0 + 2_003])
        #expect(recorder.frameCount == expected.count && recorder.connectionCount == 1)
        #expect(recorder.error == nil)
    }

    @Test func concurrentConnectionsComeOutWholeAndInTimeOrder() throws {
        let received = Received()
        // A clock that stands still: the recorder alone must keep times strictly increasing.
        let recorder = TrafficRecorder(clock: { 1_800_000_000_000_000_000 }) { received.frames += $0 }
        let connections = 8, chunks = 50
        DispatchQueue.concurrentPerform(iterations: connections) { i in
            let id = recorder.open(client: Endpoint(address: IPAddress("10.0.0.\(i + 2)")!, port: UInt16(40_000 + i)), server: server)
            for c in 0..<chunks {
                recorder.data(id, [UInt8](repeating: UInt8(c), count: 1000 + c * 37), from: c % 3 == 0 ? .toClient : .toServer)
            }
            if i == 0 { recorder.rst(id, from: .toServer) } else { recorder.fin(id, from: .toServer) }
            recorder.close(id, serverFirst: false)
        }
        recorder.flush()
        let out = received.frames
        #expect(recorder.connectionCount == connections)
        #expect(recorder.frameCount == out.count)
        #expect(zip(out, out.dropFirst()).allSatisfy { $0.time < $1.time })

        let r = Reassembled(out, linkType: TCPFrameSynthesizer.Format.recorded.link.linkType)
        #expect(r.gaps == 0)
        // Every connection carried the same chunks, in the order they were sent.
        func sent(toClient: Bool) -> [UInt8] {
            (0..<chunks).filter { ($0 % 3 == 0) == toClient }.flatMap { [UInt8](repeating: UInt8($0), count: 1000 + $0 * 37) }
        }
        let (up, down) = (sent(toClient: false), sent(toClient: true))
        #expect(r.bytes.count == connections)
        #expect(r.bytes.values.allSatisfy { $0 == [.toServer: up, .toClient: down] })
        #expect(r.closed.map(\.closeReason).filter { $0 == .fin }.count == connections - 1)
        #expect(r.closed.map(\.closeReason).filter { $0 == .rst }.count == 1)
    }

    struct SinkFailed: Error {}

    @Test func aFailingConsumerStopsTheRecording() {
        let received = Received()
        let recorder = TrafficRecorder { frames in
            received.batches += 1
            if received.batches == 2 { throw SinkFailed() }
            received.frames += frames
        }
        let id = recorder.open(client: client, server: server)
        recorder.flush()
        recorder.data(id, [1, 2, 3], from: .toServer)
        recorder.flush()
        recorder.data(id, [4, 5, 6], from: .toServer)
        recorder.close(id, serverFirst: false)
        recorder.flush()
        #expect(recorder.error is SinkFailed)
        #expect(received.batches == 2, "nothing is handed over after the first error")
        #expect(received.frames.count == 3)  // the handshake
    }
}

import Foundation
import PilotTraceRelay
import PilotTraceWire

/// Records one replayed session's connections as synthesised TCP frames (``TCPFrameSynthesizer``, raw IP), stamped
/// with the wall clock in strictly increasing order, kept in memory until the replay is analysed and stored.
/// Every connection's thread or event loop may call in.
final class FrameCollector: TrafficRecording, @unchecked Sendable {
    private let lock = NSLock()
    private var connections: [Int: TCPFrameSynthesizer] = [:]
    private var nextID = 1
    private var collected: [(time: Timestamp, bytes: [UInt8])] = []
    private var last: Int64 = 0

    func open(client: Endpoint, server: Endpoint) -> Int {
        lock.withLock {
            let id = nextID
            nextID += 1
            var s = TCPFrameSynthesizer(client: client, server: server,
                                        initialSequence: (UInt32.random(in: .min ... .max), UInt32.random(in: .min ... .max)))
            append(s.handshake())
            connections[id] = s
            return id
        }
    }

    func data(_ id: Int, _ bytes: [UInt8], from direction: Direction) { with(id) { $0.data(bytes, from: direction) } }
    func fin(_ id: Int, from direction: Direction) { with(id) { $0.fin(from: direction) } }
    func rst(_ id: Int, from direction: Direction) { with(id) { $0.rst(from: direction) } }

    func close(_ id: Int, serverFirst: Bool) {
        lock.withLock {
            guard var s = connections.removeValue(forKey: id) else { return }
            append(s.close(serverFirst: serverFirst))
        }
    }

    /// The frames so far, in time order.
    func frames() -> [(time: Timestamp, bytes: [UInt8])] { lock.withLock { collected } }

    private func with(_ id: Int, _ body: (inout TCPFrameSynthesizer) -> [[UInt8]]) {
        lock.withLock {
            guard var s = connections[id] else { return }
            append(body(&s))
            connections[id] = s
        }
    }

    /// Under the lock: stamps frames with the wall clock, strictly increasing.
    private func append(_ frames: [[UInt8]]) {
        for f in frames {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let now = max(Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec), last + 1)
            last = now
            collected.append((Timestamp(nanoseconds: now), f))
        }
    }
}

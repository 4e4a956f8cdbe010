import Dispatch
import Foundation
import NIOConcurrencyHelpers
import PilotTraceWire

/// Records what the proxy relays on its app-side connections as synthesised TCP frames, stamped with the wall
/// clock, strictly in time order, and hands them in batches to one serial consumer (the live analysis and the
/// pcapng writer, which are not thread-safe).
///
/// Every event loop calls in; a lock orders the events and stamps them, so frames leave in the order their bytes
/// were seen. The consumer runs on its own queue: the event loops never wait for SQLite.
public final class ProxyRecorder: @unchecked Sendable {
    public typealias Frame = (time: Timestamp, bytes: [UInt8])
    public typealias Sink = ([Frame]) throws -> Void

    let lock = NIOLock()
    var connections: [Int: TCPFrameSynthesizer] = [:]
    var nextID = 1
    var pending: [Frame] = []
    var lastNanoseconds: Int64 = 0
    var drainScheduled = false
    let queue = DispatchQueue(label: "pilottrace.proxy.recorder")
    let sink: Sink
    let clock: () -> Int64
    var sinkError: Error?
    public private(set) var frameCount = 0
    public private(set) var connectionCount = 0

    /// - Parameters:
    ///   - clock: nanoseconds since the epoch (the wall clock by default; tests pass their own).
    ///   - sink: receives the frames, in order, on one serial queue.
    public init(clock: @escaping () -> Int64 = ProxyRecorder.wallClock, sink: @escaping Sink) {
        self.clock = clock
        self.sink = sink
    }

    public static func wallClock() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// The first error the sink threw (recording stopped there).
    public var error: Error? { lock.withLock { sinkError } }

    /// A new connection from `client` to `server`: its handshake is recorded now. Returns its handle.
    public func open(client: Endpoint, server: Endpoint) -> Int {
        lock.withLock {
            let id = nextID
            nextID += 1
            connectionCount += 1
            var s = TCPFrameSynthesizer(client: client, server: server,
                                        initialSequence: (UInt32.random(in: .min ... .max), UInt32.random(in: .min ... .max)))
            append(s.handshake())
            connections[id] = s
            return id
        }
    }

    public func data(_ id: Int, _ bytes: [UInt8], from direction: Direction) {
        lock.withLock {
            guard var s = connections[id] else { return }
            append(s.data(bytes, from: direction))
            connections[id] = s
        }
    }

    public func fin(_ id: Int, from direction: Direction) {
        lock.withLock {
            guard var s = connections[id] else { return }
            append(s.fin(from: direction))
            connections[id] = s
        }
    }

    public func rst(_ id: Int, from direction: Direction) {
        lock.withLock {
            guard var s = connections[id] else { return }
            append(s.rst(from: direction))
            connections[id] = s
        }
    }

    /// The connection is gone: whatever half is still open is closed (client's FIN first when it closed first).
    public func close(_ id: Int, serverFirst: Bool) {
        lock.withLock {
            guard var s = connections.removeValue(forKey: id) else { return }
            if serverFirst {
                append(s.fin(from: .toClient))
                append(s.fin(from: .toServer))
            } else {
                append(s.fin(from: .toServer))
                append(s.fin(from: .toClient))
            }
        }
    }

    /// Under the lock: stamps frames (strictly increasing times) and schedules the consumer.
    func append(_ frames: [[UInt8]]) {
        guard !frames.isEmpty else { return }
        for f in frames {
            let now = max(clock(), lastNanoseconds + 1)
            lastNanoseconds = now
            pending.append((Timestamp(nanoseconds: now), f))
        }
        frameCount += frames.count
        if !drainScheduled {
            drainScheduled = true
            queue.async { self.drain() }
        }
    }

    func drain() {
        let batch: [Frame] = lock.withLock {
            drainScheduled = false
            let b = pending
            pending.removeAll(keepingCapacity: true)
            return sinkError == nil ? b : []
        }
        guard !batch.isEmpty else { return }
        do { try sink(batch) } catch { lock.withLock { if sinkError == nil { sinkError = error } } }
    }

    /// Runs `body` on the consumer's queue after the frames recorded so far (e.g. a periodic store refresh).
    public func perform(_ body: @escaping () throws -> Void) {
        nonisolated(unsafe) let body = body  // runs on the consumer's queue only, like the sink
        queue.async {
            self.drain()
            do { try body() } catch { self.lock.withLock { if self.sinkError == nil { self.sinkError = error } } }
        }
    }

    /// Waits until every frame recorded so far has reached the sink.
    public func flush() {
        queue.sync { drain() }
    }
}

import Dispatch
import Foundation
import NIOConcurrencyHelpers
import PilotTraceRelay
import PilotTraceWire

/// Records what the proxy relays on its app-side connections as synthesised TCP frames, stamped with the wall
/// clock, strictly in time order, and hands them in batches to one serial consumer (`pilottrace proxy`: the queue of
/// the live loop, which analyzes and writes them on its own thread).
///
/// Every event loop calls in; a lock orders the events and stamps them, so frames leave in the order their bytes
/// were seen. The consumer runs on its own queue: the event loops never wait for SQLite.
public final class ProxyRecorder: @unchecked Sendable {
    public typealias Frame = (time: Timestamp, bytes: [UInt8])
    public typealias Sink = ([Frame]) throws -> Void

    /// What an event loop saw, stamped; frames are made from these on the consumer's queue.
    enum Event {
        case open(Int, client: Endpoint, server: Endpoint)
        case data(Int, [UInt8], Direction)
        case fin(Int, Direction)
        case rst(Int, Direction)
        case close(Int, serverFirst: Bool)
    }

    let lock = NIOLock()
    // Under the lock (any event loop):
    var nextID = 1
    var pending: [(Int64, Event)] = []
    var lastNanoseconds: Int64 = 0
    var drainScheduled = false
    var sinkError: Error?
    var connectionsOpened = 0
    // On the consumer's queue only:
    var connections: [Int: TCPFrameSynthesizer] = [:]
    var lastFrame: Int64 = 0
    var frames = 0

    let queue = DispatchQueue(label: "pilottrace.proxy.recorder")
    let sink: Sink
    let clock: () -> Int64

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
    /// Frames handed to the sink so far (read after ``flush()``).
    public var frameCount: Int { queue.sync { frames } }
    public var connectionCount: Int { lock.withLock { connectionsOpened } }

    /// A new connection from `client` to `server`: its handshake is recorded now. Returns its handle.
    public func open(client: Endpoint, server: Endpoint) -> Int {
        lock.withLock {
            let id = nextID
            nextID += 1
            connectionsOpened += 1
            append(.open(id, client: client, server: server))
            return id
        }
    }

    public func data(_ id: Int, _ bytes: [UInt8], from direction: Direction) { lock.withLock { append(.data(id, bytes, direction)) } }
    public func fin(_ id: Int, from direction: Direction) { lock.withLock { append(.fin(id, direction)) } }
    public func rst(_ id: Int, from direction: Direction) { lock.withLock { append(.rst(id, direction)) } }

    /// The connection is gone: whatever half is still open is closed (client's FIN first when it closed first).
    public func close(_ id: Int, serverFirst: Bool) { lock.withLock { append(.close(id, serverFirst: serverFirst)) } }

    /// Under the lock: stamps the event (strictly increasing times, so the order is the order seen) and schedules
    /// the consumer.
    func append(_ e: Event) {
        let now = max(clock(), lastNanoseconds + 1)
        lastNanoseconds = now
        pending.append((now, e))
        if !drainScheduled {
            drainScheduled = true
            queue.async { self.drain() }
        }
    }

    /// On the queue: the events so far become frames for the sink.
    func drain() {
        let batch: [(Int64, Event)] = lock.withLock {
            drainScheduled = false
            let b = pending
            pending.removeAll(keepingCapacity: true)
            return sinkError == nil ? b : []
        }
        guard !batch.isEmpty else { return }
        var out: [Frame] = []
        out.reserveCapacity(batch.count * 2)
        for (t, e) in batch {
            let made: [[UInt8]]
            switch e {
            case .open(let id, let client, let server):
                var s = TCPFrameSynthesizer(client: client, server: server,
                                            initialSequence: (UInt32.random(in: .min ... .max), UInt32.random(in: .min ... .max)))
                made = s.handshake()
                connections[id] = s
            case .data(let id, let bytes, let d):
                made = connections[id]?.data(bytes, from: d) ?? []
            case .fin(let id, let d):
                made = connections[id]?.fin(from: d) ?? []
            case .rst(let id, let d):
                made = connections[id]?.rst(from: d) ?? []
            case .close(let id, let serverFirst):
                guard var s = connections.removeValue(forKey: id) else { made = []; break }
                made = s.close(serverFirst: serverFirst)
            }
            for f in made {
                let stamp = max(t, lastFrame + 1)
                lastFrame = stamp
                out.append((Timestamp(nanoseconds: stamp), f))
            }
        }
        frames += out.count
        do { try sink(out) } catch { lock.withLock { if sinkError == nil { sinkError = error } } }
    }

    /// Waits until every frame recorded so far has reached the sink.
    public func flush() {
        queue.sync { drain() }
    }
}

// What the proxy's app-side connections report to, through their `RecordingHandler`s.
extension ProxyRecorder: TrafficRecording {}

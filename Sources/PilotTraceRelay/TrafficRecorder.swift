import Dispatch
import Foundation
import PilotTraceWire

/// Records what relayed connections carry as synthesised TCP frames (``TCPFrameSynthesizer``: raw IP, complete
/// headers), stamped strictly in time order, and hands them in batches to one serial consumer: the one recorder of
/// the proxy (whose consumer is the live analysis and the pcapng writer, which are not thread-safe) and of the replay
/// (whose consumer keeps one replay's frames until they are analysed).
///
/// Every event loop or thread calls in; a lock orders the events and stamps them with the clock, so frames leave in
/// the order their bytes were seen. Frames are made and handed over on the recorder's own queue: the callers never
/// wait for the consumer (for SQLite, say).
///
/// ## Topics
/// - ``init(clock:initialSequences:sink:)``
/// - ``flush()``
/// - ``error``
public final class TrafficRecorder: TrafficRecording, @unchecked Sendable {
    public typealias Frame = (time: Timestamp, bytes: [UInt8])
    public typealias Sink = ([Frame]) throws -> Void

    /// What a caller reported, stamped; frames are made from these on the consumer's queue.
    enum Event {
        case open(Int, client: Endpoint, server: Endpoint)
        case data(Int, [UInt8], Direction)
        case fin(Int, Direction)
        case rst(Int, Direction)
        case close(Int, serverFirst: Bool)
    }

    let lock = NSLock()
    // Under the lock (any caller):
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

    let queue = DispatchQueue(label: "pilottrace.relay.recorder")
    let sink: Sink
    let clock: () -> Int64
    let initialSequences: () -> (client: UInt32, server: UInt32)

    /// - Parameters:
    ///   - clock: nanoseconds since the epoch (the wall clock by default; tests pass their own).
    ///   - initialSequences: each connection's two initial sequence numbers (random by default, as a TCP stack picks
    ///     them; tests pass their own).
    ///   - sink: receives the frames, in order, on one serial queue; the first error it throws stops the recording.
    public init(
        clock: @escaping () -> Int64 = TrafficRecorder.wallClock,
        initialSequences: @escaping () -> (client: UInt32, server: UInt32) = TrafficRecorder.randomSequences,
        sink: @escaping Sink
    ) {
        self.clock = clock
        self.initialSequences = initialSequences
        self.sink = sink
    }

    /// The wall clock (`CLOCK_REALTIME`), in nanoseconds since the epoch.
    public static func wallClock() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    public static func randomSequences() -> (client: UInt32, server: UInt32) {
        (UInt32.random(in: .min ... .max), UInt32.random(in: .min ... .max))
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

    /// The connection is gone: whatever half is still open is closed (the server's FIN first when `serverFirst`).
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
                var s = TCPFrameSynthesizer(client: client, server: server, initialSequence: initialSequences())
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

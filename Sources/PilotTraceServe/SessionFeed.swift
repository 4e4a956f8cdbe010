import PilotTraceStore

/// Watches the record for sessions that appear or change, and tells every subscriber which (the live sessions page).
///
/// It polls only while someone listens: every `interval`, the analyses' states (one small query) and the sessions of
/// the analyses that are running or whose state changed since the last poll (one query); a session whose state, end
/// or number of findings changed is announced by its listed id (a part's change is its session's). An empty
/// announcement now and then is a heartbeat: a subscriber writes to its client, and finds out when it left.
actor SessionFeed {
    private let database: ConsoleDatabase
    private let interval: Duration
    private let heartbeatEvery: Int
    private var subscribers: [Int: AsyncStream<Set<Int64>>.Continuation] = [:]
    private var nextSubscriber = 0
    private var poller: Task<Void, Never>?
    private var closed = false
    /// The state of each analysis at the last poll; `nil` before the first poll.
    private var analyses: [Int64: String]?
    /// The pulses of the watched analyses' sessions at the last poll, by the session's own id.
    private var pulses: [Int64: SessionPulse] = [:]

    init(database: ConsoleDatabase, interval: Duration = .seconds(1), heartbeatEvery: Int = 15) {
        self.database = database
        self.interval = interval
        self.heartbeatEvery = heartbeatEvery
    }

    /// The changed sessions' ids, as they change, until the subscriber stops listening or the feed closes.
    func subscribe() -> AsyncStream<Set<Int64>> {
        let (stream, continuation) = AsyncStream.makeStream(of: Set<Int64>.self, bufferingPolicy: .bufferingNewest(8))
        guard !closed else {
            continuation.finish()
            return stream
        }
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[id] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribe(id) } }
        if poller == nil { poller = Task { await self.pollUntilCancelled() } }
        return stream
    }

    /// Ends every subscription (the server is stopping) and refuses new ones.
    func close() {
        closed = true
        for continuation in subscribers.values { continuation.finish() }
        subscribers = [:]
        poller?.cancel()
        poller = nil
    }

    private func unsubscribe(_ id: Int) {
        subscribers[id] = nil
        guard subscribers.isEmpty else { return }
        poller?.cancel()
        poller = nil
        analyses = nil
        pulses = [:]
    }

    private func pollUntilCancelled() async {
        var polls = 0
        while !Task.isCancelled {
            let changed = (try? await poll()) ?? []
            polls += 1
            if !changed.isEmpty || polls % heartbeatEvery == 0 {
                for continuation in subscribers.values { continuation.yield(changed) }
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// One look at the record: the listed ids of the sessions that appeared or changed since the last look (none on
    /// the first, which only learns the picture).
    func poll() async throws -> Set<Int64> {
        let before = analyses
        let states = try await database.run { try $0.analysisStates() }
        let watched = states.filter { id, state in state == "running" || before?[id] != state }.map(\.key).sorted()
        let current = try await database.run { try $0.sessionPulses(analysisIDs: watched) }
        var changed = Set<Int64>()
        var next: [Int64: SessionPulse] = [:]
        for pulse in current {
            next[pulse.id] = pulse
            if before != nil && pulses[pulse.id] != pulse { changed.insert(pulse.sessionID) }
        }
        analyses = states
        pulses = next
        return changed
    }
}

import Dispatch
import Foundation
import PilotTraceCapture
import PilotTraceWire
import Synchronization

/// Where a live analysis's frames come from: a loop on the caller's thread that hands over frames until
/// `shouldStop` says so, and calls `tick` at least every 100 ms, frames or not. Frames the source already holds when
/// the stop comes are still delivered. A record's bytes are only valid during `body`.
public protocol LiveFrameSource {
    func run(shouldStop: () -> Bool, tick: () throws -> Void, _ body: (CaptureRecord) throws -> Void) throws
}

/// libpcap on an interface (`pilottrace capture`).
extension LiveCapture: LiveFrameSource {}

/// The one live loop, shared by `capture` and `proxy`: frames from any ``LiveFrameSource`` go through the analysis on
/// the thread that calls ``run(_:record:flush:refreshed:)``; once a second of wall clock the stored picture is
/// refreshed, so `pilottrace timeline` in another process shows a session while it is live; the loop stops on
/// ``requestStop()`` (Ctrl-C, SIGTERM), after `duration`, or at the first error of the source, the analysis or the
/// store; ``finish(files:end:interrupted:)`` then stores the sessions (marked interrupted when an error stopped it)
/// and gives the report.
///
/// Only ``requestStop()`` may be called from another thread.
public final class LiveAnalysis {
    public let analysis: AnalysisRun
    let duration: Double?
    let stop = Atomic<Bool>(false)
    /// The first and last frame's time (nil before the first frame).
    public private(set) var first: Timestamp?, last: Timestamp?

    /// - Parameters:
    ///   - analysis: a live analysis (``AnalysisRun/init(liveKey:capturePath:database:options:toolVersion:source:site:)``).
    ///   - duration: stop after this many seconds of wall clock (from ``run(_:record:flush:refreshed:)``).
    public init(_ analysis: AnalysisRun, duration: Double? = nil) {
        self.analysis = analysis
        self.duration = duration
    }

    /// Asks the loop to stop (from any thread, e.g. a signal handler): the source delivers what it holds, then
    /// ``run(_:record:flush:refreshed:)`` returns.
    public func requestStop() { stop.store(true, ordering: .relaxed) }

    /// Runs `source` until a stop is requested, `duration` is over, or something fails.
    ///
    /// - Parameters:
    ///   - record: sees every frame before the analysis does (e.g. a capture file writer).
    ///   - flush: runs before each refresh (e.g. flushing that writer, so the file holds what the picture shows).
    ///   - kernel: what the kernel counts of the source (a live capture's `pcap_stats`), stored with the run's
    ///     progress at each refresh.
    ///   - refreshed: what the analysis has seen, after each refresh (e.g. for a status line).
    /// - Returns: the error that stopped the loop, nil when it stopped on request or at the end of `duration`.
    public func run(
        _ source: some LiveFrameSource, record: (CaptureRecord) throws -> Void = { _ in }, flush: () throws -> Void = {},
        kernel: () -> AnalysisRun.KernelCounts? = { nil }, refreshed: (AnalysisRun.LiveStatus) -> Void = { _ in }
    ) -> (any Error)? {
        let started = DispatchTime.now()
        var lastRefresh = started
        do {
            try source.run(
                shouldStop: {
                    if let duration, Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9 >= duration { return true }
                    return stop.load(ordering: .relaxed)
                },
                tick: {
                    guard DispatchTime.now().uptimeNanoseconds - lastRefresh.uptimeNanoseconds >= 1_000_000_000 else { return }
                    lastRefresh = .now()
                    try flush()
                    let status = try analysis.refreshLive(now: Timestamp(Date()), kernel: kernel())
                    refreshed(status)
                }
            ) { frame in
                if first == nil { first = frame.timestamp }
                last = frame.timestamp
                try record(frame)
                try analysis.process(frame)
            }
        } catch {
            return error
        }
        return nil
    }

    /// The capture ended at `end`: every connection is released, sessions and findings are decided and stored in
    /// place of the live picture. `interrupted` (why an error stopped the loop) marks the analysis interrupted and
    /// the sessions still in progress incomplete.
    public func finish(files: [CaptureFileReport], end: Timestamp?, interrupted: String? = nil) throws -> AnalysisReport {
        try analysis.finishLive(files: files, end: end, stop: interrupted.map { .interrupted($0) } ?? .complete)
    }
}

/// Frames handed over from other threads (the proxy's recorder, fed by NIO event loops), delivered on the thread of
/// the live loop: a ``LiveFrameSource`` for frames that are pushed rather than read.
public final class LiveFrameQueue: LiveFrameSource, @unchecked Sendable {
    public typealias Frame = (time: Timestamp, bytes: [UInt8])

    let linkType: LinkType
    /// Runs on the loop's thread when the stop comes, before the last frames are delivered: the producers finish there
    /// (e.g. the proxy closes its connections and hands over what they relayed). Set it before ``run(shouldStop:tick:_:)``.
    public var stopping: () -> Void = {}
    var stopped = false
    // Under `condition`:
    let condition = NSCondition()
    var pending: [Frame] = []

    /// - Parameter linkType: the frames' link type.
    public init(linkType: LinkType) { self.linkType = linkType }

    /// Runs ``stopping`` unless it ran already (on the loop's thread, or after the loop returned).
    public func stopProducers() {
        guard !stopped else { return }
        stopped = true
        stopping()
    }

    /// Hands frames to the loop (any thread).
    public func push(_ frames: [Frame]) {
        condition.lock()
        pending += frames
        condition.signal()
        condition.unlock()
    }

    public func run(shouldStop: () -> Bool, tick: () throws -> Void, _ body: (CaptureRecord) throws -> Void) throws {
        var batch: [Frame] = []
        var lastTick = DispatchTime.now()
        while true {
            let last = shouldStop()
            if last { stopProducers() }
            condition.lock()
            if pending.isEmpty && !last { _ = condition.wait(until: Date(timeIntervalSinceNow: 0.1)) }
            swap(&batch, &pending)
            condition.unlock()
            for f in batch {
                try f.bytes.withUnsafeBytes { raw in
                    try body(CaptureRecord(timestamp: f.time, linkType: linkType, data: raw, originalLength: raw.count))
                }
            }
            batch.removeAll(keepingCapacity: true)
            if last { return }
            if DispatchTime.now().uptimeNanoseconds - lastTick.uptimeNanoseconds >= 100_000_000 {
                lastTick = .now()
                try tick()
            }
        }
    }
}

extension Timestamp {
    /// The wall clock as a capture timestamp (live capture: libpcap stamps frames with the same clock).
    public init(_ date: Date) { self.init(nanoseconds: Int64(date.timeIntervalSince1970 * 1e9)) }
}

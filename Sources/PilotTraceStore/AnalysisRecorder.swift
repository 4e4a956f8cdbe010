import Foundation

/// What an analysis run hands its rows to: the database (``AnalysisWriter``), or nothing (``DiscardingRecorder``,
/// `analyze --no-store`). The run is the same loop either way; only where the rows go differs.
public protocol AnalysisRecorder: AnyObject, Sendable {
    /// The stored analysis's id (0 when nothing is stored).
    var analysisID: Int64 { get }
    /// Whether rows are kept: a run skips building rows nobody keeps.
    var keepsRows: Bool { get }

    func nextFlowID() throws -> Int64
    func nextHTTPID() throws -> Int64
    func nextMQTTID() throws -> Int64
    func nextWebSocketID() throws -> Int64

    func updateCapture(_ row: CaptureRow) throws
    func upsertFlow(_ row: FlowRow) throws
    func insertHTTPExchange(_ row: HTTPExchangeRow) throws
    func insertWebSocketMessage(_ row: WebSocketMessageRow) throws
    func insertMQTTPacket(_ row: MQTTPacketRow) throws
    /// Completes a telemetry window's row (``MQTTPacketRow/WindowClose``).
    func closeTelemetryWindow(_ close: MQTTPacketRow.WindowClose) throws
    func storeSession(key: Int, _ row: SessionRow, timeline: [TimelineEventRow], findings: [DeviationRow]?) throws
    func replaceFindings(_ findings: [(sessionKey: Int?, row: DeviationRow)]) throws
    func keepSessions(keys: Set<Int>) throws

    /// The id a session stored under `key` has; nil when none (not written yet, or nothing is stored).
    func sessionID(key: Int) -> Int64?
    func flush() throws
    func finish(
        frames: Int, frameBytes: Int, firstTime: Double?, lastTime: Double?, countersJSON: String?,
        stop: AnalysisWriter.Stop) throws
    /// Joins sessions with other capture points' (``PilotTraceDatabase/stitchSessions(analysisID:)``); the joins made.
    func stitch() throws -> Int
    /// A live run's progress so far (``AnalysisWriter/recordProgress(countersJSON:)``).
    func recordProgress(countersJSON: String) throws
}

extension AnalysisWriter: AnalysisRecorder {
    public var keepsRows: Bool { true }
}

/// Keeps nothing: ids are counted so the run's references stay distinct, and every row is dropped. What
/// `analyze --no-store` analyses into.
public final class DiscardingRecorder: AnalysisRecorder, @unchecked Sendable {
    private let lock = NSLock()
    private var next: Int64 = 0

    public init() {}

    public var analysisID: Int64 { 0 }
    public var keepsRows: Bool { false }

    private func take() -> Int64 {
        lock.withLock {
            next += 1
            return next
        }
    }

    public func nextFlowID() throws -> Int64 { take() }
    public func nextHTTPID() throws -> Int64 { take() }
    public func nextMQTTID() throws -> Int64 { take() }
    public func nextWebSocketID() throws -> Int64 { take() }
    public func updateCapture(_ row: CaptureRow) throws {}
    public func upsertFlow(_ row: FlowRow) throws {}
    public func insertHTTPExchange(_ row: HTTPExchangeRow) throws {}
    public func insertWebSocketMessage(_ row: WebSocketMessageRow) throws {}
    public func insertMQTTPacket(_ row: MQTTPacketRow) throws {}
    public func closeTelemetryWindow(_ close: MQTTPacketRow.WindowClose) throws {}
    public func storeSession(key: Int, _ row: SessionRow, timeline: [TimelineEventRow], findings: [DeviationRow]?) throws {}
    public func replaceFindings(_ findings: [(sessionKey: Int?, row: DeviationRow)]) throws {}
    public func keepSessions(keys: Set<Int>) throws {}
    public func sessionID(key: Int) -> Int64? { nil }
    public func flush() throws {}
    public func finish(
        frames: Int, frameBytes: Int, firstTime: Double?, lastTime: Double?, countersJSON: String?,
        stop: AnalysisWriter.Stop
    ) throws {}
    public func stitch() throws -> Int { 0 }
    public func recordProgress(countersJSON: String) throws {}
}

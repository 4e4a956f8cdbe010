import Foundation
import GRDB

/// Streams the rows of one analysis run into the database, in batches.
///
/// The writer assigns the ids of flows, sessions and messages itself (``nextFlowID()`` …, from `max(id) + 1` read
/// when the analysis began), so a caller can reference a row before it is written. That assumes a single writing
/// process per database.
///
/// Rows are buffered and written every ``batchSize`` rows, or on ``flush()``; each batch is one transaction, written
/// in foreign-key order: captures, flows, HTTP exchanges, WebSocket messages, MQTT packets, sessions, timeline
/// events, deviations. A row must therefore be *given* (not necessarily written) no later than the rows that
/// reference it: upsert a flow (stats may be provisional) before or together with its first message, a session
/// before its timeline events. Upserting again later updates the row in place (`INSERT … ON CONFLICT(id) DO UPDATE`,
/// never a delete, so the rows referencing it stay).
///
/// With `background` (``PilotTraceDatabase/beginAnalysis(key:captures:toolVersion:createdAt:batchSize:background:)``)
/// a full batch is written on the writer's own thread while the caller goes on giving rows: decoding and SQLite
/// overlap, on two cores. At most one batch is in flight (memory stays at two batches); a batch that fails is
/// reported by the next call that writes (the row that fills the next batch, ``flush()`` or ``finish(frames:frameBytes:firstTime:lastTime:countersJSON:)``).
/// ``flush()`` and `finish` always wait until everything given is written.
///
/// Rows already flushed stay when the process is interrupted; rows still buffered are lost unless ``flush()`` is
/// called (for example from a Ctrl-C handler: every method is safe to call from any thread). An interrupted
/// analysis has `frames` NULL in `analyses`.
///
/// The writer sets each row's `analysisID`.
public final class AnalysisWriter: @unchecked Sendable {
    struct NextIDs {
        var flow: Int64
        var session: Int64
        var http: Int64
        var mqtt: Int64
        var webSocket: Int64
    }

    /// The id of the `analyses` row being written.
    public let analysisID: Int64
    /// The analysed input's identity.
    public let key: String
    /// How many buffered rows trigger a write.
    public let batchSize: Int

    private let database: PilotTraceDatabase
    private let captureIDs: [Int: Int64]
    /// Guards everything below.
    private let lock = NSLock()
    private var next: NextIDs
    private var finished = false
    private var captures: [Int64: CaptureRow] = [:]
    private var flows: [Int64: FlowRow] = [:]
    private var sessions: [Int64: SessionRow] = [:]
    private var http: [HTTPExchangeRow] = []
    private var webSocket: [WebSocketMessageRow] = []
    private var mqtt: [MQTTPacketRow] = []
    private var timeline: [TimelineEventRow] = []
    private var deviations: [DeviationRow] = []
    private var written = 0
    /// Whether full batches are written on ``writeQueue`` while the caller goes on.
    private let background: Bool
    private let writeQueue = DispatchQueue(label: "pilottrace.analysis-writer")
    /// Entered while a batch is being written in the background.
    private let inFlight = DispatchGroup()
    /// How the last background batch went (rows written, or why not), until the next call collects it.
    private var inFlightResult: Result<Int, PilotTraceStoreError>?
    /// Guards ``inFlightResult`` (``lock`` is held by the caller while it waits for the background batch).
    private let resultLock = NSLock()

    init(
        database: PilotTraceDatabase, analysisID: Int64, key: String, captureIDs: [Int: Int64], next: NextIDs,
        batchSize: Int, background: Bool
    ) {
        self.background = background
        self.database = database
        self.analysisID = analysisID
        self.key = key
        self.captureIDs = captureIDs
        self.next = next
        self.batchSize = batchSize
    }

    // MARK: - Ids

    /// A new `flows.id`.
    public func nextFlowID() -> Int64 { take(\.flow) }
    /// A new `sessions.id`.
    public func nextSessionID() -> Int64 { take(\.session) }
    /// A new `http_exchanges.id`.
    public func nextHTTPID() -> Int64 { take(\.http) }
    /// A new `mqtt_packets.id`.
    public func nextMQTTID() -> Int64 { take(\.mqtt) }
    /// A new `websocket_messages.id`.
    public func nextWebSocketID() -> Int64 { take(\.webSocket) }

    private func take(_ counter: WritableKeyPath<NextIDs, Int64>) -> Int64 {
        lock.withLock {
            let id = next[keyPath: counter]
            next[keyPath: counter] += 1
            return id
        }
    }

    // MARK: - Rows

    /// Records what reading a capture file found (records, times, link types, warnings), by its `ordinal`.
    public func updateCapture(_ row: CaptureRow) throws {
        guard let id = captureIDs[row.ordinal] else {
            throw PilotTraceStoreError(
                kind: .invalidRow, path: database.path,
                message: "no capture with ordinal \(row.ordinal) in analysis \(analysisID)")
        }
        var row = row
        row.id = id
        try add { $0.captures[id] = row.stamped(analysisID) }
    }

    /// Inserts or replaces (by id) a flow; the last version given before a flush is the one written.
    public func upsertFlow(_ row: FlowRow) throws { try add { $0.flows[row.id] = row.stamped($0.analysisID) } }

    /// Inserts or replaces (by id) a session; its timeline events and deviations stay.
    public func upsertSession(_ row: SessionRow) throws {
        try add { $0.sessions[row.id] = row.stamped($0.analysisID) }
    }

    public func insertHTTPExchange(_ row: HTTPExchangeRow) throws { try add { $0.http.append(row.stamped($0.analysisID)) } }

    public func insertWebSocketMessage(_ row: WebSocketMessageRow) throws {
        try add { $0.webSocket.append(row.stamped($0.analysisID)) }
    }

    public func insertMQTTPacket(_ row: MQTTPacketRow) throws { try add { $0.mqtt.append(row.stamped($0.analysisID)) } }

    public func insertTimelineEvent(_ row: TimelineEventRow) throws {
        try add { $0.timeline.append(row.stamped($0.analysisID)) }
    }

    public func insertDeviation(_ row: DeviationRow) throws { try add { $0.deviations.append(row.stamped($0.analysisID)) } }

    /// The rows given but not written yet.
    public var pendingRowCount: Int { lock.withLock { pendingLocked } }

    /// The rows written so far (an upserted row counts each time it is written).
    public var writtenRowCount: Int { lock.withLock { written } }

    /// Whether ``finish(frames:frameBytes:firstTime:lastTime:countersJSON:)`` has run.
    public var isFinished: Bool { lock.withLock { finished } }

    private var pendingLocked: Int {
        captures.count + flows.count + sessions.count + http.count + webSocket.count + mqtt.count + timeline.count
            + deviations.count
    }

    private func add(_ body: (AnalysisWriter) -> Void) throws {
        try lock.withLock {
            try checkOpenLocked()
            body(self)
            if pendingLocked >= batchSize { try flushLocked(wait: false) }
        }
    }

    private func checkOpenLocked() throws {
        if finished {
            throw PilotTraceStoreError(
                kind: .writerFinished, path: database.path, message: "analysis \(analysisID) is already finished")
        }
    }

    // MARK: - Writing

    /// Writes the buffered rows in one transaction, after the batch being written in the background, if any.
    ///
    /// - Throws: ``PilotTraceStoreError`` (`.writeFailed`) when a batch could not be written (it is dropped:
    ///   nothing of it is stored, the batches before it stay): the background batch (the buffered rows stay buffered
    ///   for the next flush), else the buffered rows.
    public func flush() throws {
        try lock.withLock { try flushLocked() }
    }

    /// Flushes, then completes the `analyses` row; the writer accepts no more rows.
    ///
    /// - Parameters:
    ///   - frames: Capture records read.
    ///   - frameBytes: Their captured bytes.
    ///   - firstTime: The first capture timestamp (seconds since the Unix epoch).
    ///   - lastTime: The last one.
    ///   - countersJSON: Run counters, a JSON object as text.
    public func finish(frames: Int, frameBytes: Int, firstTime: Double?, lastTime: Double?, countersJSON: String?)
        throws
    {
        try lock.withLock {
            try checkOpenLocked()
            try flushLocked()
            do {
                try database.pool.write { db in
                    try db.execute(
                        sql: """
                            UPDATE analyses SET frames = ?, frame_bytes = ?, first_time = ?, last_time = ?,
                            counters_json = ? WHERE id = ?
                            """,
                        arguments: [frames, frameBytes, firstTime, lastTime, countersJSON, analysisID])
                }
            } catch {
                throw PilotTraceStoreError(
                    kind: .writeFailed, path: database.path,
                    message: "cannot finish analysis \(analysisID): \(PilotTraceDatabase.reason(error))")
            }
            finished = true
        }
    }

    /// A live analysis's newer picture: after writing what is buffered, replaces this analysis's sessions, timeline
    /// events and deviations with `sessions`, `timeline` and `deviations` in one transaction, so a reader in another
    /// process sees either the previous picture or this one. Session rows keep their ids (upsert); sessions no longer
    /// in the picture are removed.
    public func replaceSessions(_ sessions: [SessionRow], timeline: [TimelineEventRow], deviations: [DeviationRow]) throws {
        try lock.withLock {
            try checkOpenLocked()
            try flushLocked()
            do {
                try database.pool.write { db in
                    try db.execute(sql: "DELETE FROM deviations WHERE analysis_id = ?", arguments: [analysisID])
                    try db.execute(sql: "DELETE FROM timeline_events WHERE analysis_id = ?", arguments: [analysisID])
                    let keep = sessions.map { String($0.id) }.joined(separator: ",")
                    try db.execute(sql: "DELETE FROM sessions WHERE analysis_id = ? AND id NOT IN (\(keep))", arguments: [analysisID])
                    for row in sessions { try row.stamped(analysisID).upsert(db) }
                    for row in timeline { try row.stamped(analysisID).insert(db) }
                    for row in deviations { try row.stamped(analysisID).insert(db) }
                }
            } catch {
                throw PilotTraceStoreError(
                    kind: .writeFailed, path: database.path,
                    message: "cannot replace the sessions of analysis \(analysisID): \(PilotTraceDatabase.reason(error))")
            }
            written += sessions.count + timeline.count + deviations.count
        }
    }

    /// Gives sessions written earlier under provisional ids their final ids (with their timeline events), in one
    /// transaction after everything buffered is written. An offline analysis stores a session as soon as it is over,
    /// before the sessions that start earlier are all known; their numbering by start is final only at the end.
    /// - Parameter moves: provisional id → final id; final ids must not be in use.
    public func renumberSessions(_ moves: [(from: Int64, to: Int64)]) throws {
        guard !moves.isEmpty else { return }
        try lock.withLock {
            try checkOpenLocked()
            try flushLocked()
            do {
                try database.pool.write { db in
                    // The session and its events change together: foreign keys are checked at the commit.
                    try db.execute(sql: "PRAGMA defer_foreign_keys = ON")
                    let session = try db.makeStatement(sql: "UPDATE sessions SET id = ? WHERE id = ? AND analysis_id = ?")
                    let events = try db.makeStatement(sql: "UPDATE timeline_events SET session_id = ? WHERE session_id = ?")
                    for (from, to) in moves {
                        try session.execute(arguments: [to, from, analysisID])
                        try events.execute(arguments: [to, from])
                    }
                }
            } catch {
                throw PilotTraceStoreError(
                    kind: .writeFailed, path: database.path,
                    message: "cannot renumber the sessions of analysis \(analysisID): \(PilotTraceDatabase.reason(error))")
            }
            written += moves.count
        }
    }

    /// One transaction's rows, in the order they are written.
    private struct Batch {
        var captures: [CaptureRow]
        var flows: [FlowRow]
        var http: [HTTPExchangeRow]
        var webSocket: [WebSocketMessageRow]
        var mqtt: [MQTTPacketRow]
        var sessions: [SessionRow]
        var timeline: [TimelineEventRow]
        var deviations: [DeviationRow]
        var count: Int

        func write(_ db: Database) throws {
            let inserts = try RowInserts(db)
            for row in captures { try row.upsert(db) }
            for row in flows { try inserts.upsert(row) }
            for row in http { try inserts.insert(row) }
            for row in webSocket { try row.insert(db) }
            for row in mqtt { try inserts.insert(row) }
            for row in sessions { try row.upsert(db) }
            for row in timeline { try inserts.insert(row) }
            for row in deviations { try inserts.insert(row) }
        }
    }

    /// Takes the buffered rows and writes them: in the background when `wait` is false (the caller goes on decoding
    /// while SQLite works, at most one batch in flight), else before returning.
    ///
    /// The batch before is always waited for first, so batches are written in order and a failed one is reported
    /// (thrown) by the next call: a flush, a ``finish(frames:frameBytes:firstTime:lastTime:countersJSON:)`` or the
    /// row that fills the next batch.
    private func flushLocked(wait: Bool = true) throws {
        try waitForBatchLocked()
        guard pendingLocked > 0 else { return }
        let batch = Batch(
            captures: captures.values.sorted { $0.ordinal < $1.ordinal }, flows: flows.values.sorted { $0.id < $1.id },
            http: http, webSocket: webSocket, mqtt: mqtt, sessions: sessions.values.sorted { $0.id < $1.id },
            timeline: timeline, deviations: deviations, count: pendingLocked)
        captures.removeAll(keepingCapacity: true)
        flows.removeAll(keepingCapacity: true)
        sessions.removeAll(keepingCapacity: true)
        http.removeAll(keepingCapacity: true)
        webSocket.removeAll(keepingCapacity: true)
        mqtt.removeAll(keepingCapacity: true)
        timeline.removeAll(keepingCapacity: true)
        deviations.removeAll(keepingCapacity: true)
        let (database, analysisID) = (self.database, self.analysisID)
        let write: @Sendable () -> Result<Int, PilotTraceStoreError> = {
            do {
                try database.pool.write { try batch.write($0) }
                return .success(batch.count)
            } catch {
                return .failure(PilotTraceStoreError(
                    kind: .writeFailed, path: database.path,
                    message: "cannot write \(batch.count) rows of analysis \(analysisID): \(PilotTraceDatabase.reason(error))"))
            }
        }
        if wait || !background {
            written += try write().get()
            return
        }
        inFlight.enter()
        writeQueue.async { [self] in
            let result = write()
            resultLock.withLock { inFlightResult = result }
            inFlight.leave()
        }
    }

    /// Waits for the batch being written in the background, if any; throws its error.
    private func waitForBatchLocked() throws {
        inFlight.wait()
        let result = resultLock.withLock { () -> Result<Int, PilotTraceStoreError>? in
            defer { inFlightResult = nil }
            return inFlightResult
        }
        guard let result else { return }
        written += try result.get()
    }
}

/// Rows the writer stamps with its analysis id.
protocol AnalysisScopedRow {
    var analysisID: Int64 { get set }
}

extension AnalysisScopedRow {
    func stamped(_ analysisID: Int64) -> Self {
        var row = self
        row.analysisID = analysisID
        return row
    }
}

extension CaptureRow: AnalysisScopedRow {}
extension FlowRow: AnalysisScopedRow {}
extension HTTPExchangeRow: AnalysisScopedRow {}
extension WebSocketMessageRow: AnalysisScopedRow {}
extension MQTTPacketRow: AnalysisScopedRow {}
extension SessionRow: AnalysisScopedRow {}
extension TimelineEventRow: AnalysisScopedRow {}
extension DeviationRow: AnalysisScopedRow {}

import Foundation
import GRDB

/// Streams the rows of one analysis run into the database, in batches, beside any number of other writers.
///
/// **Ids come from the database.** Flows and messages (HTTP exchanges, WebSocket messages, MQTT packets) are
/// referenced before they are written (a timeline step names its message), so their ids are taken from blocks the
/// database hands out (`id_sequences`, one short `BEGIN IMMEDIATE` transaction per block: ``nextFlowID()`` …); two
/// writers never get the same id. Sessions get theirs when their row is first inserted (SQLite's rowid): a session is
/// given by the caller's own *key* (the tracker's serial) and ``sessionID(key:)`` says its id once written, so session
/// ids stay small consecutive integers in the order sessions are stored.
///
/// **Write as you go.** Rows are buffered and written every ``batchSize`` rows, or on ``flush()``; each batch is one
/// transaction, written in foreign-key order: captures, flows, HTTP exchanges, WebSocket messages, MQTT packets,
/// sessions (each with its timeline and, when given, its findings), then a replacement of the analysis's findings.
/// A row must be *given* (not necessarily written) no later than the rows that reference it: upsert a flow (stats may
/// be provisional) before or together with its first message. Upserting again later updates the row in place (never a
/// delete, so the rows referencing it stay); storing a session again replaces its row, timeline and findings.
///
/// With `background` a full batch is written on the writer's own thread while the caller goes on giving rows:
/// decoding and SQLite overlap, on two cores. At most one batch is in flight; a batch that fails is reported by the
/// next call that writes. ``flush()`` and ``finish(frames:frameBytes:firstTime:lastTime:countersJSON:stop:)`` always
/// wait until everything given is written.
///
/// The `analyses` row says `running` until ``finish(frames:frameBytes:firstTime:lastTime:countersJSON:stop:)``
/// marks it `complete` or `interrupted`: a process killed outright leaves a consistent database whose analysis is
/// visibly unfinished. Every method is safe to call from any thread. The writer sets each row's `analysisID`.
public final class AnalysisWriter: @unchecked Sendable {
    /// The tables whose ids the writer takes from blocks, and the size of a block.
    enum Sequence: String, CaseIterable {
        case flows, httpExchanges = "http_exchanges", webSocketMessages = "websocket_messages", mqttPackets = "mqtt_packets"

        var blockSize: Int {
            switch self {
            case .flows: 256
            case .httpExchanges, .webSocketMessages: 1_024
            case .mqttPackets: 8_192
            }
        }
    }

    /// How an analysis ended.
    public enum Stop: Sendable, Hashable {
        /// It read all its input (or its capture was stopped as asked).
        case complete
        /// It was cut short: Ctrl-C or SIGTERM during an analysis, a capture error; the reason is stored.
        case interrupted(String)
    }

    /// The id of the `analyses` row being written.
    public let analysisID: Int64
    /// The analysed input's identity.
    public let key: String
    /// How many buffered rows trigger a write.
    public let batchSize: Int

    private let database: PilotTraceDatabase
    /// Guards everything below.
    private let lock = NSLock()
    /// Ids taken from the database and not handed out yet, per table (the next is `ids[next]`).
    private var blocks: [Sequence: (ids: [Int64], next: Int)] = [:]
    private var finished = false
    private var batch = Batch()
    private var written = 0
    /// Stored sessions' ids, by the caller's key.
    private var sessionIDs: [Int: Int64] = [:]
    /// Whether full batches are written on ``writeQueue`` while the caller goes on.
    private let background: Bool
    private let writeQueue = DispatchQueue(label: "pilottrace.analysis-writer")
    /// Entered while a batch is being written in the background.
    private let inFlight = DispatchGroup()
    /// How the last background batch went (rows written and session ids assigned, or why not).
    private var inFlightResult: Result<Batch.Outcome, PilotTraceStoreError>?
    /// Guards ``inFlightResult`` (``lock`` is held by the caller while it waits for the background batch).
    private let resultLock = NSLock()

    init(database: PilotTraceDatabase, analysisID: Int64, key: String, batchSize: Int, background: Bool) {
        self.background = background
        self.database = database
        self.analysisID = analysisID
        self.key = key
        self.batchSize = batchSize
    }

    // MARK: - Ids

    /// A new `flows.id`.
    public func nextFlowID() throws -> Int64 { try take(.flows) }
    /// A new `http_exchanges.id`.
    public func nextHTTPID() throws -> Int64 { try take(.httpExchanges) }
    /// A new `mqtt_packets.id`.
    public func nextMQTTID() throws -> Int64 { try take(.mqttPackets) }
    /// A new `websocket_messages.id`.
    public func nextWebSocketID() throws -> Int64 { try take(.webSocketMessages) }

    private func take(_ sequence: Sequence) throws -> Int64 {
        try lock.withLock {
            if let block = blocks[sequence], block.next < block.ids.count {
                blocks[sequence]!.next += 1
                return block.ids[block.next]
            }
            let ids = try database.reserveIDs(sequence.rawValue, count: sequence.blockSize)
            guard let first = ids.first else {
                throw PilotTraceStoreError(kind: .writeFailed, path: database.path, message: "no \(sequence.rawValue) ids reserved")
            }
            blocks[sequence] = (ids, 1)
            return first
        }
    }

    /// Joins this analysis's sessions with other capture points' (``PilotTraceDatabase/stitchSessions(analysisID:)``),
    /// after writing what is buffered; returns how many joins were made.
    @discardableResult
    public func stitch() throws -> Int {
        try flush()
        return try database.stitchSessions(analysisID: analysisID).count
    }

    /// The id a session given under `key` was stored with; nil until a batch holding it is written.
    public func sessionID(key: Int) -> Int64? { lock.withLock { sessionIDs[key] } }

    // MARK: - Rows

    /// Records a capture file of the analysis, by its `ordinal`: inserted when new (a rotating live capture adds its
    /// files as it goes), else updated with what reading it found (an empty `sha256` keeps the stored one).
    public func updateCapture(_ row: CaptureRow) throws { try add { $0.batch.captures[row.ordinal] = row.stamped($0.analysisID) } }

    /// Inserts or replaces (by id) a flow; the last version given before a flush is the one written.
    public func upsertFlow(_ row: FlowRow) throws { try add { $0.batch.flows[row.id] = row.stamped($0.analysisID) } }

    public func insertHTTPExchange(_ row: HTTPExchangeRow) throws { try add { $0.batch.http.append(row.stamped($0.analysisID)) } }

    public func insertWebSocketMessage(_ row: WebSocketMessageRow) throws {
        try add { $0.batch.webSocket.append(row.stamped($0.analysisID)) }
    }

    public func insertMQTTPacket(_ row: MQTTPacketRow) throws { try add { $0.batch.mqtt.append(row.stamped($0.analysisID)) } }

    /// Completes a telemetry window's row, given earlier with ``insertMQTTPacket(_:)``: in place while the row still
    /// waits in the batch, else with an `UPDATE` written after the batch's inserts.
    public func closeTelemetryWindow(_ close: MQTTPacketRow.WindowClose) throws {
        try add {
            // The batch's MQTT rows are in id order (ids are taken and given in order).
            if let i = $0.batch.mqttIndex(of: close.id) {
                close.apply(to: &$0.batch.mqtt[i])
            } else {
                $0.batch.windowCloses.append(close)
            }
        }
    }

    /// Stores a session (its `id` is ignored: the database assigns it), with its whole timeline, under the caller's
    /// `key`. Given again under the same key, the stored row is updated in place and its timeline replaced; so are its
    /// findings when `findings` is not nil (their `sessionID` is set by the writer).
    public func storeSession(key: Int, _ row: SessionRow, timeline: [TimelineEventRow], findings: [DeviationRow]? = nil) throws {
        try add {
            var session = row.stamped($0.analysisID)
            session.id = 0
            let entry = Batch.SessionEntry(
                key: key, row: session, timeline: timeline.map { $0.stamped(self.analysisID) },
                findings: findings?.map { $0.stamped(self.analysisID) })
            if let i = $0.batch.sessionIndex[key] {
                $0.batch.sessions[i] = entry
            } else {
                $0.batch.sessionIndex[key] = $0.batch.sessions.count
                $0.batch.sessions.append(entry)
            }
        }
    }

    /// Replaces every finding of the analysis with `findings` (written after the sessions of the same batch; each
    /// `sessionKey` must be a key a session was stored under).
    public func replaceFindings(_ findings: [(sessionKey: Int?, row: DeviationRow)]) throws {
        try add { $0.batch.findings = findings.map { ($0.sessionKey, $0.row.stamped(self.analysisID)) } }
    }

    /// Removes the stored sessions whose key is not in `keys` (a live picture in which sessions merged).
    public func keepSessions(keys: Set<Int>) throws {
        try add { $0.batch.keepSessions = keys }
    }

    /// The rows given but not written yet.
    public var pendingRowCount: Int { lock.withLock { batch.count } }

    /// The rows written so far (an upserted row counts each time it is written).
    public var writtenRowCount: Int { lock.withLock { written } }

    /// Whether ``finish(frames:frameBytes:firstTime:lastTime:countersJSON:stop:)`` has run.
    public var isFinished: Bool { lock.withLock { finished } }

    private func add(_ body: (AnalysisWriter) -> Void) throws {
        try lock.withLock {
            try checkOpenLocked()
            body(self)
            if batch.count >= batchSize { try flushLocked(wait: false) }
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
    /// - Throws: ``PilotTraceStoreError`` (`.writeFailed`) when a batch could not be written (it is dropped: nothing
    ///   of it is stored, the batches before it stay).
    public func flush() throws {
        try lock.withLock { try flushLocked() }
    }

    /// A live run's progress so far, in `counters_json` while the analysis is `running` (frames read, the kernel's
    /// counts): what `pilottrace serve` exports while a capture goes on. ``finish(frames:frameBytes:firstTime:lastTime:countersJSON:stop:)``
    /// replaces it with the run's counters.
    ///
    /// - Parameter countersJSON: A JSON object as text.
    public func recordProgress(countersJSON: String) throws {
        try lock.withLock {
            try checkOpenLocked()
            do {
                try database.write { tx in
                    try tx.execute(
                        "UPDATE analyses SET counters_json = ? WHERE id = ? AND state = 'running'", [.text(countersJSON), .integer(analysisID)])
                }
            } catch {
                throw PilotTraceStoreError(
                    kind: .writeFailed, path: database.path,
                    message: "cannot record the progress of analysis \(analysisID): \(PilotTraceDatabase.reason(error))")
            }
        }
    }

    /// Flushes, then completes the `analyses` row (`complete` or `interrupted` with its reason, the time it ended);
    /// the writer accepts no more rows.
    ///
    /// - Parameters:
    ///   - frames: Capture records read.
    ///   - frameBytes: Their captured bytes.
    ///   - firstTime: The first capture timestamp (seconds since the Unix epoch).
    ///   - lastTime: The last one.
    ///   - countersJSON: Run counters, a JSON object as text.
    ///   - stop: How the analysis ended.
    public func finish(
        frames: Int, frameBytes: Int, firstTime: Double?, lastTime: Double?, countersJSON: String?,
        stop: Stop = .complete
    ) throws {
        try lock.withLock {
            try checkOpenLocked()
            try flushLocked()
            let (state, reason): (String, String?) =
                switch stop {
                case .complete: ("complete", nil)
                case .interrupted(let why): ("interrupted", why)
                }
            do {
                try database.write { tx in
                    try tx.execute(
                        """
                        UPDATE analyses SET frames = ?, frame_bytes = ?, first_time = ?, last_time = ?, counters_json = ?,
                        state = ?, stop_reason = ?, finished_at = ? WHERE id = ?
                        """,
                        [
                            SQLValue(frames), SQLValue(frameBytes), SQLValue(firstTime), SQLValue(lastTime), SQLValue(countersJSON),
                            .text(state), SQLValue(reason), .text(PilotTraceDatabase.timestamp(Date())), .integer(analysisID),
                        ])
                }
            } catch {
                throw PilotTraceStoreError(
                    kind: .writeFailed, path: database.path,
                    message: "cannot finish analysis \(analysisID): \(PilotTraceDatabase.reason(error))")
            }
            finished = true
        }
    }

    /// One transaction's rows, in the order they are written.
    struct Batch {
        struct SessionEntry {
            var key: Int
            var row: SessionRow
            var timeline: [TimelineEventRow]
            var findings: [DeviationRow]?
        }

        /// What writing a batch did: rows written, the sessions' new ids, the sessions removed.
        struct Outcome {
            var rows = 0
            var assigned: [Int: Int64] = [:]
            var removed: [Int] = []
        }

        var captures: [Int: CaptureRow] = [:]
        var flows: [Int64: FlowRow] = [:]
        var http: [HTTPExchangeRow] = []
        var webSocket: [WebSocketMessageRow] = []
        var mqtt: [MQTTPacketRow] = []
        /// Telemetry windows closed whose rows were written by an earlier batch.
        var windowCloses: [MQTTPacketRow.WindowClose] = []
        var sessions: [SessionEntry] = []
        var sessionIndex: [Int: Int] = [:]
        var findings: [(sessionKey: Int?, row: DeviationRow)]?
        var keepSessions: Set<Int>?

        var count: Int {
            captures.count + flows.count + http.count + webSocket.count + mqtt.count + windowCloses.count
                + sessions.reduce(0) { $0 + 1 + $1.timeline.count + ($1.findings?.count ?? 0) } + (findings?.count ?? 0)
                + (keepSessions == nil ? 0 : 1)
        }

        var isEmpty: Bool {
            captures.isEmpty && flows.isEmpty && http.isEmpty && webSocket.isEmpty && mqtt.isEmpty && windowCloses.isEmpty
                && sessions.isEmpty
                && findings == nil && keepSessions == nil
        }

        /// Where the MQTT row `id` is in ``mqtt`` (kept in id order), if it is there.
        func mqttIndex(of id: Int64) -> Int? {
            var lo = 0, hi = mqtt.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if mqtt[mid].id < id { lo = mid + 1 } else { hi = mid }
            }
            return lo < mqtt.count && mqtt[lo].id == id ? lo : nil
        }

        /// Writes the batch in the open transaction; `known` are the ids of sessions stored by earlier batches.
        func write(_ db: Database, analysisID: Int64, known: [Int: Int64]) throws -> Outcome {
            var outcome = Outcome(rows: count)
            let inserts = try RowInserts(db)
            let tx = SQLiteStatements(db: db, cached: true)
            for row in captures.values.sorted(by: { $0.ordinal < $1.ordinal }) {
                try tx.execute(RowInserts.upsertCaptureSQL, RowInserts.captureArguments(row))
            }
            for row in flows.values.sorted(by: { $0.id < $1.id }) { try inserts.upsert(row) }
            for row in http { try inserts.insert(row) }
            for row in webSocket { try row.insert(db) }
            for row in mqtt { try inserts.insert(row) }
            for close in windowCloses { try tx.execute(MQTTPacketRow.WindowClose.updateSQL, close.arguments) }
            func id(_ key: Int) -> Int64? { outcome.assigned[key] ?? known[key] }
            for entry in sessions {
                let sessionID: Int64
                if let stored = id(entry.key) {
                    sessionID = stored
                    try RowInserts.updateSession(entry.row, id: stored, tx)
                    try tx.execute("DELETE FROM timeline_events WHERE session_id = ?", [.integer(stored)])
                    if entry.findings != nil {
                        try tx.execute("DELETE FROM deviations WHERE session_id = ?", [.integer(stored)])
                    }
                } else {
                    sessionID = try RowInserts.insertSession(entry.row, tx)
                    outcome.assigned[entry.key] = sessionID
                }
                for var event in entry.timeline {
                    event.sessionID = sessionID
                    try inserts.insert(event)
                }
                for var finding in entry.findings ?? [] {
                    finding.sessionID = sessionID
                    try inserts.insert(finding)
                }
            }
            if let keep = keepSessions {
                let stored = known.merging(outcome.assigned) { $1 }
                for (key, sessionID) in stored where !keep.contains(key) {
                    try db.execute(sql: "DELETE FROM sessions WHERE id = ?", arguments: [sessionID])
                    outcome.removed.append(key)
                }
            }
            if let findings {
                try db.execute(sql: "DELETE FROM deviations WHERE analysis_id = ?", arguments: [analysisID])
                for (key, row) in findings {
                    var row = row
                    row.sessionID = key.flatMap(id)
                    try inserts.insert(row)
                }
            }
            return outcome
        }
    }

    /// Takes the buffered rows and writes them: in the background when `wait` is false (the caller goes on decoding
    /// while SQLite works, at most one batch in flight), else before returning.
    ///
    /// The batch before is always waited for first, so batches are written in order and a failed one is reported
    /// (thrown) by the next call: a flush, a finish or the row that fills the next batch.
    private func flushLocked(wait: Bool = true) throws {
        try waitForBatchLocked()
        guard !batch.isEmpty else { return }
        let batch = self.batch
        self.batch = Batch()
        let (database, analysisID, known) = (self.database, self.analysisID, self.sessionIDs)
        let write: @Sendable () -> Result<Batch.Outcome, PilotTraceStoreError> = {
            do {
                switch database.engine {
                case .sqlite(let pool):
                    return .success(try pool.write { try batch.write($0, analysisID: analysisID, known: known) })
                case .postgres(let link):
                    return .success(try link.transaction { try batch.write(link, analysisID: analysisID, known: known) })
                }
            } catch {
                return .failure(
                    PilotTraceStoreError(
                        kind: .writeFailed, path: database.path,
                        message: "cannot write \(batch.count) rows of analysis \(analysisID): \(PilotTraceDatabase.reason(error))"))
            }
        }
        if wait || !background {
            apply(try write().get())
            return
        }
        inFlight.enter()
        writeQueue.async { [self] in
            let result = write()
            resultLock.withLock { inFlightResult = result }
            inFlight.leave()
        }
    }

    private func apply(_ outcome: Batch.Outcome) {
        written += outcome.rows
        sessionIDs.merge(outcome.assigned) { $1 }
        for key in outcome.removed { sessionIDs[key] = nil }
    }

    /// Waits for the batch being written in the background, if any; throws its error.
    private func waitForBatchLocked() throws {
        inFlight.wait()
        let result = resultLock.withLock { () -> Result<Batch.Outcome, PilotTraceStoreError>? in
            defer { inFlightResult = nil }
            return inFlightResult
        }
        guard let result else { return }
        apply(try result.get())
    }
}

extension AnalysisWriter.Batch: @unchecked Sendable {}

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

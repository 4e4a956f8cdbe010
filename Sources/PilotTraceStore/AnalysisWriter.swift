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

    init(
        database: PilotTraceDatabase, analysisID: Int64, key: String, captureIDs: [Int: Int64], next: NextIDs,
        batchSize: Int
    ) {
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
            if pendingLocked >= batchSize { try flushLocked() }
        }
    }

    private func checkOpenLocked() throws {
        if finished {
            throw PilotTraceStoreError(
                kind: .writerFinished, path: database.path, message: "analysis \(analysisID) is already finished")
        }
    }

    // MARK: - Writing

    /// Writes the buffered rows in one transaction.
    ///
    /// - Throws: ``PilotTraceStoreError`` (`.writeFailed`) when the batch could not be written (it is dropped:
    ///   nothing of it is stored, the batches before it stay).
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

    /// MQTT packets are most of the rows of a capture: one prepared statement with explicit bindings instead of a
    /// Codable round trip per row.
    static func insertMQTT(_ rows: [MQTTPacketRow], _ db: Database) throws {
        guard !rows.isEmpty else { return }
        let statement = try db.cachedStatement(sql: """
            INSERT INTO mqtt_packets (id, analysis_id, flow_id, direction, time, over_websocket, version, version_assumed, type,
              packet_id, qos, retain, dup, topic, payload, payload_length, payload_json, client_id, username, password,
              keep_alive, return_code, summary)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for r in rows {
            let values: [(any DatabaseValueConvertible)?] = [
                r.id, r.analysisID, r.flowID, r.direction, r.time, r.overWebSocket, r.version, r.versionAssumed, r.type,
                r.packetID, r.qos, r.retain, r.dup, r.topic, r.payload, r.payloadLength, r.payloadJSON, r.clientID, r.username,
                r.password, r.keepAlive, r.returnCode, r.summary,
            ]
            try statement.execute(arguments: StatementArguments(values))
        }
    }

    private func flushLocked() throws {
        guard pendingLocked > 0 else { return }
        let captures = self.captures.values.sorted { $0.ordinal < $1.ordinal }
        let flows = self.flows.values.sorted { $0.id < $1.id }
        let sessions = self.sessions.values.sorted { $0.id < $1.id }
        let (http, webSocket, mqtt, timeline, deviations) =
            (self.http, self.webSocket, self.mqtt, self.timeline, self.deviations)
        let count = pendingLocked
        self.captures.removeAll(keepingCapacity: true)
        self.flows.removeAll(keepingCapacity: true)
        self.sessions.removeAll(keepingCapacity: true)
        self.http.removeAll(keepingCapacity: true)
        self.webSocket.removeAll(keepingCapacity: true)
        self.mqtt.removeAll(keepingCapacity: true)
        self.timeline.removeAll(keepingCapacity: true)
        self.deviations.removeAll(keepingCapacity: true)
        do {
            try database.pool.write { db in
                for row in captures { try row.upsert(db) }
                for row in flows { try row.upsert(db) }
                for row in http { try row.insert(db) }
                for row in webSocket { try row.insert(db) }
                try Self.insertMQTT(mqtt, db)
                for row in sessions { try row.upsert(db) }
                for row in timeline { try row.insert(db) }
                for row in deviations { try row.insert(db) }
            }
        } catch {
            throw PilotTraceStoreError(
                kind: .writeFailed, path: database.path,
                message: "cannot write \(count) rows of analysis \(analysisID): \(PilotTraceDatabase.reason(error))")
        }
        written += count
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

import Foundation
import PilotTraceCapture
import PilotTraceFlow
import PilotTraceProtocols
import PilotTraceStore
import PilotTraceWire

/// Settings of an analysis run.
public struct AnalysisOptions: Sendable {
    public var reassembly = TCPReassembler.Configuration()
    public var decoders = StreamAnalyzer.Configuration()
    public var sessions = SessionTracker.Configuration()
    public var deviations = DeviationEngine.Configuration()
    /// Offline runs store (or count) each session as soon as it is over and drop its state, so memory follows the
    /// sessions in progress, not the length of the capture (``SessionTracker/Configuration/retireSessions``). Live
    /// runs never do: their picture shows every session.
    public var retireFinishedSessions = true
    /// Key log files to decrypt TLS with (``TLSKeyLogFiles``: re-read when a connection finds no key in them).
    public var tlsKeyLogFiles: [String] = []
    public init() {}

    /// The sessions' settings for an offline run.
    var offlineSessions: SessionTracker.Configuration {
        var sessions = self.sessions
        sessions.retireSessions = retireFinishedSessions
        return sessions
    }

    /// The rules' settings, with the profile and reply deadline the sessions use.
    var deviationRules: DeviationEngine.Configuration {
        var rules = deviations
        rules.profile = sessions.profile
        rules.replyDeadline = sessions.replyDeadline
        return rules
    }
}

/// What an analysis run produced.
public struct AnalysisReport: Sendable {
    public var analysisID: Int64
    public var files: [CaptureFileReport]
    /// The first capture file error: reading stopped there; everything before it was analyzed and stored.
    public var error: CaptureFileError?
    public var counters: PacketCounters
    public var connections: [AppProtocol: Int]
    public var messages: (http: Int, webSocket: Int, mqtt: Int)
    /// The sessions, in start order, with the ids they were stored under. A session retired before the capture
    /// ended (``AnalysisOptions/retireFinishedSessions``; stored in full) is here as a ``Session/summary``: its
    /// number of events in `eventCount`, `events` holding only the first failure, no `exchanges`.
    public var sessions: [(id: Int64, session: Session)]
    /// The findings, in time order.
    public var deviations: [Deviation]
    /// Why the run stopped before the end of its input (Ctrl-C, SIGTERM, a capture error); nil when it did not.
    public var interrupted: String? = nil
    /// Sessions joined with sessions another capture point recorded into the same database.
    public var stitched = 0
}

/// Runs capture files through the whole pipeline and stores flows, messages, sessions and timelines.
///
/// The I/O shell around the pure core: files are read here and rows written here; everything in between is
/// ``TCPPipeline``, ``StreamAnalyzer`` and ``SessionTracker``.
public final class AnalysisRun {
    /// Where the rows go: the database, or nowhere (`--no-store`: the same loop, rows not even built).
    let writer: any AnalysisRecorder
    let keepsRows: Bool
    var pipeline: TCPPipeline
    var analyzer: StreamAnalyzer
    let tracker: SessionTracker
    let engine: DeviationEngine
    var flowIDs: [ConnectionID: Int64] = [:]
    /// The names of each open connection's row (while rows are kept), to write it again when it closes.
    var openFlows: [ConnectionID: FlowNames] = [:]
    /// Requests waiting for their responses: (row id, request), by connection and request index.
    var pendingRequests = HTTPExchangePairing<Int64>()
    var messageCounts = (http: 0, webSocket: 0, mqtt: 0)
    var lastTime: Timestamp?
    /// Open telemetry windows (only when rows are kept), and the capture time to next close the due ones at.
    var telemetry = TelemetryWindows()
    var nextTelemetrySweep = -Double.infinity

    /// Begins a live analysis (nothing to hash yet): `key` names it, e.g. the interface and the start time; `source`
    /// says where the frames come from (`live` capture, `proxy`, `replay`).
    public convenience init(
        liveKey key: String, capturePath: String?, database: PilotTraceDatabase, options: AnalysisOptions = .init(),
        toolVersion: String, source: String = "live", site: String = PilotTraceDatabase.defaultSite
    ) throws {
        let captures = capturePath.map { [CaptureRow(ordinal: 0, path: $0, sha256: "live", format: "pcap", compressed: false)] } ?? []
        self.init(
            writer: try database.beginAnalysis(key: key, captures: captures, toolVersion: toolVersion, source: source, site: site),
            options: options, live: true)
    }

    /// Begins an analysis of `paths`: an earlier analysis of the same files (same content) is replaced.
    public convenience init(
        paths: [String], database: PilotTraceDatabase, options: AnalysisOptions = .init(), toolVersion: String,
        site: String = PilotTraceDatabase.defaultSite
    ) throws {
        var captures: [CaptureRow] = []
        var digests: [String] = []
        for (i, path) in paths.enumerated() {
            let digest = try FileDigest.sha256(path: path)
            digests.append(digest)
            captures.append(CaptureRow(ordinal: i, path: path, sha256: digest, format: "unknown", compressed: false))
        }
        self.init(
            writer: try database.beginAnalysis(
                key: AnalysisRow.key(captureDigests: digests), captures: captures, toolVersion: toolVersion,
                background: true, site: site),
            options: options)
    }

    /// A retired session as the report keeps it (the store has it in full).
    static func summary(_ s: Session) -> Session { s.summary }

    /// Sessions stored as soon as they were over (the store keeps them whole), by serial: what the report lists.
    var retiredSummaries: [Int: Session] = [:]

    init(writer: any AnalysisRecorder, options: AnalysisOptions, live: Bool = false) {
        self.writer = writer
        keepsRows = writer.keepsRows
        isLive = live
        pipeline = TCPPipeline(configuration: options.reassembly)
        analyzer = StreamAnalyzer(configuration: options.decoders)
        var sessions = options.offlineSessions
        if live { sessions.retireSessions = false }
        tracker = SessionTracker(configuration: sessions)
        engine = DeviationEngine(configuration: options.deviationRules)
        if !options.tlsKeyLogFiles.isEmpty, let files = try? TLSKeyLogFiles(paths: options.tlsKeyLogFiles) {
            tlsKeyFiles = files
            analyzer.tlsKeys = files.log
            analyzer.tlsKeysOnMiss = { [unowned files] in files.refresh() ? files.log : nil }
        }
    }

    /// The key log files, when TLS is decrypted with some.
    public private(set) var tlsKeyFiles: TLSKeyLogFiles?

    /// A capture file's Decryption Secrets Block: a TLS key log joins the files' (the secrets are kept in memory only).
    func addSecrets(_ type: UInt32, _ data: [UInt8]) {
        guard type == CaptureFileReader.tlsKeyLogSecrets else { return }
        let log = TLSKeyLog(data)
        if let tlsKeyFiles {
            tlsKeyFiles.add(log)
            analyzer.tlsKeys = tlsKeyFiles.log
        } else {
            analyzer.tlsKeys.merge(log)
        }
    }

    public var analysisID: Int64 { writer.analysisID }

    /// The same analysis without a database: pipeline, decoders, sessions and findings only.
    public static func analyzeWithoutStoring(_ paths: [String], options: AnalysisOptions = .init()) throws -> AnalysisReport {
        try AnalysisRun(writer: DiscardingRecorder(), options: options).run(paths)
    }

    /// Writes what is buffered, open telemetry windows included (for an interrupted run: nothing recorded is lost).
    public func flush() throws {
        telemetry.closeAll()
        try storeTelemetry()
        try writer.flush()
    }

    /// Completes the closed telemetry windows' rows.
    func storeTelemetry() throws {
        guard telemetry.hasReady else { return }
        for close in telemetry.takeReady() { try writer.closeTelemetryWindow(close) }
    }

    /// Closes the telemetry windows whose time is over, once per second of capture time.
    func sweepTelemetry(at t: Double) throws {
        guard keepsRows, t >= nextTelemetrySweep else { return }
        nextTelemetrySweep = t + 1
        telemetry.closeDue(at: t)
        try storeTelemetry()
    }

    /// Reads the files and stores everything; the report says what was found.
    ///
    /// `stopRequest` is asked as the files are read: when it gives a reason (Ctrl-C, SIGTERM), reading stops, what was
    /// read is analyzed as at the end of the capture, the sessions still in progress are stored `incomplete` with
    /// their findings so far, and the analysis is marked `interrupted` with that reason (``AnalysisReport/interrupted``).
    public func run(_ paths: [String], progress: CaptureFiles.Progress? = nil, stopRequest: (() -> String?)? = nil) throws -> AnalysisReport {
        // A storage error stops the run at once (reading on would analyze what can no longer be stored); the batch it
        // failed in is not stored, what was stored before stays consistent.
        let shouldStop = stopRequest.map { request in { request() != nil } }
        let (files, error) = try CaptureFiles.analyze(
            paths, pipeline: &pipeline, progress: progress, shouldStop: shouldStop, secrets: { [unowned self] in addSecrets($0, $1) }
        ) { events in
            try ingest(events)
        }
        let stop: AnalysisWriter.Stop = stopRequest?().map { .interrupted($0) } ?? .complete
        return try complete(files: files, error: error, stop: stop)
    }

    /// Decodes and stores what a batch of stream events completes.
    func ingest(_ events: [StreamEvent]) throws {
        if let last = events.last.flatMap(Self.time) { lastTime = max(lastTime ?? last, last) }
        analyzer.consume(events, into: &decoded)
        defer { decoded.removeAll(keepingCapacity: true) }
        for m in decoded { try handle(m) }
        if let t = lastTime {
            tracker.advance(to: t)
            try storeRetired(at: t)
            try sweepTelemetry(at: t.seconds)
        }
    }

    /// Stores the sessions the tracker retired (over before the capture ends) at once, with their timeline findings,
    /// after the rules checked them: an interrupted run keeps them. The final list of findings replaces those at the end.
    func storeRetired(at t: Timestamp) throws {
        for s in tracker.takeRetired() {
            let findings = engine.retire(s, at: t)
            if keepsRows {
                try writer.storeSession(key: s.serial, Self.row(s), timeline: timelineRows(s), findings: findings.map(deviationRow))
            }
            retiredSummaries[s.serial] = Self.summary(s)
        }
    }

    /// A session's timeline as rows (the writer sets their session id).
    func timelineRows(_ s: Session) -> [TimelineEventRow] {
        s.events.enumerated().map { ordinal, e in
            let place = Self.place(e.message?.frames)
            return TimelineEventRow(
                sessionID: 0, ordinal: ordinal, time: e.time.seconds, phase: e.phase.rawValue, step: e.step.rawValue, ok: e.ok,
                latency: e.latency, flowID: e.connection.flatMap { flowIDs[$0] }, messageKind: e.message?.kind.rawValue,
                messageID: e.message?.id, detailJSON: e.detail.compact, captureOrdinal: place.capture, firstFrame: place.first,
                lastFrame: place.last, credentialDigest: e.credential.map(Self.hex))
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out += [digits[Int(b >> 4)], digits[Int(b & 0xF)]] }
        return String(decoding: out, as: UTF8.self)
    }

    /// Where frames are, as the store's columns say it: the file of the first known frame (its `captures` ordinal) and
    /// the frame numbers in that file (a last frame in another file, of a message straddling two files of a rotated
    /// capture, is left out).
    static func place(_ frames: FrameSpan?) -> (capture: Int?, first: Int?, last: Int?) {
        guard let place = frames?.inOneFile else { return (nil, nil, nil) }
        return (place.file, place.first, place.last)
    }

    var decoded: [MessageEvent] = []
    var liveEvents: [StreamEvent] = []
    let isLive: Bool

    /// Live capture: feeds one frame (its bytes are only valid during the call).
    public func process(_ record: CaptureRecord) throws {
        pipeline.process(record, into: &liveEvents)
        if !liveEvents.isEmpty {
            try ingest(liveEvents)
            liveEvents.removeAll(keepingCapacity: true)
        }
    }

    /// What the kernel says of a live capture (libpcap's `pcap_stats`): packets received, dropped by the kernel for
    /// lack of buffer, dropped by the interface.
    public struct KernelCounts: Sendable, Hashable {
        public var received: Int
        public var dropped: Int
        public var interfaceDropped: Int

        public init(received: Int, dropped: Int, interfaceDropped: Int) {
            self.received = received
            self.dropped = dropped
            self.interfaceDropped = interfaceDropped
        }
    }

    /// What a live analysis has seen so far (for a status line).
    public struct LiveStatus: Sendable {
        public var frames: Int
        public var connections: Int
        public var sessions: Int
        public var deviations: Int
    }

    /// Live capture: stores the picture so far — sessions as they stand at `now`, their timelines and the findings
    /// already certain — replacing the previous picture, and flushes, so `pilottrace timeline` in another process
    /// sees a session while it is live. `now` is the capture clock (wall time); silence is evidence too, so the
    /// sessions advance to it (less a second, for frames still on their way).
    @discardableResult
    public func refreshLive(now: Timestamp, kernel: KernelCounts? = nil) throws -> LiveStatus {
        let clock = now.adding(seconds: -1)
        if clock > (lastTime ?? .zero) { tracker.advance(to: clock) }
        try sweepTelemetry(at: clock.seconds)
        let tracker = self.tracker.snapshot(), engine = self.engine.snapshot()
        let at = max(lastTime ?? clock, clock)
        let sessions = tracker.finish(at: at)
        let deviations = engine.finish(sessions: sessions, captureEnd: at)
        try storeSessions(sessions, deviations, retiredNumbers: [:])
        // Another capture point may be recording the other side of these logins at the same time.
        try writer.stitch()
        try writer.recordProgress(countersJSON: Self.progressJSON(pipeline.counters, kernel: kernel))
        return LiveStatus(
            frames: pipeline.counters.frames, connections: analyzer.classified.values.reduce(0, +), sessions: sessions.count,
            deviations: deviations.count)
    }

    /// The run's counters so far (the keys of the final `counters_json`) and the kernel's: `kernelReceived`,
    /// `kernelDropped`, `interfaceDropped`.
    static func progressJSON(_ counters: PacketCounters, kernel: KernelCounts?) -> String {
        var object = ((try? JSONEncoder().encode(counters)).flatMap { try? JSONSerialization.jsonObject(with: $0) } as? [String: Any]) ?? [:]
        if let kernel {
            object["kernelReceived"] = kernel.received
            object["kernelDropped"] = kernel.dropped
            object["interfaceDropped"] = kernel.interfaceDropped
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Live capture ended at `end` (the capture clock when it stopped): releases every connection, then decides
    /// sessions and findings and stores them in place of the live picture. `stop` is `.interrupted` when the capture
    /// failed: the sessions still in progress are stored `incomplete`.
    public func finishLive(files: [CaptureFileReport], end: Timestamp? = nil, stop: AnalysisWriter.Stop = .complete) throws -> AnalysisReport {
        pipeline.finish(into: &liveEvents)
        try ingest(liveEvents)
        liveEvents.removeAll()
        return try complete(files: files, error: nil, end: end, stop: stop)
    }

    /// Sessions, timelines and findings, once the input is exhausted (or the run interrupted: `stop`). The capture
    /// ends at its last frame, or later when it says it ran longer (`end`, a pcapng file's `isb_endtime`).
    func complete(
        files: [CaptureFileReport], error: CaptureFileError?, end stopped: Timestamp? = nil,
        stop: AnalysisWriter.Stop = .complete
    ) throws -> AnalysisReport {
        for (ordinal, f) in files.enumerated() {
            try writer.updateCapture(
                CaptureRow(
                    ordinal: ordinal, path: f.path, sha256: "", format: f.format, compressed: f.compressed,
                    linkTypes: f.linkTypes.map(\.name).joined(separator: ","), records: f.records,
                    firstTime: f.firstTime?.seconds, lastTime: f.lastTime?.seconds, warnings: f.warnings))
        }
        telemetry.closeAll()
        try storeTelemetry()
        let end = [lastTime, stopped, files.compactMap(\.endTime).max()].compactMap { $0 }.max() ?? .zero
        var sessions = tracker.finish(at: end)
        if case .interrupted = stop {
            // Cut short: a session still going on is not known to be online; it is incomplete.
            for i in sessions.indices where sessions[i].state == .online { sessions[i].state = .incomplete }
        }
        let deviations = engine.finish(sessions: sessions, retiredNumbers: tracker.retiredNumbers, captureEnd: end)
        let stored = try storeSessions(sessions, deviations, retiredNumbers: tracker.retiredNumbers, final: true)
        let counters = pipeline.counters
        let countersJSON = (try? JSONEncoder().encode(counters)).map { String(decoding: $0, as: UTF8.self) }
        try writer.finish(
            frames: counters.frames, frameBytes: counters.frameBytes,
            firstTime: files.compactMap(\.firstTime).min()?.seconds, lastTime: end == .zero ? nil : end.seconds,
            countersJSON: countersJSON, stop: stop)
        let stitched = try writer.stitch()
        var interrupted: String?
        if case .interrupted(let reason) = stop { interrupted = reason }
        return AnalysisReport(
            analysisID: writer.analysisID, files: files, error: error, counters: counters,
            connections: analyzer.classified, messages: messageCounts, sessions: stored, deviations: deviations,
            interrupted: interrupted, stitched: stitched)
    }

    /// Stores the sessions in progress (each under its serial: stored again, a session keeps its id and its timeline is
    /// replaced) and replaces the analysis's findings with `deviations`, in one batch, so a reader in another process
    /// sees either the previous picture or this one. A live picture also drops the sessions no longer in it.
    ///
    /// With `final`, returns every session of the run, those retired early included, in start order with the ids the
    /// database gave them.
    @discardableResult
    func storeSessions(
        _ sessions: [Session], _ deviations: [Deviation], retiredNumbers: [Int: Int], final: Bool = false
    ) throws
        -> [(Int64, Session)]
    {
        if keepsRows {
            for s in sessions { try writer.storeSession(key: s.serial, Self.row(s), timeline: timelineRows(s), findings: nil) }
            if isLive { try writer.keepSessions(keys: Set(sessions.map(\.serial))) }
            // Findings name sessions by number (start order); the store knows them by serial.
            var serialOf: [Int: Int] = [:]
            for s in sessions { serialOf[s.number] = s.serial }
            for (serial, number) in retiredNumbers { serialOf[number] = serial }
            try writer.replaceFindings(deviations.map { d in (sessionKey: d.session.flatMap { serialOf[$0] }, row: deviationRow(d)) })
        }
        try writer.flush()
        guard final else { return [] }
        // Every session in start order; each retired summary moves out of `retiredSummaries` (with tens of thousands of
        // sessions, copies of them were the analysis's peak of memory).
        var order: [(number: Int, serial: Int, index: Int?)] = sessions.indices.map { (sessions[$0].number, sessions[$0].serial, $0) }
        for serial in retiredSummaries.keys { order.append((retiredNumbers[serial] ?? Int.max, serial, nil)) }
        order.sort { ($0.number, $0.serial) < ($1.number, $1.serial) }
        var stored: [(Int64, Session)] = []
        stored.reserveCapacity(order.count)
        for (number, serial, index) in order {
            var s: Session
            if let index {
                s = sessions[index]
            } else {
                s = retiredSummaries.removeValue(forKey: serial)!
                s.number = number
            }
            // Nothing stored (`--no-store`): a session is known by its number.
            guard let id = keepsRows ? writer.sessionID(key: serial) : Int64(number) else {
                throw PilotTraceStoreError(
                    kind: .writeFailed, path: "analysis \(writer.analysisID)",
                    message: "session \(number) was not stored")
            }
            stored.append((id, s))
        }
        return stored
    }

    /// A finding as a row; the writer sets its session id (from the session it is stored with, or its key).
    func deviationRow(_ d: Deviation) -> DeviationRow {
        let place = Self.place(d.message?.frames)
        return DeviationRow(
            sessionID: nil, ruleID: d.rule.id, severity: d.rule.severity.rawValue, title: d.text, time: d.time?.seconds,
            flowID: d.connection.flatMap { flowIDs[$0] }, messageKind: d.message?.kind.rawValue, messageID: d.message?.id,
            evidenceJSON: d.evidence.compact, captureOrdinal: place.capture, firstFrame: place.first, lastFrame: place.last)
    }

    static func time(_ e: StreamEvent) -> Timestamp? {
        switch e {
        case .data(_, _, _, let t, _), .gap(_, _, _, let t), .end(_, _, let t), .conflict(_, _, _, _, let t): t
        case .opened(let info): info.firstSeen
        case .closed(let s): s.lastSeen
        }
    }

    // MARK: - Messages to rows

    func handle(_ m: MessageEvent) throws {
        var ref: MessageRef?
        switch m {
        case .classified(let info, let c):
            let id = try writer.nextFlowID()
            flowIDs[info.id] = id
            if keepsRows {
                let names = FlowNames(info)
                openFlows[info.id] = names
                try writer.upsertFlow(Self.flowRow(id: id, info, names, c))
            }
        case .http(let conn, let e):
            ref = try http(conn, e)
        case let .mqtt(conn, dir, record, ts, overWebSocket):
            guard let flow = flowIDs[conn] else { break }
            let id: Int64
            if keepsRows {
                // Telemetry and its PUBACKs go into their window's row (written as the window opens, completed as it
                // closes).
                let writer = self.writer
                if let window = try telemetry.fold(
                    record, connection: conn, direction: dir, time: ts.seconds,
                    row: {
                        let row = Self.row(record, id: try writer.nextMQTTID(), flow: flow, dir: dir, ts: ts, overWebSocket: overWebSocket)
                        try writer.insertMQTTPacket(row)
                        return row
                    })
                {
                    id = window
                } else {
                    id = try writer.nextMQTTID()
                    try writer.insertMQTTPacket(Self.row(record, id: id, flow: flow, dir: dir, ts: ts, overWebSocket: overWebSocket))
                }
                try storeTelemetry()
            } else {
                id = try writer.nextMQTTID()
            }
            messageCounts.mqtt += 1
            ref = MessageRef(.mqtt, id, frames: record.frames)
        case .closed(let summary, _):
            try closed(summary)
        case .mqttError:
            break
        }
        tracker.consume(m, ref: ref)
        engine.consume(m, ref: ref)
        if case .closed(let summary, let c) = m, let names = openFlows.removeValue(forKey: summary.info.id),
            let id = flowIDs[summary.info.id]
        {
            // The row written at the classification again, completed: built afresh from the summary (the same
            // connection, as the decoders saw it), the classification the close repeats and the names kept, so only
            // those are held per open connection in between.
            var row = Self.flowRow(id: id, summary.info, names, c)
            row.complete(with: summary)
            row.mqttRole = tracker.roles[summary.info.id]?.rawValue
            try writer.upsertFlow(row)
        }
    }

    /// An open connection's endpoints and Community ID as its row gives them: formatted (and hashed) once.
    struct FlowNames {
        var client: String, server: String, communityID: String
        init(_ info: ConnectionInfo) {
            (client, server, communityID) = (info.client.description, info.server.description, info.communityID)
        }
    }

    /// A connection's row as written when it is classified (still open).
    static func flowRow(id: Int64, _ info: ConnectionInfo, _ names: FlowNames, _ c: Classification) -> FlowRow {
        FlowRow(
            id: id, connectionNumber: Int(info.id.rawValue), client: names.client, server: names.server,
            roleEvidence: info.roleEvidence.rawValue, protocol: c.appProtocol.rawValue,
            classificationEvidence: c.evidence.rawValue, classificationNote: c.note, tlsServerName: c.tls?.serverName,
            firstTime: info.firstSeen.seconds, lastTime: info.firstSeen.seconds, closeReason: "open", handshakeComplete: false,
            communityID: names.communityID, tlsVersion: c.decryption?.version?.rawValue,
            tlsCipherSuite: c.decryption?.cipherSuite?.name, tlsALPN: c.decryption?.alpn, tlsDecrypted: c.decryption?.decrypted,
            tlsFailure: c.decryption?.failure?.code)
    }

    func http(_ conn: ConnectionID, _ e: HTTPConnectionEvent) throws -> MessageRef? {
        guard let flow = flowIDs[conn] else { return nil }
        switch e {
        case .request(let r):
            let id = try writer.nextHTTPID()
            pendingRequests.request(r, on: conn, id)
            messageCounts.http += 1
            return MessageRef(.http, id, frames: r.span.frames)
        case .response(let r):
            guard !r.head.isInformational else { return nil }
            messageCounts.http += 1
            if let (request, id) = pendingRequests.response(r, on: conn) {
                if keepsRows { try writer.insertHTTPExchange(Self.row(id: id, flow: flow, request: request, response: r)) }
                return MessageRef(.http, id, frames: request.span.frames.through(r.span.frames))
            }
            let id = try writer.nextHTTPID()
            if keepsRows { try writer.insertHTTPExchange(Self.row(id: id, flow: flow, request: nil, response: r)) }
            return MessageRef(.http, id, frames: r.span.frames)
        case .webSocket(let message):
            let id = try writer.nextWebSocketID()
            let kind: String
            var closeCode: Int?
            switch message.kind {
            case .text: kind = "text"
            case .binary: kind = "binary"
            case .close(let code, _): kind = "close"; closeCode = code.map { Int($0.rawValue) }
            case .ping: kind = "ping"
            case .pong: kind = "pong"
            }
            let place = Self.place(message.frames)
            if keepsRows {
                try writer.insertWebSocketMessage(
                    WebSocketMessageRow(
                        id: id, flowID: flow, direction: Self.direction(message.direction), time: message.lastByteAt.seconds, kind: kind,
                        length: message.length, payload: Data(message.payload), text: message.text, json: message.json?.compact, closeCode: closeCode,
                        captureOrdinal: place.capture, firstFrame: place.first, lastFrame: place.last))
            }
            messageCounts.webSocket += 1
            return MessageRef(.websocket, id, frames: message.frames)
        default:
            return nil
        }
    }

    func closed(_ s: ConnectionSummary) throws {
        let conn = s.info.id
        if keepsRows {
            telemetry.close(connection: conn)
            try storeTelemetry()
        }
        let unanswered = pendingRequests.close(conn)
        if let flow = flowIDs[conn] {
            if keepsRows { for (request, id) in unanswered { try writer.insertHTTPExchange(Self.row(id: id, flow: flow, request: request, response: nil)) } }
        }
    }

    static func direction(_ d: Direction) -> String { d == .toServer ? "to-server" : "to-client" }

    static func headers(_ h: HTTPHeaders) -> [HTTPHeaderField] { h.map { HTTPHeaderField($0.name, $0.value) } }

    static func row(id: Int64, flow: Int64, request q: HTTPRequest?, response r: HTTPResponse?) -> HTTPExchangeRow {
        var incomplete: [String] = []
        // The exchange is placed in the file of its first frame; each message's frames where they are in that file.
        let file = place(q?.span.frames ?? r?.span.frames).capture
        func frames(_ span: HTTPMessageSpan?) -> (first: Int?, last: Int?) {
            guard let span, let file else { return (nil, nil) }
            func number(_ f: CaptureFrame) -> Int? { f.isKnown && Int(f.file) == file ? Int(f.number) : nil }
            return (number(span.frames.first), number(span.frames.last))
        }
        let (requestFrames, responseFrames) = (frames(q?.span), frames(r?.span))
        if let i = q?.incomplete { incomplete.append("request: \(i.reason.rawValue)") }
        if let i = r?.incomplete { incomplete.append("response: \(i.reason.rawValue)") }
        return HTTPExchangeRow(
            id: id, flowID: flow, sequence: q?.index ?? r?.requestIndex ?? -1,
            method: q?.method ?? r?.requestMethod, target: q?.head.target, path: q?.head.path, query: q?.head.query,
            requestHeaders: q.map { headers($0.headers) }, requestBody: q.map { Data($0.body.content) }, requestBodyLength: q?.body.length,
            requestJSON: q?.body.json?.compact, requestTime: q?.span.firstByteAt.seconds,
            status: r?.status, reason: r?.head.reason, responseHeaders: r.map { headers($0.headers) },
            responseBody: r.map { Data($0.body.content) }, responseBodyLength: r?.body.length, responseJSON: r?.body.json?.compact,
            responseTime: r?.span.lastByteAt.seconds, incomplete: incomplete.isEmpty ? nil : incomplete.joined(separator: "; "),
            captureOrdinal: file, requestFirstFrame: requestFrames.first, requestLastFrame: requestFrames.last,
            responseFirstFrame: responseFrames.first, responseLastFrame: responseFrames.last)
    }

    static func row(_ record: MQTTPacketRecord, id: Int64, flow: Int64, dir: Direction, ts: Timestamp, overWebSocket: Bool) -> MQTTPacketRow {
        let place = place(record.frames)
        var row = MQTTPacketRow(
            id: id, flowID: flow, direction: direction(dir), time: ts.seconds, overWebSocket: overWebSocket,
            version: record.version.description, versionAssumed: record.versionAssumed,
            type: record.packet.type.description, packetID: record.packet.packetIdentifier.map(Int.init),
            summary: record.summary(showSecrets: false), captureOrdinal: place.capture, firstFrame: place.first,
            lastFrame: place.last)
        switch record.packet {
        case .connect(let c):
            row.clientID = c.clientIdentifier
            row.username = c.username
            row.password = c.password.map { Data($0.stored) }
            row.keepAlive = Int(c.keepAlive)
        case .connAck(let a):
            row.returnCode = Int(a.returnCode.rawValue)
        case .publish(let p):
            row.topic = p.topic
            row.qos = Int(p.qos.rawValue)
            row.retain = p.retain
            row.dup = p.dup
            row.payload = Data(p.payload.stored)
            row.payloadLength = p.payload.length
            // Telemetry (osd, state: nearly every packet of a real capture) keeps its payload only: parsing and
            // re-serialising it for payload_json cost more than storing the row. Readers take CAST(payload AS TEXT).
            if !p.payload.truncated, !DJITopic.isTelemetry(p.topic) {
                row.payloadJSON = (try? JSONValue.parse(p.payload.stored))?.compact
            }
        default:
            break
        }
        return row
    }

    static func row(_ s: Session) -> SessionRow {
        SessionRow(
            id: 0, gatewaySN: s.gatewaySN, gatewayModel: s.gatewayModel?.key, gatewayModelName: s.gatewayModel?.name,
            state: s.state.rawValue, startTime: s.start.seconds, endTime: s.end.seconds, client: s.client,
            mqttClientID: s.mqttClientID, mqttUsername: s.mqttUsername, aircraftSNs: s.aircraft,
            summaryJSON: JSONValue.object([("exchanges", s.exchangeSummary())]).compact)
    }
}

extension FlowRow {
    /// The closed connection's end, close reason and per-direction counters.
    fileprivate mutating func complete(with s: ConnectionSummary) {
        lastTime = s.lastSeen.seconds
        closeReason = s.closeReason.rawValue
        handshakeComplete = s.handshakeComplete
        (upPackets, upBytes, upPayloadBytes, upGaps, upGapBytes, upRetransmissions) =
            (s.toServer.packets, s.toServer.bytes, s.toServer.payloadBytes, s.toServer.gaps, s.toServer.gapBytes, s.toServer.retransmissions)
        (downPackets, downBytes, downPayloadBytes, downGaps, downGapBytes, downRetransmissions) =
            (s.toClient.packets, s.toClient.bytes, s.toClient.payloadBytes, s.toClient.gaps, s.toClient.gapBytes, s.toClient.retransmissions)
    }
}

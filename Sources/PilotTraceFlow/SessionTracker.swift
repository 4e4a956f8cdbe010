import PilotTraceProtocols
import PilotTraceWire

/// Turns decoded messages into Pilot 2 device sessions with six-phase timelines (protocol reference §1, §2, §4).
///
/// Pure: fed ``MessageEvent``s in capture order (each with the reference the caller stores it under), moved
/// forward with capture time, finished at the capture's end. No I/O, no clock. Its ideas live in files of their own:
/// - MQTT connections and their roles (`SessionTracker+MQTT.swift`): *device* (publishes uplink topics for a gateway
///   SN, or subscribes to its own downlink topics), *cloud* (wildcard subscriptions, replies and downlink publishes,
///   or receiving the devices' uplink topics), *other*. Only device connections make sessions; a refused CONNECT
///   makes one too when something says Pilot 2.
/// - H5 contexts (`SessionTracker+H5.swift`): HTTP exchanges grouped by issued token and client address, joining
///   the session of the device whose MQTT CONNECT used the credentials they issued, or else the same client address,
///   nearest in time. A context with a login step but no device connection is a session of its own.
/// - Each session's life (``SessionLifecycle``): DISCONNECT ends it, a reconnect within the grace after a lost link
///   continues it, refused CONNECTs retried within the grace are one attempt; otherwise a new session starts.
/// - Retirement (here): sessions over and quiet are handed out early, so memory follows the sessions in progress.
public final class SessionTracker {
    public struct Configuration: Sendable {
        /// Seconds the cloud waits after a lost link before the device counts as offline (§1.3: 30 s).
        public var offlineGrace: Double = 30
        /// A device connection silent for this many keep-alive intervals has lost its link.
        public var keepAliveFactor: Double = 1.5
        /// Seconds a `status` may wait for its reply before a session that never got one counts as failed.
        public var replyDeadline: Double = 5
        public var profile: HTTPProfile = .reference
        /// Hand finished sessions out early (``takeRetired()``) and drop their state, so memory follows the sessions
        /// in progress rather than the length of the capture. Off for live views, which show every session.
        public var retireSessions = false
        public init() {}
    }

    public let configuration: Configuration

    /// A session being built. A class, held by serial in an array that keeps only a nil slot for a retired one;
    /// updated in place (``snapshot()`` copies them).
    final class Working {
        var session: Session
        var lifecycle: SessionLifecycle
        /// A status exchange succeeded.
        var online = false
        /// The device was already connected when the capture started: online unless its status says otherwise.
        var assumedOnline = false
        var failedStep = false
        var lastTopoTime: Timestamp?
        var firstTopoTime: Timestamp?
        var lastReplyTime: Timestamp?
        var openConnections: Set<ConnectionID> = []
        var lastAircraft: [String] = []
        /// The refused CONNACK that retries are counted on (``SessionLifecycle/Admission/retry``).
        var refusalEvent: Int?
        /// The latest event time, and when the last of its connections was released (capture time).
        var lastEventTime: Timestamp?
        var releasedAt: Timestamp?
        /// Nothing more can join it (see ``SessionTracker/closeFinishedSessions(at:)``).
        var over = false

        init(session: Session, grace: Double) {
            self.session = session
            lifecycle = SessionLifecycle(grace: grace)
        }

        func copy() -> Working {
            let w = Working(session: session, grace: lifecycle.grace)
            (w.lifecycle, w.online, w.assumedOnline, w.failedStep) = (lifecycle, online, assumedOnline, failedStep)
            (w.lastTopoTime, w.firstTopoTime, w.lastReplyTime, w.refusalEvent) = (lastTopoTime, firstTopoTime, lastReplyTime, refusalEvent)
            (w.openConnections, w.lastAircraft, w.lastEventTime, w.releasedAt, w.over) = (openConnections, lastAircraft, lastEventTime, releasedAt, over)
            return w
        }
    }

    var connections: [ConnectionID: Connection] = [:]
    var infos: [ConnectionID: ConnectionInfo] = [:]
    /// HTTP requests waiting for their responses, by connection and index.
    var requests = HTTPExchangePairing<MessageRef?>()
    var contexts = H5Contexts()
    /// The last HTML page fetched by each client address, waiting for a login context to claim it.
    var lastPage: [String: TimelineEvent] = [:]
    /// The pages in the order they were fetched, to forget those no login claimed within ``pageClaimHorizon``: a
    /// capture point that also sees other web traffic would otherwise keep one page per client address ever seen
    /// (22 MB of a 1.4 GB capture's 148 MB peak).
    var pageQueue = ExpiringQueue<(address: String, time: Timestamp)>()
    /// Seconds a fetched page waits for a login from its address; a login later than that starts without it.
    public static let pageClaimHorizon = 300.0
    /// Sessions by serial (the order they were created in); retired ones are gone.
    var sessions: [Working?] = []
    var retainedCount = 0
    var nextSerial = 0
    /// Sessions over and handed out: their start and serial, for the final numbering.
    var retiredKeys: [(start: Timestamp, serial: Int)] = []
    /// Finished sessions not yet taken by ``takeRetired()``.
    var retiredOut: [Session] = []
    /// After ``finish(at:)``: the final number of each retired session, by serial.
    public private(set) var retiredNumbers: [Int: Int] = [:]
    var finishing = false
    /// Sessions a connection of which was released: the only ones that may be over (see ``closeFinishedSessions(at:)``).
    var released: Set<Int> = []
    /// Sessions with a lost link, waiting for the grace to pass.
    var lostLinks: Set<Int> = []
    /// The session still open to each gateway serial and to each MQTT client id.
    var sessionBySN: [String: Int] = [:]
    var sessionByClientID: [String: Int] = [:]
    /// The open device (or not yet classified) connection using each MQTT client id, for takeovers.
    var connectionByClientID: [String: ConnectionID] = [:]
    var now = Timestamp(nanoseconds: .min)
    var lastSweep: Timestamp?
    var correlator = ReplyCorrelator()
    /// Roles of the MQTT connections seen, for storage and reports.
    public internal(set) var roles: [ConnectionID: MQTTRole] = [:]

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// An independent copy, objects inside copied too: a live view finishes a snapshot while the tracker goes on.
    /// Every stored property is listed here; `SnapshotTests` fails when one is forgotten or an object is shared.
    package func snapshot() -> SessionTracker {
        let copy = SessionTracker(configuration: configuration)
        copy.connections = connections.mapValues { $0.copy() }
        (copy.infos, copy.requests, copy.contexts, copy.lastPage) = (infos, requests, contexts, lastPage)
        copy.pageQueue = pageQueue
        copy.sessions = sessions.map { $0?.copy() }
        (copy.retainedCount, copy.nextSerial, copy.retiredKeys, copy.retiredOut) = (retainedCount, nextSerial, retiredKeys, retiredOut)
        (copy.retiredNumbers, copy.finishing, copy.released, copy.lostLinks) = (retiredNumbers, finishing, released, lostLinks)
        (copy.sessionBySN, copy.sessionByClientID, copy.connectionByClientID) = (sessionBySN, sessionByClientID, connectionByClientID)
        (copy.now, copy.lastSweep, copy.correlator, copy.roles) = (now, lastSweep, correlator, roles)
        return copy
    }

    // MARK: - Input

    /// Consumes one decoded message; `ref` is how the caller stored it (for the timeline's links).
    public func consume(_ event: MessageEvent, ref: MessageRef? = nil) {
        switch event {
        case .classified(let info, let c):
            infos[info.id] = info
            if c.appProtocol == .mqtt { connections[info.id] = Connection(info: info, lastClientPacket: info.firstSeen) }
        case let .mqtt(id, dir, record, ts, _):
            advance(to: ts)
            var c = connections[id]
            if c == nil, let info = infos[id] {
                c = Connection(info: info, lastClientPacket: ts)  // MQTT over WebSocket
                connections[id] = c
            }
            var topic: DJITopic?
            var envelope: DJIEnvelope?
            if case .publish(let p) = record.packet {
                let parsed: DJITopic
                if let last = c?.lastTopic, last.name == p.topic {
                    parsed = last.parsed
                } else {
                    parsed = DJITopic(p.topic)
                    c?.lastTopic = (p.topic, parsed)
                }
                // The envelope (a JSON parse) is read once, for the correlator and the timeline.
                if let kind = parsed.kind, ReplyCorrelator.correlates(kind) { envelope = DJIEnvelope(payload: p.payload.stored) }
                correlator.publish(p, topic: parsed, on: id, at: ts, envelope: envelope)
                topic = parsed
            }
            if let c { mqtt(c, dir, record, ts, ref, topic: topic, envelope: envelope) }
        case .http(let id, let e):
            http(id, e, ref)
        case .closed(let summary, _):
            advance(to: summary.lastSeen)
            closed(summary)
            infos[summary.info.id] = nil  // nothing more comes on it (memory: one entry per connection ever seen)
        case .mqttError:
            break
        }
    }

    /// Moves capture time forward: silent links are declared lost, grace periods expire.
    public func advance(to t: Timestamp) {
        guard t > now else { return }
        now = t
        // Silence and grace are judged to the second: sweep at most once per second of capture time, so the cost
        // per message does not grow with the number of open connections.
        if let last = lastSweep, t.seconds(since: last) < 1 { return }
        lastSweep = t
        forgetUnclaimedPages(before: t.adding(seconds: -Self.pageClaimHorizon))
        for c in connections.values {
            guard c.role == .device, !c.closed, !c.linkLostReported, !c.disconnected, c.keepAlive > 0 else { continue }
            let limit = c.keepAlive * configuration.keepAliveFactor
            if t.seconds(since: c.lastClientPacket) > limit {
                c.linkLostReported = true
                let at = c.lastClientPacket.adding(seconds: limit)
                linkLost(
                    c, at: at,
                    detail: .members([
                        ("reason", .text("keep-alive")), ("keep_alive", .int(Int(c.keepAlive))),
                        ("silent_seconds", .number(JSONNumber((limit * 1000).rounded() / 1000))),
                    ]))
            }
        }
        // Only sessions whose link was lost can be confirmed offline (sessions are independent here: any order).
        for i in lostLinks {
            guard let w = sessions[i], case .linkLost = w.lifecycle.state else {
                lostLinks.remove(i)
                continue
            }
            if w.openConnections.isEmpty, let offline = w.lifecycle.expiry(now: t) {
                lostLinks.remove(i)
                add(
                    w,
                    TimelineEvent(
                        time: offline, step: .offlineConfirmed, ok: true,
                        detail: .members([("grace_seconds", .number(JSONNumber(configuration.offlineGrace)))])))
            }
        }
        closeFinishedSessions(at: t)
    }

    /// Sessions that are over: no connection of theirs left (released by the reassembler), nothing open, and quiet
    /// for the grace period plus the correlator's horizon (so every request/reply exchange in their window is
    /// settled). Nothing can join such a session any more: its gateway's next connection starts a new session, and
    /// its H5 contexts take no more requests. With ``Configuration/retireSessions`` it is finished right away (the
    /// same state, events and exchanges ``finish(at:)`` would give it) and its state dropped.
    func closeFinishedSessions(at t: Timestamp) {
        let quiet = configuration.offlineGrace + correlator.horizon + 1
        var over: [Int] = []
        for i in released {
            guard let w = sessions[i], w.openConnections.isEmpty else { continue }
            let last = max(w.lastEventTime ?? w.session.start, w.releasedAt ?? w.session.start)
            guard t.seconds(since: last) > quiet, w.session.connections.allSatisfy({ connections[$0] == nil }) else { continue }
            over.append(i)
        }
        for i in over { released.remove(i) }
        guard !over.isEmpty else { return }
        over.sort()
        correlator.expire(now: t)
        for i in over {
            guard let w = sessions[i] else { continue }
            w.over = true
            forget(i, w)
            contexts.removeAll(session: i)
            guard configuration.retireSessions, !finishing else { continue }
            sessions[i] = nil
            retainedCount -= 1
            let s = finished(w, exchanges: correlator.settled(gateway: w.session.gatewaySN), captureEnd: t)
            retiredKeys.append((s.start, s.serial))
            retiredOut.append(s)
        }
    }

    /// Nothing new joins session `i` by its gateway serial or client id any more.
    func forget(_ i: Int, _ w: Working) {
        if let sn = w.session.gatewaySN, sessionBySN[sn] == i { sessionBySN[sn] = nil }
        if let id = w.session.mqttClientID, sessionByClientID[id] == i { sessionByClientID[id] = nil }
    }

    /// Sessions retired since the last call (``Configuration/retireSessions``), final but for their `number`
    /// (`serial + 1` here; ``retiredNumbers`` has the final one after ``finish(at:)``).
    public func takeRetired() -> [Session] {
        defer { retiredOut.removeAll() }
        return retiredOut
    }

    /// Sessions and H5 contexts held now (for tests of bounded memory).
    public var retainedSessions: Int { retainedCount }
    public var retainedContexts: Int { contexts.count }
    public var retainedConnections: Int { connections.count }

    /// The capture ended: decides each session's state and returns them, in start order.
    public func finish(at end: Timestamp) -> [Session] {
        // Connections whose role nothing revealed: a CONNECT that looks like Pilot 2's still makes a session.
        for id in connections.keys.sorted() where connections[id]?.role == nil {
            guard let c = connections[id], c.connectTime != nil, looksLikePilot(c) else { continue }
            c.role = .device
            route(c, [])
        }
        finishing = true
        defer { finishing = false }
        advance(to: end)
        // H5 contexts that never met a device connection are sessions of their own.
        for i in contexts.ids where contexts[i].session == nil && contexts[i].hasFlowStep {
            let w = newSession(start: contexts[i].events.map(\.time).min() ?? contexts[i].last, client: contexts[i].client)
            contexts[i].session = w.session.serial
            for e in contexts[i].events { add(w, e) }
        }
        // Each session takes its gateway's exchanges (grouped once: filtering the whole list per session made the
        // finish quadratic, 20 % of a 4,000-device login storm); the correlator's own copy is not needed any more.
        let exchanges = Dictionary(grouping: correlator.finish()) { $0.gateway }
        correlator = ReplyCorrelator(horizon: correlator.horizon)
        var out: [Session] = []
        for case let w? in sessions {
            out.append(finished(w, exchanges: w.session.gatewaySN.flatMap { exchanges[$0] } ?? [], captureEnd: end))
        }
        // Numbered by start (then creation), retired sessions included.
        var keys: [(start: Timestamp, serial: Int, index: Int?)] = []
        for (i, s) in out.enumerated() { keys.append((s.start, s.serial, i)) }
        for r in retiredKeys { keys.append((r.start, r.serial, nil)) }
        keys.sort { ($0.start, $0.serial) < ($1.start, $1.serial) }
        retiredNumbers = [:]
        for (rank, k) in keys.enumerated() {
            if let i = k.index { out[i].number = rank + 1 } else { retiredNumbers[k.serial] = rank + 1 }
        }
        out.sort { $0.number < $1.number }
        return out
    }

    /// A session as the capture leaves it: its gateway's exchanges (`exchanges`: those of its gateway, in request
    /// order), events in time order, start, end and state.
    func finished(_ w: Working, exchanges: [RequestReply], captureEnd end: Timestamp) -> Session {
        var s = w.session
        if let sn = s.gatewaySN {
            // The gateway's exchanges while the session lasted, whichever side asked (the cloud asks services).
            let times = s.events.map(\.time)
            let from = times.min() ?? s.start, to = (times.max() ?? s.end).adding(seconds: configuration.offlineGrace)
            s.exchanges = exchanges.filter {
                $0.gateway == sn
                    && (s.connections.contains($0.requestConnection) || $0.replyConnection.map(s.connections.contains) == true
                        || ($0.requestTime >= from && $0.requestTime <= to))
            }
            // In request order (stable: requests at the same instant keep the order they were settled in).
            s.exchanges.sort { $0.requestTime < $1.requestTime }
        }
        // Time order; events at the same instant keep the order they happened in.
        s.events = s.events.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        s.start = s.events.first?.time ?? s.start
        s.end = s.events.last?.time ?? s.end
        s.state = state(w, captureEnd: end)
        return s
    }

    func state(_ w: Working, captureEnd: Timestamp) -> SessionState {
        let s = w.session
        func connectedOutcome() -> SessionState {
            switch w.lifecycle.state {
            case .disconnected, .offlineConfirmed: return .offline
            case .connected where !w.openConnections.isEmpty: return .online
            default: return .incomplete  // link lost, capture ended inside the grace period
            }
        }
        if w.online { return connectedOutcome() }
        if w.failedStep { return .failed }
        // The first status went unanswered past the deadline (Pilot 2 retries, then gives up), or the device left
        // (DISCONNECT, link closed) with it still unanswered.
        if let topo = w.firstTopoTime, w.lastReplyTime == nil {
            if captureEnd.seconds(since: topo) > configuration.replyDeadline { return .failed }
            if w.openConnections.isEmpty, s.events.contains(where: { $0.step == .mqttDisconnect || $0.step == .linkLost }) { return .failed }
        }
        if w.assumedOnline { return connectedOutcome() }
        return .incomplete
    }

    // MARK: - Sessions

    func newSession(start: Timestamp, client: String?) -> Working {
        let serial = nextSerial
        nextSerial += 1
        retainedCount += 1
        let w = Working(
            session: Session(
                number: serial + 1, gatewaySN: nil, gatewayModel: nil, state: .incomplete,
                start: start, end: start, client: client, mqttClientID: nil, mqttUsername: nil,
                aircraft: [], events: [], connections: [], serial: serial),
            grace: configuration.offlineGrace)
        sessions.append(w)
        return w
    }

    /// Adds a step to a session's timeline and moves its lifecycle; a session that ends is forgotten by serial and
    /// client id, so the device's next connection starts a new one.
    func add(_ w: Working, _ e: TimelineEvent) {
        w.lastEventTime = max(w.lastEventTime ?? e.time, e.time)
        w.session.events.append(e)
        if !e.ok, [.loginFailed, .mqttConnack, .statusReply, .tokenRejected].contains(e.step) { w.failedStep = true }
        if e.ok, e.step == .statusReply { w.failedStep = false }
        w.lifecycle.apply(e)
        if e.step == .mqttConnack, !e.ok, w.refusalEvent == nil { w.refusalEvent = w.session.events.count - 1 }
        if case .linkLost = w.lifecycle.state { lostLinks.insert(w.session.serial) }
        if w.lifecycle.isOver { forget(w.session.serial, w) }
    }

    func address(_ e: Endpoint) -> String { e.address.description }
}

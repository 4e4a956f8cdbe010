import PilotTraceProtocols
import PilotTraceWire

/// Turns decoded messages into Pilot 2 device sessions with six-phase timelines (protocol reference §1, §2, §4).
///
/// Pure: fed ``MessageEvent``s in capture order (each with the reference the caller stores it under), moved
/// forward with capture time, finished at the capture's end. No I/O, no clock.
///
/// - MQTT connections are classified by role: *device* (publishes uplink topics for a gateway SN, or subscribes to
///   its own downlink topics), *cloud* (wildcard subscriptions, replies and downlink publishes), *other*. Only
///   device connections make sessions; a refused CONNECT makes one too (gateway SN unknown).
/// - HTTP exchanges are grouped into H5 contexts (one per issued token and client address) and join the session
///   of the device whose MQTT CONNECT used the credentials they issued, or else the same client address, nearest
///   in time. A context with a login step but no device connection is a session of its own (the classic "MQTT
///   never connected" failure).
/// - A reconnect within the grace period after a lost link continues the session; later, a new one starts.
public struct SessionTracker {
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

    /// One MQTT connection's state. A class: every packet updates it in place (a struct of this size copied out of
    /// and back into the dictionary per packet was 14 % of the pipeline's instructions); ``snapshot()`` copies them.
    final class Connection {
        let info: ConnectionInfo
        var role: MQTTRole?
        var sn: String?
        var clientID: String?
        var username: String?
        var password: [UInt8]?
        var keepAlive: Double = 0
        var connectTime: Timestamp?
        var connectRef: MessageRef?
        var refused = false
        var pending: [TimelineEvent] = []
        var session: Int?
        var lastClientPacket: Timestamp
        var linkLostReported = false
        var disconnected = false
        var pendingSubscribe: [UInt16: (Timestamp, [String], MessageRef?)] = [:]
        var pendingStatus: [(tid: String?, bid: String?, time: Timestamp)] = []
        var closed = false
        /// The last PUBLISH topic parsed on this connection (a device alternates a handful of topics).
        var lastTopic: (name: String, parsed: DJITopic)?
        /// The role last written to ``SessionTracker/roles``.
        var recordedRole: MQTTRole?

        init(info: ConnectionInfo, lastClientPacket: Timestamp) {
            self.info = info
            self.lastClientPacket = lastClientPacket
        }

        func copy() -> Connection {
            let c = Connection(info: info, lastClientPacket: lastClientPacket)
            (c.role, c.sn, c.clientID, c.username, c.password, c.keepAlive) = (role, sn, clientID, username, password, keepAlive)
            (c.connectTime, c.connectRef, c.refused, c.pending, c.session) = (connectTime, connectRef, refused, pending, session)
            (c.linkLostReported, c.disconnected, c.pendingSubscribe, c.pendingStatus, c.closed) =
                (linkLostReported, disconnected, pendingSubscribe, pendingStatus, closed)
            (c.lastTopic, c.recordedRole) = (lastTopic, recordedRole)
            return c
        }
    }

    struct H5Context {
        var client: String
        var tokens: Set<String> = []
        var mqttUsername: String?
        var mqttPassword: String?
        var events: [TimelineEvent] = []
        var session: Int?
        var hasFlowStep = false
        var last: Timestamp
    }

    /// A session being built. A class, held by serial in an array that keeps only a nil slot for a retired one;
    /// updated in place (``snapshot()`` copies them).
    final class Working {
        var session: Session
        var linkLostAt: Timestamp?
        var confirmedOffline = false
        var online = false
        var failedStep = false
        var lastTopoTime: Timestamp?
        var firstTopoTime: Timestamp?
        var lastReplyTime: Timestamp?
        var openConnections: Set<ConnectionID> = []
        var lastAircraft: [String] = []
        /// The latest event time, and when the last of its connections was released (capture time).
        var lastEventTime: Timestamp?
        var releasedAt: Timestamp?
        /// Nothing more can join it (see ``SessionTracker/closeFinishedSessions(at:)``).
        var over = false

        init(session: Session) { self.session = session }

        func copy() -> Working {
            let w = Working(session: session)
            (w.linkLostAt, w.confirmedOffline, w.online, w.failedStep) = (linkLostAt, confirmedOffline, online, failedStep)
            (w.lastTopoTime, w.firstTopoTime, w.lastReplyTime) = (lastTopoTime, firstTopoTime, lastReplyTime)
            (w.openConnections, w.lastAircraft, w.lastEventTime, w.releasedAt, w.over) = (openConnections, lastAircraft, lastEventTime, releasedAt, over)
            return w
        }
    }

    var connections: [ConnectionID: Connection] = [:]
    var infos: [ConnectionID: ConnectionInfo] = [:]
    /// HTTP requests waiting for their responses, by connection and index.
    var requests: [ConnectionID: [Int: (HTTPRequest, MessageRef?)]] = [:]
    var contexts: [H5Context] = []
    /// The last HTML page fetched by each client address, waiting for a login context to claim it.
    var lastPage: [String: TimelineEvent] = [:]
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
    var sessionBySN: [String: Int] = [:]
    var now = Timestamp(nanoseconds: .min)
    var lastSweep: Timestamp?
    var correlator = ReplyCorrelator()
    /// Roles of the MQTT connections seen, for storage and reports.
    public private(set) var roles: [ConnectionID: MQTTRole] = [:]

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// An independent copy (connections are objects updated in place): a live view finishes a snapshot while the
    /// tracker goes on.
    package func snapshot() -> SessionTracker {
        var copy = self
        copy.connections = connections.mapValues { $0.copy() }
        copy.sessions = sessions.map { $0?.copy() }
        return copy
    }

    // MARK: - Input

    /// Consumes one decoded message; `ref` is how the caller stored it (for the timeline's links).
    public mutating func consume(_ event: MessageEvent, ref: MessageRef? = nil) {
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
                if let last = c?.lastTopic, last.name == p.topic {
                    topic = last.parsed
                } else {
                    topic = DJITopic(p.topic)
                    c?.lastTopic = (p.topic, topic!)
                }
                // The envelope (a JSON parse) is read once, for the correlator and the timeline.
                if let kind = topic!.kind, ReplyCorrelator.correlates(kind) { envelope = DJIEnvelope(payload: p.payload.stored) }
                correlator.publish(p, topic: topic!, on: id, at: ts, envelope: envelope)
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
    public mutating func advance(to t: Timestamp) {
        guard t > now else { return }
        now = t
        // Silence and grace are judged to the second: sweep at most once per second of capture time, so the cost
        // per message does not grow with the number of open connections.
        if let last = lastSweep, t.seconds(since: last) < 1 { return }
        lastSweep = t
        for c in connections.values {
            guard c.role == .device, !c.closed, !c.linkLostReported, !c.disconnected, c.keepAlive > 0 else { continue }
            let limit = c.keepAlive * configuration.keepAliveFactor
            if t.seconds(since: c.lastClientPacket) > limit {
                c.linkLostReported = true
                let at = c.lastClientPacket.adding(seconds: limit)
                linkLost(c, at: at, detail: .members([("reason", .text("keep-alive")), ("keep_alive", .int(Int(c.keepAlive))),
                                                      ("silent_seconds", .number(JSONNumber((limit * 1000).rounded() / 1000)))]))
            }
        }
        // Only sessions whose link was lost can be confirmed offline (sessions are independent here: any order).
        for i in lostLinks {
            guard let w = sessions[i], let lost = w.linkLostAt, !w.confirmedOffline else {
                lostLinks.remove(i)
                continue
            }
            if w.openConnections.isEmpty, t.seconds(since: lost) > configuration.offlineGrace {
                lostLinks.remove(i)
                w.confirmedOffline = true
                add(i, TimelineEvent(time: lost.adding(seconds: configuration.offlineGrace), step: .offlineConfirmed, ok: true,
                                     detail: .members([("grace_seconds", .number(JSONNumber(configuration.offlineGrace)))])))
                if let sn = sessions[i]!.session.gatewaySN, sessionBySN[sn] == i { sessionBySN[sn] = nil }
            }
        }
        closeFinishedSessions(at: t)
    }

    /// Sessions that are over: no connection of theirs left (released by the reassembler), nothing open, and quiet
    /// for the grace period plus the correlator's horizon (so every request/reply exchange in their window is
    /// settled). Nothing can join such a session any more: its gateway's next connection starts a new session, and
    /// its H5 contexts take no more requests. With ``Configuration/retireSessions`` it is finished right away (the
    /// same state, events and exchanges ``finish(at:)`` would give it) and its state dropped.
    mutating func closeFinishedSessions(at t: Timestamp) {
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
            sessions[i]!.over = true
            if let sn = sessions[i]!.session.gatewaySN, sessionBySN[sn] == i { sessionBySN[sn] = nil }
            contexts.removeAll { $0.session == i }
            guard configuration.retireSessions, !finishing, let w = sessions[i] else { continue }
            sessions[i] = nil
            retainedCount -= 1
            let s = finished(w, exchanges: correlator.settled(gateway: w.session.gatewaySN), captureEnd: t)
            retiredKeys.append((s.start, s.serial))
            retiredOut.append(s)
        }
    }

    /// Sessions retired since the last call (``Configuration/retireSessions``), final but for their `number`
    /// (`serial + 1` here; ``retiredNumbers`` has the final one after ``finish(at:)``).
    public mutating func takeRetired() -> [Session] {
        defer { retiredOut.removeAll() }
        return retiredOut
    }

    /// Sessions and H5 contexts held now (for tests of bounded memory).
    public var retainedSessions: Int { retainedCount }
    public var retainedContexts: Int { contexts.count }
    public var retainedConnections: Int { connections.count }

    /// The capture ended: decides each session's state and returns them, in start order.
    public mutating func finish(at end: Timestamp) -> [Session] {
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
        for i in contexts.indices where contexts[i].session == nil && contexts[i].hasFlowStep {
            let s = newSession(start: contexts[i].events.map(\.time).min() ?? contexts[i].last, client: contexts[i].client)
            contexts[i].session = s
            for e in contexts[i].events { add(s, e) }
        }
        let exchanges = correlator.finish()
        // The sessions take their exchanges from this list; the correlator's own (as many again, with tens of
        // thousands of sessions) is not needed any more.
        correlator = ReplyCorrelator(horizon: correlator.horizon)
        var out: [Session] = []
        for case let w? in sessions { out.append(finished(w, exchanges: exchanges, captureEnd: end)) }
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

    /// A session as the capture leaves it: its gateway's exchanges, events in time order, start, end and state.
    func finished(_ w: Working, exchanges: [RequestReply], captureEnd end: Timestamp) -> Session {
        var s = w.session
        if let sn = s.gatewaySN {
            // The gateway's exchanges while the session lasted, whichever side asked (the cloud asks services).
            let times = s.events.map(\.time)
            let from = times.min() ?? s.start, to = (times.max() ?? s.end).adding(seconds: configuration.offlineGrace)
            s.exchanges = exchanges.filter {
                $0.gateway == sn && (s.connections.contains($0.requestConnection) || $0.replyConnection.map(s.connections.contains) == true
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
        if w.online {
            let last = s.events.max { $0.time < $1.time }
            if w.confirmedOffline || last?.step == .mqttDisconnect { return .offline }
            if !w.openConnections.isEmpty { return .online }
            return .incomplete  // link lost, capture ended inside the grace period
        }
        if w.failedStep { return .failed }
        // The first status went unanswered past the deadline (Pilot 2 retries, then gives up), or the device left
        // (DISCONNECT, link closed) with it still unanswered.
        if let topo = w.firstTopoTime, w.lastReplyTime == nil {
            if captureEnd.seconds(since: topo) > configuration.replyDeadline { return .failed }
            if w.openConnections.isEmpty, s.events.contains(where: { $0.step == .mqttDisconnect || $0.step == .linkLost }) { return .failed }
        }
        return .incomplete
    }

    // MARK: - MQTT

    mutating func mqtt(_ c: Connection, _ dir: Direction, _ record: MQTTPacketRecord, _ ts: Timestamp, _ ref: MessageRef?,
                       topic parsed: DJITopic? = nil, envelope: DJIEnvelope? = nil) {
        let id = c.info.id
        if dir == .toServer {
            c.lastClientPacket = ts
            if c.linkLostReported, !c.closed {
                c.linkLostReported = false  // it spoke again: the silence was not a lost link after all
            }
        }
        var events: [TimelineEvent] = []
        switch record.packet {
        case .connect(let connect) where dir == .toServer:
            c.clientID = connect.clientIdentifier
            c.username = connect.username
            c.password = connect.password?.stored
            c.keepAlive = Double(connect.keepAlive)
            c.connectTime = ts
            c.connectRef = ref
            events.append(TimelineEvent(time: ts, step: .mqttConnect, ok: true, connection: id, message: ref, detail: .members([
                ("client_id", .text(connect.clientIdentifier)), ("username", .text(connect.username)),
                ("password_present", .bool(connect.password != nil)), ("anonymous", .bool(connect.username == nil)),
                ("keep_alive", .int(Int(connect.keepAlive))), ("version", .text(connect.version.description)),
                ("clean_session", .bool(connect.cleanSession)),
            ])))
        case .connAck(let ack) where dir == .toClient:
            let ok = ack.returnCode.isSuccess
            c.refused = !ok
            events.append(TimelineEvent(time: ts, step: .mqttConnack, ok: ok, latency: c.connectTime.map { ts.seconds(since: $0) },
                                        connection: id, message: ref, detail: .members([
                                            ("return_code", .int(Int(ack.returnCode.rawValue))), ("reason", .text(ack.returnCode.name)),
                                            ("session_present", .bool(ack.sessionPresent)),
                                        ])))
        case .subscribe(let sub) where dir == .toServer:
            let filters = sub.subscriptions.map(\.topicFilter)
            c.pendingSubscribe[sub.packetIdentifier] = (ts, filters, ref)
            if c.role == nil { c.role = Self.role(subscribing: filters, &c.sn) }
        case .subAck(let ack) where dir == .toClient:
            if let (t, filters, subRef) = c.pendingSubscribe.removeValue(forKey: ack.packetIdentifier) {
                let ok = ack.returnCodes.allSatisfy(\.isSuccess)
                events.append(TimelineEvent(time: t, step: .mqttSubscribe, ok: ok, latency: ts.seconds(since: t), connection: id,
                                            message: subRef, detail: .members([("topics", .strings(filters))])))
            }
        case .publish(let p):
            let topic = parsed ?? DJITopic(p.topic)
            if dir == .toServer, c.role == nil {
                if topic.isUplink { c.role = .device; c.sn = topic.sn }
                else if topic.isDownlink { c.role = .cloud }
            }
            // Telemetry (osd, state: nearly every packet) makes no event: nothing more to do for it.
            guard let kind = topic.kind, kind == .status || kind == .statusTypo || kind == .statusReply else { break }
            events += publishEvents(c, dir, p, topic, ts, ref, envelope: envelope)
        case .disconnect where dir == .toServer:
            c.disconnected = true
            events.append(TimelineEvent(time: ts, step: .mqttDisconnect, ok: true, connection: id, message: ref))
        default:
            break
        }
        // Nothing to route (most packets): a known role with nothing held back needs no routing.
        if events.isEmpty, c.role != nil, c.role == c.recordedRole, c.pending.isEmpty, c.session != nil || c.role != .device { return }
        route(c, events)
    }

    /// The role a client's SUBSCRIBE reveals: wildcards over device topics mean the cloud; one gateway's
    /// downlink topics mean that device.
    static func role(subscribing filters: [String], _ sn: inout String?) -> MQTTRole? {
        for f in filters {
            let t = DJITopic(f)
            if let s = t.sn, s.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }) { return .cloud }
            if f.hasPrefix("sys/product/#") || f.hasPrefix("thing/product/#") || f == "#" { return .cloud }
            if t.isDownlink, let s = t.sn {
                sn = s
                return .device
            }
            if t.isUplink { return .cloud }  // subscribing to what devices publish
        }
        return nil
    }

    mutating func publishEvents(_ c: Connection, _ dir: Direction, _ p: MQTTPublish, _ topic: DJITopic, _ ts: Timestamp,
                                _ ref: MessageRef?, envelope: DJIEnvelope? = nil) -> [TimelineEvent] {
        guard let kind = topic.kind, let sn = topic.sn else { return [] }
        var out: [TimelineEvent] = []
        switch (dir, kind) {
        case (.toServer, .status), (.toServer, .statusTypo):
            let env = envelope ?? DJIEnvelope(payload: p.payload.stored)
            let topo = UpdateTopo(env)
            c.pendingStatus.append((env.tid, env.bid, ts))
            let subs = topo?.subDevices ?? []
            let aircraft = subs.compactMap(\.sn)
            out.append(TimelineEvent(time: ts, step: .updateTopo, ok: env.isValid && topo != nil && topo!.missing.isEmpty,
                                     connection: c.info.id, message: ref, detail: .members([
                                        ("gateway_sn", .text(sn)), ("topic", .text(p.topic)), ("method", .text(env.method)),
                                        ("gateway_model", .text(topo?.gateway?.key)), ("gateway_model_name", .text(topo?.gateway?.name)),
                                        ("sub_devices", .array(subs.map { .members([("sn", .text($0.sn)), ("model", .text($0.model?.key)),
                                                                                    ("model_name", .text($0.model?.name)), ("index", .text($0.index))]) })),
                                        ("thing_version", .text(topo?.thingVersion)), ("version_field", .text(topo?.versionField)),
                                        ("missing", topo.map { .strings($0.missing) }), ("problem", .text(env.problem)),
                                        ("tid", .text(env.tid)), ("bid", .text(env.bid)),
                                        ("timestamp", env.timestamp.map { .number(JSONNumber(Double($0))) }),
                                     ])))
            if let topo { noteTopology(c, topo, aircraft: aircraft, ts: ts, ref: ref, into: &out) }
        case (.toClient, .statusReply):
            let env = envelope ?? DJIEnvelope(payload: p.payload.stored)
            let i = c.pendingStatus.firstIndex { $0.tid == env.tid && $0.bid == env.bid }
            let result = env.data?["result"]?.int64Value
            let matched = i.map { c.pendingStatus.remove(at: $0) }
            out.append(TimelineEvent(time: ts, step: .statusReply, ok: matched != nil && result == 0,
                                     latency: matched.map { ts.seconds(since: $0.time) }, connection: c.info.id, message: ref,
                                     detail: .members([("gateway_sn", .text(sn)), ("result", .int(result.map(Int.init))),
                                                       ("matched", .bool(matched != nil)), ("method", .text(env.method)),
                                                       ("tid", .text(env.tid)), ("bid", .text(env.bid)), ("problem", .text(env.problem))])))
        default:
            break
        }
        return out
    }

    /// Aircraft listed and removed: the session's aircraft, and `device-offline` when the list empties.
    func noteTopology(_ c: Connection, _ topo: UpdateTopo, aircraft: [String], ts: Timestamp, ref: MessageRef?, into out: inout [TimelineEvent]) {
        guard let s = c.session ?? c.sn.flatMap({ sessionBySN[$0] }) else { return }
        let before = sessions[s]!.lastAircraft
        let removed = before.filter { !aircraft.contains($0) }
        if !removed.isEmpty {
            out.append(TimelineEvent(time: ts, step: .deviceOffline, ok: true, connection: c.info.id, message: ref,
                                     detail: .members([("removed", .strings(removed)), ("sub_devices", .int(aircraft.count))])))
        }
    }

    /// Sends a connection's events to its session, holding them until its role is known.
    mutating func route(_ c: Connection, _ events: [TimelineEvent]) {
        let id = c.info.id
        switch c.role {
        case .device?:
            c.pending += events
            if c.session == nil { c.session = attach(c) }
            if let s = c.session {
                for e in c.pending { add(s, e) }
                c.pending.removeAll()
                updateAircraft(s, events)
            }
        case .cloud?, .other?:
            c.pending.removeAll()
        case nil:
            c.pending += events
            // A refused CONNECT will not say more: a device's failed attempt when something says Pilot 2 (the
            // credentials an H5 login handed out, or a client id shaped like an RC serial number).
            if c.refused {
                c.role = looksLikePilot(c) ? .device : .other
                route(c, [])
                return
            }
        }
        roles[id] = c.role
        c.recordedRole = c.role
    }

    mutating func updateAircraft(_ s: Int, _ events: [TimelineEvent]) {
        for e in events where e.step == .updateTopo {
            guard case .array(let subs)? = e.detail["sub_devices"] else { continue }
            let sns = subs.compactMap { $0["sn"]?.stringValue }
            for sn in sns where !sessions[s]!.session.aircraft.contains(sn) { sessions[s]!.session.aircraft.append(sn) }
            sessions[s]!.lastAircraft = sns
            sessions[s]!.lastTopoTime = e.time
            if sessions[s]!.firstTopoTime == nil { sessions[s]!.firstTopoTime = e.time }
            if sessions[s]!.session.gatewayModel == nil, let key = e.detail["gateway_model"]?.stringValue {
                let parts = key.split(separator: "-").map { Int($0) }
                if parts.count == 3, let t = parts[1], let st = parts[2] { sessions[s]!.session.gatewayModel = DeviceModel(domain: parts[0], type: t, subType: st) }
            }
        }
        for e in events where e.step == .statusReply && e.ok {
            sessions[s]!.online = true
            sessions[s]!.lastReplyTime = e.time
        }
    }

    /// The session a device connection belongs to: the one of its SN (a reconnect within the grace) or a new
    /// one, joined by the H5 context whose credentials it used.
    mutating func attach(_ c: Connection) -> Int? {
        let start = c.connectTime ?? c.pending.first?.time ?? c.info.firstSeen
        if let sn = c.sn, let s = sessionBySN[sn], !sessions[s]!.confirmedOffline {
            // The same gateway connects again while its old connection still looks open (its RST or FIN not yet
            // released, or never captured): the old link is lost, as a broker's session takeover would have it.
            for old in sessions[s]!.openConnections where old != c.info.id {
                guard let o = connections[old], !o.linkLostReported else { continue }
                o.linkLostReported = true
                linkLost(o, at: min(o.lastClientPacket, start), detail: .members([("reason", .text("superseded by a new connection"))]))
            }
            if let lost = sessions[s]!.linkLostAt {
                add(s, TimelineEvent(time: start, step: .reconnect, ok: true, connection: c.info.id,
                                     detail: .members([("after_seconds", .number(JSONNumber((start.seconds(since: lost) * 1000).rounded() / 1000)))])))
                sessions[s]!.linkLostAt = nil
            }
            join(c, s)
            return s
        }
        let s = newSession(start: start, client: address(c.info.client))
        join(c, s)
        if let ctx = context(for: c, before: start) {
            contexts[ctx].session = s
            for e in contexts[ctx].events { add(s, e) }
            contexts[ctx].events.removeAll()
        }
        return s
    }

    mutating func join(_ c: Connection, _ s: Int) {
        sessions[s]!.openConnections.insert(c.info.id)
        sessions[s]!.session.connections.append(c.info.id)
        if let sn = c.sn {
            sessionBySN[sn] = s
            if sessions[s]!.session.gatewaySN == nil { sessions[s]!.session.gatewaySN = sn }
        }
        if sessions[s]!.session.mqttClientID == nil { sessions[s]!.session.mqttClientID = c.clientID }
        if sessions[s]!.session.mqttUsername == nil { sessions[s]!.session.mqttUsername = c.username }
        if sessions[s]!.session.client == nil { sessions[s]!.session.client = address(c.info.client) }
    }

    /// The H5 context that handed out this connection's credentials, else the latest one from the same address.
    func context(for c: Connection, before t: Timestamp) -> Int? {
        let addr = address(c.info.client)
        let candidates = contexts.indices.filter { contexts[$0].session == nil && contexts[$0].hasFlowStep && contexts[$0].last <= t.adding(seconds: 1) }
        let password = c.password.map { String(decoding: $0, as: UTF8.self) }
        let byCredentials = candidates.filter {
            contexts[$0].mqttUsername != nil && contexts[$0].mqttUsername == c.username
                && (contexts[$0].mqttPassword == nil || password == nil || contexts[$0].mqttPassword == password)
        }
        let pool = byCredentials.isEmpty ? candidates.filter { contexts[$0].client == addr } : byCredentials
        return pool.max { (contexts[$0].client == addr ? 1 : 0, contexts[$0].last) < (contexts[$1].client == addr ? 1 : 0, contexts[$1].last) }
    }

    /// Evidence that a connection with no DJI topics is Pilot 2's.
    func looksLikePilot(_ c: Connection) -> Bool {
        if let u = c.username, contexts.contains(where: { $0.mqttUsername == u }) { return true }
        // RC serial numbers are 14 upper-case letters and digits (5YSZL260021E9A).
        guard let id = c.clientID, id.count == 14 else { return false }
        return id.allSatisfy { ($0 >= "0" && $0 <= "9") || ($0 >= "A" && $0 <= "Z") }
    }

    mutating func closed(_ summary: ConnectionSummary) {
        let id = summary.info.id
        requests[id] = nil
        guard let c = connections.removeValue(forKey: id) else { return }
        c.closed = true
        if c.role == nil, !c.pending.isEmpty, c.connectTime != nil {
            // Nothing revealed the role: a refused or silent CONNECT that looks like Pilot 2's is a device's.
            c.role = looksLikePilot(c) ? .device : .other
            if c.role == .device { route(c, []) }
        }
        roles[id] = c.role ?? .other
        guard c.role == .device, let s = c.session, sessions[s] != nil else { return }
        sessions[s]!.releasedAt = now
        released.insert(s)
        sessions[s]!.openConnections.remove(id)
        if !c.disconnected && !c.linkLostReported {
            c.linkLostReported = true
            linkLost(c, at: summary.lastSeen, detail: .members([("reason", .text(summary.closeReason.rawValue))]))
        } else if c.disconnected {
            sessions[s]!.linkLostAt = nil
        }
    }

    mutating func linkLost(_ c: Connection, at t: Timestamp, detail: JSONValue) {
        guard let s = c.session else { return }
        add(s, TimelineEvent(time: t, step: .linkLost, ok: false, connection: c.info.id, detail: detail))
        sessions[s]!.linkLostAt = t
        lostLinks.insert(s)
        sessions[s]!.openConnections.remove(c.info.id)
    }

    // MARK: - HTTP

    mutating func http(_ id: ConnectionID, _ e: HTTPConnectionEvent, _ ref: MessageRef?) {
        switch e {
        case .request(let r):
            requests[id, default: [:]][r.index] = (r, ref)
        case .response(let r):
            guard !r.head.isInformational else { return }
            let pending = r.requestIndex.flatMap { requests[id]?.removeValue(forKey: $0) }
            advance(to: r.span.lastByteAt)
            exchange(id, pending?.0, r, ref ?? pending?.1)
        default:
            break
        }
    }

    mutating func exchange(_ id: ConnectionID, _ request: HTTPRequest?, _ response: HTTPResponse, _ ref: MessageRef?) {
        if let request, BridgeReport.isReport(method: request.method, path: request.head.path) {
            bridge(id, request, ref)
            return
        }
        let m = HTTPStepRecognizer.recognize(request, response, profile: configuration.profile)
        guard !m.steps.isEmpty, let info = infos[id] else { return }
        let addr = address(info.client)
        let time = request?.span.firstByteAt ?? response.span.firstByteAt
        let latency = request.map { response.span.lastByteAt.seconds(since: $0.span.lastByteAt) }
        let events = m.steps.map { TimelineEvent(time: time, step: $0.step, ok: $0.ok, latency: latency, connection: id, message: ref, detail: $0.detail) }
        if m.isHTMLPage, m.steps.count == 1 {
            lastPage[addr] = events[0]  // claimed by the login that follows, if any
            return
        }
        // The context: by the token presented (from this address first: the demo's tokens carry no unique id, so
        // two remote controllers logging in to one account within a second get the same token), else a fresh one
        // for a login from this address.
        var ctx = m.presentedToken.flatMap { t in
            contexts.lastIndex { $0.tokens.contains(t) && $0.client == addr } ?? contexts.lastIndex { $0.tokens.contains(t) }
        }
        if ctx == nil, m.presentedToken == nil || m.issuedToken != nil {
            ctx = contexts.lastIndex { $0.client == addr && $0.session == nil && $0.tokens.isEmpty }
        }
        // A request that should have carried a token but did not belongs to the latest context of its address.
        if ctx == nil, m.presentedToken == nil, m.issuedToken == nil, !m.steps.contains(where: { [.login, .loginFailed].contains($0.step) }) {
            ctx = contexts.lastIndex { $0.client == addr }
        }
        if ctx == nil {
            contexts.append(H5Context(client: addr, last: time))
            ctx = contexts.count - 1
            if let page = lastPage.removeValue(forKey: addr) { contexts[ctx!].events.append(page) }
            // A stored token whose issue the capture never saw (§1.2): later requests with it join this context
            // (unless the cloud rejected it: the login that follows starts the context afresh).
            if let t = m.presentedToken, !m.steps.contains(where: { $0.step == .tokenRejected }) { contexts[ctx!].tokens.insert(t) }
        }
        let i = ctx!
        if let t = m.issuedToken { contexts[i].tokens.insert(t) }
        if let u = m.mqttUsername { contexts[i].mqttUsername = u }
        if let p = m.mqttPassword { contexts[i].mqttPassword = p }
        contexts[i].last = max(contexts[i].last, time)
        contexts[i].hasFlowStep = true
        if let s = contexts[i].session {
            for e in events { add(s, e) }
        } else {
            contexts[i].events += events
        }
    }

    /// A JSBridge report from the proxy's injected script: one event per call the timeline shows, each at the
    /// report's capture time less the delay the page measured, in the H5 context of the same client address
    /// (the page's own context: the bridge presents no token).
    mutating func bridge(_ id: ConnectionID, _ request: HTTPRequest, _ ref: MessageRef?) {
        guard let report = BridgeReport(request.body.json), let info = infos[id] else { return }
        let sent = request.span.firstByteAt
        let events = report.calls.compactMap { call -> TimelineEvent? in
            guard let (step, ok, detail) = BridgeReport.step(call) else { return nil }
            return TimelineEvent(time: sent.adding(seconds: -call.secondsBeforeSending), step: step, ok: ok, connection: id, message: ref,
                                 detail: detail)
        }
        guard !events.isEmpty else { return }
        let addr = address(info.client)
        var ctx = contexts.lastIndex { $0.client == addr }
        if ctx == nil {
            contexts.append(H5Context(client: addr, last: events[0].time))
            ctx = contexts.count - 1
            if let page = lastPage.removeValue(forKey: addr) { contexts[ctx!].events.append(page) }
        }
        let i = ctx!
        // `last` is left alone: it places the context before the device's CONNECT, which bridge reports may follow.
        contexts[i].hasFlowStep = true
        if let s = contexts[i].session {
            for e in events { add(s, e) }
        } else {
            contexts[i].events += events
        }
    }

    // MARK: - Sessions

    mutating func newSession(start: Timestamp, client: String?) -> Int {
        let serial = nextSerial
        nextSerial += 1
        retainedCount += 1
        sessions.append(Working(session: Session(number: serial + 1, gatewaySN: nil, gatewayModel: nil, state: .incomplete,
                                                    start: start, end: start, client: client, mqttClientID: nil, mqttUsername: nil,
                                                    aircraft: [], events: [], connections: [], serial: serial)))
        return serial
    }

    mutating func add(_ s: Int, _ e: TimelineEvent) {
        sessions[s]!.lastEventTime = max(sessions[s]!.lastEventTime ?? e.time, e.time)
        sessions[s]!.session.events.append(e)
        if !e.ok, [.loginFailed, .mqttConnack, .statusReply, .tokenRejected].contains(e.step) { sessions[s]!.failedStep = true }
        if e.ok, [.statusReply].contains(e.step) { sessions[s]!.failedStep = false }
    }

    func address(_ e: Endpoint) -> String { e.address.description }
}

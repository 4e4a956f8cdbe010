import PilotTraceProtocols
import PilotTraceWire

/// MQTT connections: their roles on the broker, the timeline steps their packets make, and the session each device
/// connection belongs to.
extension SessionTracker {
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
        /// Another client connected with this connection's client id from elsewhere: the broker closes this one.
        var takenOverBy: (address: String, at: Timestamp)?
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
            (c.linkLostReported, c.disconnected, c.takenOverBy, c.pendingSubscribe, c.pendingStatus, c.closed) =
                (linkLostReported, disconnected, takenOverBy, pendingSubscribe, pendingStatus, closed)
            (c.lastTopic, c.recordedRole) = (lastTopic, recordedRole)
            return c
        }
    }

    func mqtt(
        _ c: Connection, _ dir: Direction, _ record: MQTTPacketRecord, _ ts: Timestamp, _ ref: MessageRef?,
        topic parsed: DJITopic? = nil, envelope: DJIEnvelope? = nil
    ) {
        let id = c.info.id
        if dir == .toServer {
            c.lastClientPacket = ts
            if c.linkLostReported, !c.closed, c.takenOverBy == nil {
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
            noteClientID(c, at: ts)
            events.append(
                TimelineEvent(
                    time: ts, step: .mqttConnect, ok: true, connection: id, message: ref,
                    detail: .members([
                        ("client_id", .text(connect.clientIdentifier)), ("username", .text(connect.username)),
                        ("password_present", .bool(connect.password != nil)), ("anonymous", .bool(connect.username == nil)),
                        ("keep_alive", .int(Int(connect.keepAlive))), ("version", .text(connect.version.description)),
                        ("clean_session", .bool(connect.cleanSession)),
                    ]), credential: connect.password.map { Self.digest($0.stored) }))
        case .connAck(let ack) where dir == .toClient:
            let ok = ack.returnCode.isSuccess
            c.refused = !ok
            events.append(
                TimelineEvent(
                    time: ts, step: .mqttConnack, ok: ok, latency: c.connectTime.map { ts.seconds(since: $0) },
                    connection: id, message: ref,
                    detail: .members([
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
                events.append(
                    TimelineEvent(
                        time: t, step: .mqttSubscribe, ok: ok, latency: ts.seconds(since: t), connection: id,
                        message: subRef, detail: .members([("topics", .strings(filters))])))
            }
        case .publish(let p):
            let topic = parsed ?? DJITopic(p.topic)
            if c.role == nil { c.role = Self.role(publishing: topic, dir, &c.sn) }
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

    /// The role a PUBLISH reveals (docs/flows.md, "Roles on the broker"): a client publishing a gateway's uplink
    /// topics is that device; one publishing downlink topics (replies, services) is the cloud, and so is one that
    /// receives uplink topics (the broker delivers the devices' status and osd only to their subscriber, the cloud
    /// backend, even when it never answers).
    static func role(publishing topic: DJITopic, _ dir: Direction, _ sn: inout String?) -> MQTTRole? {
        switch dir {
        case .toServer where topic.isUplink:
            sn = topic.sn
            return .device
        case .toServer where topic.isDownlink, .toClient where topic.isUplink:
            return .cloud
        default:
            return nil
        }
    }

    /// A CONNECT with a client id that another open connection from elsewhere uses: the broker closes the older one
    /// (MQTT 3.1.1 §3.1.4 step 2, 5.0 §3.1.4). Remembered on the older connection for its link-lost step.
    func noteClientID(_ c: Connection, at ts: Timestamp) {
        guard let id = c.clientID, !id.isEmpty else { return }
        if let previous = connectionByClientID[id], previous != c.info.id, let old = connections[previous], !old.closed, !old.disconnected,
            old.role != .cloud, old.info.client.address != c.info.client.address || old.username != c.username
        {
            old.takenOverBy = (address(c.info.client), ts)
        }
        connectionByClientID[id] = c.info.id
    }

    func publishEvents(
        _ c: Connection, _ dir: Direction, _ p: MQTTPublish, _ topic: DJITopic, _ ts: Timestamp,
        _ ref: MessageRef?, envelope: DJIEnvelope? = nil
    ) -> [TimelineEvent] {
        guard let kind = topic.kind, let sn = topic.sn else { return [] }
        var out: [TimelineEvent] = []
        switch (dir, kind) {
        case (.toServer, .status), (.toServer, .statusTypo):
            let env = envelope ?? DJIEnvelope(payload: p.payload.stored)
            let topo = UpdateTopo(env)
            c.pendingStatus.append((env.tid, env.bid, ts))
            let subs = topo?.subDevices ?? []
            let aircraft = subs.compactMap(\.sn)
            out.append(
                TimelineEvent(
                    time: ts, step: .updateTopo, ok: env.isValid && topo?.missing.isEmpty == true,
                    connection: c.info.id, message: ref,
                    detail: .members([
                        ("gateway_sn", .text(sn)), ("topic", .text(p.topic)), ("method", .text(env.method)),
                        ("gateway_model", .text(topo?.gateway?.key)), ("gateway_model_name", .text(topo?.gateway?.name)),
                        (
                            "sub_devices",
                            .array(
                                subs.map {
                                    .members([
                                        ("sn", .text($0.sn)), ("model", .text($0.model?.key)),
                                        ("model_name", .text($0.model?.name)), ("index", .text($0.index)),
                                    ])
                                })
                        ),
                        ("thing_version", .text(topo?.thingVersion)), ("version_field", .text(topo?.versionField)),
                        ("missing", topo.map { .strings($0.missing) }), ("problem", .text(env.problem)),
                        ("tid", .text(env.tid)), ("bid", .text(env.bid)),
                        ("timestamp", env.timestamp.map { .number(JSONNumber(Double($0))) }),
                    ])))
            if topo != nil { noteTopology(c, aircraft: aircraft, ts: ts, ref: ref, into: &out) }
        case (.toClient, .statusReply):
            let env = envelope ?? DJIEnvelope(payload: p.payload.stored)
            let i = c.pendingStatus.firstIndex { $0.tid == env.tid && $0.bid == env.bid }
            let result = env.data?["result"]?.int64Value
            let matched = i.map { c.pendingStatus.remove(at: $0) }
            out.append(
                TimelineEvent(
                    time: ts, step: .statusReply, ok: matched != nil && result == 0,
                    latency: matched.map { ts.seconds(since: $0.time) }, connection: c.info.id, message: ref,
                    detail: .members([
                        ("gateway_sn", .text(sn)), ("result", .int(result.map(Int.init))),
                        ("matched", .bool(matched != nil)), ("method", .text(env.method)),
                        ("tid", .text(env.tid)), ("bid", .text(env.bid)), ("problem", .text(env.problem)),
                    ])))
        default:
            break
        }
        return out
    }

    /// Aircraft listed and removed: the session's aircraft, and `device-offline` when the list empties.
    func noteTopology(_ c: Connection, aircraft: [String], ts: Timestamp, ref: MessageRef?, into out: inout [TimelineEvent]) {
        guard let s = c.session ?? c.sn.flatMap({ sessionBySN[$0] }), let w = sessions[s] else { return }
        let removed = w.lastAircraft.filter { !aircraft.contains($0) }
        if !removed.isEmpty {
            out.append(
                TimelineEvent(
                    time: ts, step: .deviceOffline, ok: true, connection: c.info.id, message: ref,
                    detail: .members([("removed", .strings(removed)), ("sub_devices", .int(aircraft.count))])))
        }
    }

    /// Sends a connection's events to its session, holding them until its role is known.
    func route(_ c: Connection, _ events: [TimelineEvent]) {
        let id = c.info.id
        switch c.role {
        case .device?:
            c.pending += events
            if c.session == nil { c.session = attach(c) }
            if let s = c.session, let w = sessions[s] {
                for e in c.pending { add(w, e) }
                c.pending.removeAll()
                updateAircraft(w, events)
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

    func updateAircraft(_ w: Working, _ events: [TimelineEvent]) {
        for e in events where e.step == .updateTopo {
            guard case .array(let subs)? = e.detail["sub_devices"] else { continue }
            let sns = subs.compactMap { $0["sn"]?.stringValue }
            for sn in sns where !w.session.aircraft.contains(sn) { w.session.aircraft.append(sn) }
            w.lastAircraft = sns
            w.lastTopoTime = e.time
            if w.firstTopoTime == nil { w.firstTopoTime = e.time }
            if w.session.gatewayModel == nil, let key = e.detail["gateway_model"]?.stringValue {
                let parts = key.split(separator: "-").map { Int($0) }
                if parts.count == 3, let d = parts[0], let t = parts[1], let st = parts[2] {
                    w.session.gatewayModel = DeviceModel(domain: d, type: t, subType: st)
                }
            }
        }
        for e in events where e.step == .statusReply && e.ok {
            w.online = true
            w.lastReplyTime = e.time
        }
    }

    /// The session a device connection belongs to: its device's session (by gateway serial, else by client id) when
    /// the lifecycle admits it (a reconnect within the grace, a retried CONNECT), or a new one, joined by the H5
    /// context whose credentials it used. Returns nil when the connection was folded into a retry count.
    func attach(_ c: Connection) -> Int? {
        let start = c.connectTime ?? c.pending.first?.time ?? c.info.firstSeen
        let candidate =
            c.sn.flatMap { sessionBySN[$0] }
            ?? c.clientID.flatMap { sessionByClientID[$0] }.flatMap { s in
                // The same client id names another device's session only when nothing says otherwise.
                sessions[s].flatMap { w in c.sn == nil || w.session.gatewaySN == nil || w.session.gatewaySN == c.sn ? s : nil }
            }
        if let s = candidate, let w = sessions[s] {
            // The same gateway connects again while its old connection still looks open (its RST or FIN not yet
            // released, or never captured): the old link is lost, as a broker's session takeover would have it.
            for old in w.openConnections where old != c.info.id {
                guard let o = connections[old], !o.linkLostReported, !o.disconnected, !o.refused else { continue }
                o.linkLostReported = true
                linkLost(o, at: min(o.lastClientPacket, start), detail: lossDetail(o, reason: "superseded by a new connection"))
            }
            switch w.lifecycle.admission(at: start) {
            case .join:
                join(c, w)
                return s
            case .reconnect(let after):
                add(
                    w,
                    TimelineEvent(
                        time: start, step: .reconnect, ok: true, connection: c.info.id,
                        detail: .members([("after_seconds", .number(JSONNumber((after * 1000).rounded() / 1000)))])))
                join(c, w)
                return s
            case .retry where c.refused:
                retried(c, w)
                return s
            case .retry:
                join(c, w)  // accepted at last: the attempt goes on in the same session
                return s
            case .startNew:
                break
            }
        }
        let w = newSession(start: start, client: address(c.info.client))
        join(c, w)
        if let ctx = context(for: c, before: start) {
            contexts[ctx].session = w.session.serial
            checkCredentials(c, against: contexts[ctx])
            for e in contexts[ctx].events { add(w, e) }
            contexts[ctx].events.removeAll()
        }
        if c.connectTime == nil, c.info.midstream {
            // Picked up mid-stream: the device was connected before the capture started.
            c.pending.insert(
                TimelineEvent(
                    time: c.info.firstSeen, step: .alreadyConnected, ok: true, connection: c.info.id,
                    detail: .members([("client", .text(c.info.client.description)), ("server", .text(c.info.server.description))])),
                at: 0)
            w.assumedOnline = true
        }
        return w.session.serial
    }

    /// A refused CONNECT again within the grace: counted on the first refusal's CONNACK (its `attempts`, `last_attempt`
    /// and `over_seconds`), not added as steps of their own.
    func retried(_ c: Connection, _ w: Working) {
        w.openConnections.insert(c.info.id)
        w.session.connections.append(c.info.id)
        let last = c.pending.last { $0.step == .mqttConnack }?.time ?? c.connectTime ?? c.info.firstSeen
        c.pending.removeAll()
        w.lifecycle.refusedAgain(at: last)
        w.lastEventTime = max(w.lastEventTime ?? last, last)
        guard let i = w.refusalEvent, i < w.session.events.count else { return }
        let first = w.session.events[i]
        let attempts = (first.detail["attempts"]?.int64Value).map(Int.init) ?? 1
        w.session.events[i].detail = first.detail.setting([
            ("attempts", .int(attempts + 1)), ("last_attempt_connection", .int(Int(c.info.id.rawValue))),
            ("over_seconds", .number(JSONNumber((last.seconds(since: first.time) * 1000).rounded() / 1000))),
        ])
    }

    func join(_ c: Connection, _ w: Working) {
        w.openConnections.insert(c.info.id)
        w.session.connections.append(c.info.id)
        if let sn = c.sn {
            sessionBySN[sn] = w.session.serial
            if w.session.gatewaySN == nil { w.session.gatewaySN = sn }
        }
        if let id = c.clientID { sessionByClientID[id] = w.session.serial }
        if w.session.mqttClientID == nil { w.session.mqttClientID = c.clientID }
        if w.session.mqttUsername == nil { w.session.mqttUsername = c.username }
        if w.session.client == nil { w.session.client = address(c.info.client) }
    }

    /// Evidence that a connection with no DJI topics is Pilot 2's.
    func looksLikePilot(_ c: Connection) -> Bool {
        if let u = c.username, !contexts.ids(username: u).isEmpty { return true }
        // RC serial numbers are 14 upper-case letters and digits (5YSZL260021E9A).
        guard let id = c.clientID, id.count == 14 else { return false }
        return id.allSatisfy { ($0 >= "0" && $0 <= "9") || ($0 >= "A" && $0 <= "Z") }
    }

    func closed(_ summary: ConnectionSummary) {
        let id = summary.info.id
        requests.close(id)
        guard let c = connections.removeValue(forKey: id) else { return }
        c.closed = true
        if let cid = c.clientID, connectionByClientID[cid] == id { connectionByClientID[cid] = nil }
        if c.role == nil, !c.pending.isEmpty, c.connectTime != nil {
            // Nothing revealed the role: a refused or silent CONNECT that looks like Pilot 2's is a device's.
            c.role = looksLikePilot(c) ? .device : .other
            if c.role == .device { route(c, []) }
        }
        roles[id] = c.role ?? .other
        guard c.role == .device, let s = c.session, let w = sessions[s] else { return }
        w.releasedAt = now
        released.insert(s)
        w.openConnections.remove(id)
        // A refused CONNECT's connection was never up: its close loses no link.
        if !c.disconnected && !c.linkLostReported && !c.refused {
            c.linkLostReported = true
            linkLost(c, at: summary.lastSeen, detail: lossDetail(c, reason: summary.closeReason.rawValue))
        }
    }

    /// Why a device connection's link was lost: the broker's takeover by another client with its client id, or `reason`.
    func lossDetail(_ c: Connection, reason: String) -> JSONValue {
        guard let by = c.takenOverBy else { return .members([("reason", .text(reason))]) }
        return .members([
            ("reason", .text("client-id-takeover")), ("client_id", .text(c.clientID)), ("by_client", .text(by.address)),
            ("close", .text(reason)),
        ])
    }

    func linkLost(_ c: Connection, at t: Timestamp, detail: JSONValue) {
        guard let s = c.session, let w = sessions[s] else { return }
        w.openConnections.remove(c.info.id)
        add(w, TimelineEvent(time: t, step: .linkLost, ok: false, connection: c.info.id, detail: detail))
    }
}

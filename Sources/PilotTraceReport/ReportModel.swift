import Foundation
import PilotTraceFlow
import PilotTraceProtocols
import PilotTraceStore

/// The three lanes of the sequence diagram.
public enum Lane: Int, Sendable, CaseIterable {
    case pilot = 0, broker = 1, cloud = 2

    public var title: String {
        switch self {
        case .pilot: "Pilot 2 / H5"
        case .broker: "MQTT broker"
        case .cloud: "Cloud"
        }
    }
}

/// One arrow of the sequence diagram: a message, or a run of repeated telemetry collapsed into one.
public struct Arrow: Sendable {
    public var time: Double
    public var lastTime: Double
    public var from: Lane
    public var to: Lane
    public var label: String
    /// How many messages it stands for (repeated osd/state are collapsed).
    public var count: Int
    public var kind: String  // "http" or "mqtt"
    public var messageID: Int64
    public var phase: String?
    public var ok: Bool
    public var findings: [DeviationRow]
    /// Periodic telemetry (osd, state): runs of it are collapsed.
    public var telemetry = false
    /// Where the message (or the run of collapsed telemetry) is in the captures.
    public var frames = FramePlace(ordinal: nil, first: nil, last: nil)
    /// The detail block id this arrow links to.
    public var anchor: String { "\(kind)-\(messageID)" }
}

/// One message shown in the details, with secrets masked.
public struct MessageDetail: Sendable {
    public var anchor: String
    public var time: Double
    public var title: String
    public var text: String
    /// Where the message is in the captures (an HTTP exchange: from the request's first frame to the response's last).
    public var frames = FramePlace(ordinal: nil, first: nil, last: nil)
}

/// Everything a report shows about one session.
public struct ReportSession: Sendable {
    public var row: SessionRow
    public var events: [TimelineEventRow]
    public var deviations: [DeviationRow]
    public var arrows: [Arrow]
    public var details: [MessageDetail]
    public var captures: [CaptureRow]
    /// For a replayed session (`replay_of` set): its step-by-step comparison with the recording.
    public var replaySteps: [ReplayStepRow] = []
    /// The analysis that stored the session: how it ended and which capture point recorded it.
    public var analysis: AnalysisRow?
}

/// What a report covers.
public struct ReportDocument: Sendable {
    public var database: String
    public var sessions: [ReportSession]

    public init(database: String, sessions: [ReportSession]) {
        self.database = database
        self.sessions = sessions
    }
}

/// Reads sessions and their messages from the store, ready to render.
public enum ReportLoader {
    /// Loads `sessionIDs` (all sessions when empty).
    public static func load(_ db: PilotTraceDatabase, sessionIDs: [Int64] = [], showSecrets: Bool = false) throws -> ReportDocument {
        var rows = try db.sessions()
        if !sessionIDs.isEmpty { rows = rows.filter { sessionIDs.contains($0.id) } }
        let timelines = try db.timelines(sessionIDs: rows.map(\.id))
        var cache: [Int64: (flows: [FlowRow], http: [HTTPExchangeRow], mqtt: [MQTTPacketRow], captures: [CaptureRow])] = [:]
        var analyses: [Int64: AnalysisRow] = [:]
        var out: [ReportSession] = []
        let parts = try db.parts(of: rows.map(\.id))
        for r in rows {
            if analyses[r.analysisID] == nil, let a = try db.analysis(id: r.analysisID) { analyses[r.analysisID] = a }
            // A session recorded at several capture points: its parts' analyses hold some of its messages (ids are unique
            // across analyses, so the lists join; frames name their analysis's files).
            var involved = [r.analysisID]
            for p in parts[r.id] ?? [] where !involved.contains(p.analysisID) { involved.append(p.analysisID) }
            for a in involved where cache[a] == nil {
                cache[a] = (
                    try db.flows(analysisID: a), try db.httpExchanges(analysisID: a), try db.mqttPackets(analysisID: a),
                    try db.captures(analysisID: a)
                )
            }
            var data = cache[r.analysisID]!
            for a in involved.dropFirst() {
                let more = cache[a]!
                data = (data.flows + more.flows, data.http + more.http, data.mqtt + more.mqtt, data.captures + more.captures)
            }
            let events = timelines[r.id] ?? []
            let deviations = try db.deviations(sessionID: r.id)
            var session = build(r, events, deviations, data.flows, data.http, data.mqtt, data.captures, showSecrets: showSecrets)
            if r.replayOf != nil { session.replaySteps = try db.replaySteps(sessionID: r.id) }
            session.analysis = analyses[r.analysisID]
            out.append(session)
        }
        return ReportDocument(database: db.path, sessions: out)
    }

    /// One session (a part of another too), reading only its own connections' messages and the cloud backend's
    /// around its time: `pilottrace serve`'s session page, as fast on a large analysis as on a small one.
    ///
    /// - Returns: The session as ``load(_:sessionIDs:showSecrets:)`` builds it, or `nil` when there is no such session.
    public static func loadSession(_ db: PilotTraceDatabase, id: Int64, showSecrets: Bool = false) throws -> ReportSession? {
        guard let r = try db.session(id: id) else { return nil }
        var involved = [r.analysisID]
        for p in try db.parts(of: [r.id])[r.id] ?? [] where !involved.contains(p.analysisID) { involved.append(p.analysisID) }
        let events = try db.timeline(sessionID: r.id)
        let flows = try db.flows(ids: Array(Set(events.compactMap(\.flowID))).sorted(), cloudOf: involved)
        let sessionFlows = Set(events.compactMap(\.flowID))
        let device = flows.filter { sessionFlows.contains($0.id) && $0.protocol == "mqtt" }.map(\.id)
        let cloud = flows.filter { $0.mqttRole == "cloud" }.map(\.id)
        // The window the full loader's cloud filter keeps (a second either side of the session).
        let start = r.startTime, end = r.endTime ?? r.startTime
        let mqtt = try db.mqttPackets(flowIDs: device, andFlows: cloud, from: start - 1, to: end + 1)
        var captures: [CaptureRow] = []
        for a in involved { captures += try db.captures(analysisID: a) }
        var session = build(
            r, events, try db.deviations(sessionID: r.id), flows, try db.httpExchanges(flowIDs: sessionFlows.sorted()), mqtt, captures,
            showSecrets: showSecrets)
        if r.replayOf != nil { session.replaySteps = try db.replaySteps(sessionID: r.id) }
        session.analysis = try db.analysis(id: r.analysisID)
        return session
    }

    static func build(
        _ r: SessionRow, _ events: [TimelineEventRow], _ deviations: [DeviationRow], _ flows: [FlowRow],
        _ http: [HTTPExchangeRow], _ mqtt: [MQTTPacketRow], _ captures: [CaptureRow], showSecrets: Bool
    ) -> ReportSession {
        let sessionFlows = Set(events.compactMap(\.flowID))
        let flowByID = Dictionary(uniqueKeysWithValues: flows.map { ($0.id, $0) })
        let deviceFlows = sessionFlows.filter { flowByID[$0]?.protocol == "mqtt" }
        let cloudFlows = Set(flows.filter { $0.mqttRole == "cloud" }.map(\.id))
        let serials = (r.gatewaySN.map { [$0] } ?? []) + r.aircraftSNs
        let start = r.startTime, end = r.endTime ?? r.startTime
        var phaseOf: [String: String] = [:]
        for e in events { if let k = e.messageKind, let id = e.messageID, phaseOf["\(k)-\(id)"] == nil { phaseOf["\(k)-\(id)"] = e.phase } }
        var findingsOf: [String: [DeviationRow]] = [:]
        for d in deviations { if let k = d.messageKind, let id = d.messageID { findingsOf["\(k)-\(id)", default: []].append(d) } }
        var arrows: [Arrow] = []
        var details: [MessageDetail] = []

        for x in http where sessionFlows.contains(x.flowID) {
            let anchor = "http-\(x.id)"
            let target = (showSecrets ? x.target : x.target.map(HTTPSecrets.maskedTarget)) ?? x.path ?? "?"
            let requestFrames = FramePlace(ordinal: x.captureOrdinal, first: x.requestFirstFrame, last: x.requestLastFrame, analysisID: x.analysisID)
            let responseFrames = FramePlace(ordinal: x.captureOrdinal, first: x.responseFirstFrame, last: x.responseLastFrame, analysisID: x.analysisID)
            if let t = x.requestTime {
                var a = Arrow(
                    time: t, lastTime: t, from: .pilot, to: .cloud, label: "\(x.method ?? "?") \(target)", count: 1, kind: "http",
                    messageID: x.id, phase: phaseOf[anchor], ok: true, findings: findingsOf[anchor] ?? [])
                a.frames = requestFrames
                arrows.append(a)
            }
            if let t = x.responseTime, let status = x.status {
                let code = x.responseJSON.flatMap { try? JSONValue.parse($0) }?["code"]?.int64Value
                let ok = (200..<400).contains(status) && (code ?? 0) == 0
                var a = Arrow(
                    time: t, lastTime: t, from: .cloud, to: .pilot, label: "\(status)\(code.map { " code \($0)" } ?? "")",
                    count: 1, kind: "http", messageID: x.id, phase: phaseOf[anchor], ok: ok,
                    findings: x.requestTime == nil ? findingsOf[anchor] ?? [] : [])
                a.frames = responseFrames
                arrows.append(a)
            }
            details.append(
                MessageDetail(
                    anchor: anchor, time: x.requestTime ?? x.responseTime ?? start,
                    title: "HTTP \(x.method ?? "") \(target) → \(x.status.map(String.init) ?? "no response")",
                    text: httpText(x, showSecrets: showSecrets),
                    frames: FramePlace(
                        ordinal: x.captureOrdinal, first: requestFrames.first ?? responseFrames.first,
                        last: responseFrames.last ?? requestFrames.last, analysisID: x.analysisID)))
        }
        for p in mqtt {
            let device = deviceFlows.contains(p.flowID)
            let cloud =
                cloudFlows.contains(p.flowID) && p.time >= start - 1 && p.time <= end + 1
                && (p.topic.map { t in serials.contains { t.contains("/\($0)/") } } ?? false)
            guard device || cloud else { continue }
            let anchor = "mqtt-\(p.id)"
            let up = p.direction == "to-server"
            let (from, to): (Lane, Lane) = device ? (up ? (.pilot, .broker) : (.broker, .pilot)) : (up ? (.cloud, .broker) : (.broker, .cloud))
            var label = p.type
            if let topic = p.topic { label += " " + shortTopic(topic) }
            if p.type == "CONNACK", let rc = p.returnCode { label += " rc \(rc)" }
            let ok = !(p.type == "CONNACK" && (p.returnCode ?? 0) != 0)
            let telemetry = p.type == "PUBLISH" && (p.topic?.hasSuffix("/osd") == true || p.topic?.hasSuffix("/state") == true)
            // Repeated telemetry joins the latest arrow like it, as long as only telemetry came in between.
            var merged = false
            if telemetry, findingsOf[anchor] == nil {
                var i = arrows.count - 1
                while i >= 0, arrows[i].telemetry {
                    if arrows[i].from == from, arrows[i].to == to, arrows[i].label == label {
                        arrows[i].count += p.packetCount
                        arrows[i].lastTime = max(arrows[i].lastTime, p.endTime)
                        if p.captureOrdinal == arrows[i].frames.ordinal, let last = p.lastFrame { arrows[i].frames.last = last }
                        merged = true
                        break
                    }
                    i -= 1
                }
            }
            if !merged {
                var a = Arrow(
                    time: p.time, lastTime: p.endTime, from: from, to: to, label: label, count: p.packetCount, kind: "mqtt", messageID: p.id,
                    phase: phaseOf[anchor], ok: ok, findings: findingsOf[anchor] ?? [])
                a.telemetry = telemetry
                a.frames = FramePlace(ordinal: p.captureOrdinal, first: p.firstFrame, last: p.lastFrame, analysisID: p.analysisID)
                arrows.append(a)
            }
            if !merged {
                details.append(
                    MessageDetail(
                        anchor: anchor, time: p.time, title: "MQTT \(p.direction == "to-server" ? "→" : "←") \(p.summary)",
                        text: mqttText(p, showSecrets: showSecrets),
                        frames: FramePlace(ordinal: p.captureOrdinal, first: p.firstFrame, last: p.lastFrame, analysisID: p.analysisID)))
            }
        }
        arrows.sort { ($0.time, $0.kind == "http" && $0.from == .cloud ? 1 : 0) < ($1.time, $1.kind == "http" && $1.from == .cloud ? 1 : 0) }
        // Arrows without a timeline step take the phase of the step before them.
        var phase: String?
        for i in arrows.indices {
            if let p = arrows[i].phase { phase = p } else { arrows[i].phase = phase }
        }
        details.sort { $0.time < $1.time }
        let usedCaptures = captures
        return ReportSession(row: r, events: events, deviations: deviations, arrows: arrows, details: details, captures: usedCaptures)
    }

    /// `sys/product/5YSZL260021E9A/status` → `…/status` when the SN is long.
    static func shortTopic(_ t: String) -> String {
        let parts = t.split(separator: "/")
        guard parts.count >= 4 else { return t }
        return "\(parts[0])/…/\(parts[3...].joined(separator: "/"))"
    }

    static func pretty(_ json: String?, showSecrets: Bool) -> String? {
        guard let json, let v = try? JSONValue.parse(json) else { return nil }
        return (showSecrets ? v : HTTPSecrets.maskedJSON(v)).pretty(indent: 2)
    }

    static func httpText(_ x: HTTPExchangeRow, showSecrets: Bool) -> String {
        var out = ""
        if let m = x.method {
            out += "\(m) \((showSecrets ? x.target : x.target.map(HTTPSecrets.maskedTarget)) ?? "")\n"
            for h in x.requestHeaders ?? [] { out += "\(h.name): \(showSecrets ? h.value : HTTPSecrets.maskedValue(field: h.name, value: h.value))\n" }
            if let body = pretty(x.requestJSON, showSecrets: showSecrets) { out += "\n\(body)\n" }
        }
        if let status = x.status {
            out += "\n\(status) \(x.reason ?? "")\n"
            for h in x.responseHeaders ?? [] { out += "\(h.name): \(showSecrets ? h.value : HTTPSecrets.maskedValue(field: h.name, value: h.value))\n" }
            if let body = pretty(x.responseJSON, showSecrets: showSecrets) {
                out += "\n\(body)\n"
            } else if let b = x.responseBody, !b.isEmpty, let text = String(data: b.prefix(2048), encoding: .utf8) {
                out += "\n\(text)\n"
            }
        }
        if let i = x.incomplete { out += "\n[incomplete: \(i)]\n" }
        return out
    }

    static func mqttText(_ p: MQTTPacketRow, showSecrets: Bool) -> String {
        var out = p.summary + "\n"
        if let frames = p.frames, p.packetCount > 1 {
            // A telemetry window: the row is its first PUBLISH; the others are counted.
            out += "\n\(p.packetCount) PUBLISHes in this \(Int(MQTTPacketRow.telemetryWindow)) s window, \(p.totalPayloadLength ?? 0) payload bytes"
            if let acked = p.acknowledged { out += ", \(acked) acknowledged" }
            out += "; frames \(frames). The payload below is the first one's.\n"
        }
        // Telemetry rows keep only the payload (no payload_json): its text is the JSON.
        let json = p.payloadJSON ?? p.payload.flatMap { String(data: $0, encoding: .utf8) }
        if let json = pretty(json, showSecrets: showSecrets) { out += "\n\(json)\n" }
        return out
    }
}

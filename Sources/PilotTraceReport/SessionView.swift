import Foundation
import PilotTraceStore

/// What `sessions` and `timeline` print, built from the store's rows (or straight from an analysis).
public struct SessionView {
    public struct Event {
        public var time: Double
        public var phase: String
        public var step: String
        public var ok: Bool
        public var latency: Double?
        public var connection: Int?
        /// The detail object, as parsed JSON (`[String: Any]`).
        public var detail: [String: Any]
        /// Where the step's message is in the captures.
        public var frames = FramePlace(ordinal: nil, first: nil, last: nil)
    }

    /// A finding of the session.
    public struct Finding {
        public var severity: String
        public var rule: String
        public var time: Double?
        public var message: String
        public var frames = FramePlace(ordinal: nil, first: nil, last: nil)
    }

    public var id: Int64
    public var gatewaySN: String?
    public var gatewayModel: String?
    public var gatewayModelName: String?
    public var state: String
    public var start: Double
    public var end: Double?
    public var client: String?
    public var mqttClientID: String?
    public var mqttUsername: String?
    public var aircraft: [String]
    public var events: [Event]
    /// Findings of this session.
    public var deviations: [Finding] = []
    /// The capture files of the session's analysis (frames name them when there are several).
    public var captures: [CaptureRow] = []
    /// The analysis that stored the session (how it ended, which capture point recorded it).
    public var analysis: AnalysisRow?
    /// The parts of the session other capture points recorded (their steps are in ``events``).
    public var parts: [(id: Int64, analysis: AnalysisRow?)] = []
    /// For a part shown on its own (`timeline ID` of a part): the session it belongs to.
    public var partOf: Int64?

    /// The contract of `sessions --json` / `timeline --json` (README.md): snake_case keys, times in RFC 3339 (UTC,
    /// microseconds) with an `_epoch` twin in seconds, frames as Wireshark numbers them.
    public func json(withEvents: Bool) -> [String: Any] {
        var o: [String: Any] = [
            "id": id, "gateway_sn": gatewaySN as Any? ?? NSNull(), "state": state,
            "client": client as Any? ?? NSNull(), "gateway_model": gatewayModel as Any? ?? NSNull(),
            "gateway_model_name": gatewayModelName as Any? ?? NSNull(), "mqtt_client_id": mqttClientID as Any? ?? NSNull(),
            "mqtt_username": mqttUsername as Any? ?? NSNull(), "aircraft_sns": aircraft,
        ]
        if let analysis { o["analysis"] = ReportText.analysisJSON(analysis) }
        if let partOf { o["part_of"] = partOf }
        o["parts"] = parts.map { p -> [String: Any] in
            ["id": p.id, "analysis": p.analysis.map(ReportText.analysisJSON) as Any? ?? NSNull()]
        }
        o.merge(TimeText.json("start", start)) { $1 }
        o.merge(TimeText.json("end", end)) { $1 }
        if withEvents {
            o["events"] = events.map { e -> [String: Any] in
                var event: [String: Any] = [
                    "phase": e.phase, "step": e.step, "ok": e.ok, "latency": e.latency as Any? ?? NSNull(),
                    "detail": TimeText.presentingTimes(e.detail),
                ]
                event.merge(TimeText.json("time", e.time)) { $1 }
                event.merge(e.frames.json(captures)) { $1 }
                return event
            }
            o["deviations"] = deviations.map { d -> [String: Any] in
                var finding: [String: Any] = ["severity": d.severity, "rule": d.rule, "message": d.message]
                finding.merge(TimeText.json("time", d.time)) { $1 }
                finding.merge(d.frames.json(captures)) { $1 }
                return finding
            }
        }
        return o
    }
}

/// Session views from the store's rows: what `sessions`, `timeline` and `pilottrace serve` show.
public enum SessionViews {
    public static func load(_ rows: [SessionRow], from db: PilotTraceDatabase, events: Bool = true) throws -> [SessionView] {
        let timelines = events ? try db.timelines(sessionIDs: rows.map(\.id)) : [:]
        var findings: [Int64: [DeviationRow]] = [:]
        var captures = CaptureCache(db)
        if events { for r in rows { findings[r.id] = try db.deviations(sessionID: r.id) } }
        var analyses: [Int64: AnalysisRow] = [:]
        for id in Set(rows.map(\.analysisID)) { analyses[id] = try db.analysis(id: id) }
        // Sessions recorded at several capture points: their parts' analyses hold the files some steps are in.
        let parts = try db.parts(of: rows.map(\.id))
        for p in parts.values.joined() where analyses[p.analysisID] == nil { analyses[p.analysisID] = try db.analysis(id: p.analysisID) }
        return try rows.map { r in
            let mine = parts[r.id] ?? []
            var files = events ? try captures[r.analysisID] : []
            if events { for a in Set(mine.map(\.analysisID)) where a != r.analysisID { files += try captures[a] } }
            return SessionView(
                id: r.id, gatewaySN: r.gatewaySN, gatewayModel: r.gatewayModel, gatewayModelName: r.gatewayModelName, state: r.state,
                start: r.startTime, end: r.endTime, client: r.client, mqttClientID: r.mqttClientID, mqttUsername: r.mqttUsername,
                aircraft: r.aircraftSNs,
                events: (timelines[r.id] ?? []).map { e in
                    SessionView.Event(
                        time: e.time, phase: e.phase, step: e.step, ok: e.ok, latency: e.latency,
                        connection: nil, detail: (try? JSONSerialization.jsonObject(with: Data(e.detailJSON.utf8))) as? [String: Any] ?? [:],
                        frames: FramePlace(e))
                },
                deviations: (findings[r.id] ?? []).map {
                    SessionView.Finding(severity: $0.severity, rule: $0.ruleID, time: $0.time, message: $0.title, frames: FramePlace($0))
                }, captures: files, analysis: analyses[r.analysisID],
                parts: mine.map { (id: $0.id, analysis: analyses[$0.analysisID]) }, partOf: r.partOf)
        }
    }
}

/// The capture files of each analysis, read once.
public struct CaptureCache {
    let db: PilotTraceDatabase
    var known: [Int64: [CaptureRow]] = [:]

    public init(_ db: PilotTraceDatabase) { self.db = db }

    public subscript(analysisID: Int64) -> [CaptureRow] {
        mutating get throws {
            if let c = known[analysisID] { return c }
            let c = try db.captures(analysisID: analysisID)
            known[analysisID] = c
            return c
        }
    }
}

/// The JSON of `deviations --json`: one finding with its evidence, time and frames.
public enum DeviationJSON {
    public static func object(_ r: DeviationRow, captures: [CaptureRow]) -> [String: Any] {
        var o: [String: Any] = [
            "id": r.id ?? 0, "session": r.sessionID as Any? ?? NSNull(), "rule": r.ruleID, "severity": r.severity,
            "message": r.title,
            "evidence": TimeText.presentingTimes((try? JSONSerialization.jsonObject(with: Data(r.evidenceJSON.utf8))) ?? [:]),
        ]
        o.merge(TimeText.json("time", r.time)) { $1 }
        o.merge(FramePlace(r).json(captures)) { $1 }
        return o
    }
}

/// JSON as the commands print it (and `pilottrace serve`'s API answers): pretty-printed, keys sorted, slashes as is.
public enum StoreJSONText {
    public static func render(_ object: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

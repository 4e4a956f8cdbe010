import Foundation
import PilotTraceReport
import PilotTraceStore

enum TimelineText {
    static func clock(_ t: Double) -> String { TimeText.clock(t, fractionDigits: 6) }
    static func date(_ t: Double) -> String { TimeText.date(t) }

    static func header(_ s: SessionView) -> String {
        var line = "Session \(s.id): "
        if let sn = s.gatewaySN {
            line += "gateway \(sn)"
            if let model = s.gatewayModel { line += " (\(s.gatewayModelName.map { "\($0), " } ?? "")\(model))" }
        } else {
            line += "gateway unknown"
        }
        line += ", \(s.state.uppercased())"
        if let whole = s.partOf { line += " — the part another capture point recorded of session \(whole) (pilottrace timeline \(whole))" }
        if !s.parts.isEmpty {
            let sites = ([s.analysis] + s.parts.map(\.analysis)).compactMap { $0?.site }.filter { !$0.isEmpty }
            var seen = Set<String>()
            let points = sites.filter { seen.insert($0).inserted }
            line +=
                " — recorded at \(points.isEmpty ? "several capture points" : points.joined(separator: " and ")) (with session\(s.parts.count == 1 ? "" : "s") \(s.parts.map { "\($0.id)" }.joined(separator: ", ")))"
        }
        return line
    }

    static func facts(_ s: SessionView) -> String {
        var parts = ["from \(date(s.start))"]
        if let end = s.end { parts.append(String(format: "for %.3f s", end - s.start)) }
        if let c = s.client { parts.append("client \(c)") }
        if let id = s.mqttClientID { parts.append("MQTT client id \(id)") }
        if let u = s.mqttUsername { parts.append("user \(u)") }
        if !s.aircraft.isEmpty { parts.append("aircraft \(s.aircraft.joined(separator: ", "))") }
        return parts.joined(separator: ", ")
    }

    /// One line per event: clock (with the date when the session crosses midnight, UTC), offset from the session
    /// start, phase, step, outcome, the frames of its message (Wireshark's `frame.number`), facts.
    static func render(_ s: SessionView) -> String {
        var out = header(s) + "\n  " + facts(s) + "\n"
        var lastPhase = ""
        var pending = s.deviations
        let dated = TimeText.crossesMidnight([s.start] + (s.end.map { [$0] } ?? []) + s.events.map(\.time))
        func stamp(_ t: Double) -> String { dated ? "\(TimeText.day(t)) \(clock(t))" : clock(t) }
        func finding(_ d: SessionView.Finding) -> String {
            let frames = d.frames.text(s.captures)
            return "      ↳ \(d.severity.uppercased()) \(d.rule): \(d.message)\(frames.isEmpty ? "" : " (\(frames))")\n"
        }
        let frames = s.events.map { $0.frames.text(s.captures) }
        let framesWidth = frames.map(\.count).max() ?? 0
        for (i, e) in s.events.enumerated() {
            let phase = e.phase == lastPhase ? "" : e.phase
            lastPhase = e.phase
            let offset = String(format: "+%.3fs", e.time - s.start)
            let outcome = e.ok ? "ok" : "FAILED"
            var line = "  \(stamp(e.time))  \(pad(offset, 10))  \(pad(phase, 12)) \(pad(e.step, 17)) \(pad(outcome, 6))"
            if framesWidth > 0 { line += " " + pad(frames[i], framesWidth) }
            let facts = describe(e)
            if !facts.isEmpty { line += " " + facts }
            out += line.trimmingTrailingSpaces() + "\n"
            // Findings at this event's time go right under it.
            while let i = pending.firstIndex(where: { $0.time.map { abs($0 - e.time) < 1e-6 } ?? false }) {
                out += finding(pending.remove(at: i))
            }
        }
        if !pending.isEmpty {
            out += "  findings:\n"
            for d in pending { out += finding(d) }
        }
        return out
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    /// The facts worth a glance, per step.
    static func describe(_ e: SessionView.Event) -> String {
        let d = e.detail
        func str(_ k: String) -> String? { d[k] as? String }
        func num(_ k: String) -> String? { (d[k] as? NSNumber).map { "\($0)" } }
        var parts: [String] = []
        switch e.step {
        case "h5-page", "login", "login-failed", "token-refresh", "token-rejected", "topology-fetch", "workspace-info", "mqtt-credentials":
            if let m = str("method"), let p = str("path") { parts.append("\(m) \(p)") }
            if let s = num("status") { parts.append("→ \(s)") }
            if let c = num("code"), c != "0" { parts.append("code \(c)") }
            if let m = str("message") { parts.append("\"\(m)\"") }
            if let a = str("mqtt_addr") { parts.append("broker \(a)") }
            if let u = str("mqtt_username") { parts.append("user \(u)") }
            if let p = str("platform_name") { parts.append("platform \"\(p)\"") }
            if let w = str("workspace_name") { parts.append("workspace \"\(w)\"") }
            if let n = num("devices") { parts.append("\(n) devices") }
        case "mqtt-connect":
            if let c = str("client_id") { parts.append("client id \(c)") }
            parts.append((d["anonymous"] as? Bool == true) ? "anonymous" : "user \(str("username") ?? "?")")
            if let k = num("keep_alive") { parts.append("keep-alive \(k) s") }
            if let v = str("version") { parts.append("MQTT \(v)") }
            let differs = [("username", str("username_check")), ("password", str("password_check"))].filter { $0.1 == "differs" || $0.1 == "not-sent" }
            if let by = str("issued_by") {
                parts.append(differs.isEmpty ? "(credentials as issued by \(by))" : "(\(differs.map(\.0).joined(separator: " and ")) not as issued by \(by))")
            }
        case "mqtt-connack":
            if let r = num("return_code") { parts.append("return code \(r)") }
            if let r = str("reason") { parts.append("(\(r))") }
            if let n = num("attempts"), n != "1" { parts.append("refused \(n) times in \(num("over_seconds") ?? "?") s (retried with the same client id)") }
        case "already-connected":
            parts.append("connected before the capture started: \(str("client") ?? "?") → \(str("server") ?? "?")")
        case "mqtt-subscribe":
            if let t = d["topics"] as? [String] { parts.append("\(t.count) topic\(t.count == 1 ? "" : "s"): \(t.joined(separator: ", "))") }
        case "update-topo":
            if let m = str("gateway_model_name") ?? str("gateway_model") { parts.append(m) }
            if let subs = d["sub_devices"] as? [[String: Any]] {
                parts.append(
                    subs.isEmpty
                        ? "no aircraft"
                        : "aircraft "
                            + subs.map { "\($0["sn"] as? String ?? "?")\(($0["model_name"] as? String).map { " (\($0))" } ?? "")" }.joined(separator: ", "))
            }
            if let missing = d["missing"] as? [String], !missing.isEmpty { parts.append("missing \(missing.joined(separator: ", "))") }
            if let p = str("problem") { parts.append(p) }
        case "status-reply":
            if let r = num("result") { parts.append("result \(r)") }
            if d["matched"] as? Bool == false { parts.append("matches no pending status (tid/bid)") }
        case "device-offline":
            if let r = d["removed"] as? [String] { parts.append("aircraft gone: \(r.joined(separator: ", "))") }
        case "link-lost":
            if let r = str("reason") {
                switch r {
                case "keep-alive": parts.append("silent past 1.5× keep-alive")
                case "client-id-takeover":
                    parts.append("closed by the broker: \(str("by_client") ?? "another client") connected with the same client id \(str("client_id") ?? "")")
                default: parts.append("connection closed (\(r)) without DISCONNECT")
                }
            }
        case "reconnect":
            if let a = num("after_seconds") { parts.append("after \(a) s") }
        case "offline-confirmed":
            if let g = num("grace_seconds") { parts.append("no reconnect within \(g) s") }
        case "license-verified", "token-read", "token-set", "module-load", "workspace-set", "platform-info-set", "connect-state", "platform-stop":
            // JSBridge calls (proxy mode): the function and what it was given; secrets were masked by the page script.
            if let f = str("bridge") { parts.append("\(f)()") }
            if let m = str("module") { parts.append(m) }
            if let h = str("host") { parts.append("host \(h)") }
            if let u = str("username") { parts.append("user \(u)") }
            if let w = str("workspace_id") { parts.append(w) }
            if let p = str("platform_name") { parts.append("platform \"\(p)\"") }
            if let w = str("workspace_name") { parts.append("workspace \"\(w)\"") }
            if let a = str("app_id") { parts.append("app id \(a)") }
            if let c = d["connected"] as? Bool { parts.append(c ? "connected" : "not connected") }
            if let c = num("code"), c != "0" { parts.append("code \(c)") }
            if let m = str("message") { parts.append("\"\(m)\"") }
            if let e = str("error") { parts.append("threw \"\(e)\"") }
        case "connect-callback":
            if let c = str("callback") { parts.append("\(c)(\(str("arguments") ?? ""))") }
        default:
            break
        }
        if let l = e.latency { parts.append(String(format: "[%.1f ms]", l * 1000)) }
        return parts.joined(separator: " ")
    }
}

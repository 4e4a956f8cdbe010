import Foundation
import PilotTraceReport
import PilotTraceStore

/// The console's HTML pages, from what the store returned: plain HTML and CSS that work without JavaScript (links and
/// GET forms); `console.js` only adds live rows. Everything that came from a capture goes through
/// ``HTMLReport/esc(_:)`` (markup escaped, control characters and bidi marks made visible), in SVG too.
enum ConsolePages {
    /// A listed session with what its row shows besides the row itself.
    struct Listed: Sendable {
        var row: SessionRow
        var findings: FindingCounts
        var site: String?
    }

    static let esc = HTMLReport.esc

    static let css = """
        body{max-width:1400px}nav.top{display:flex;gap:18px;align-items:baseline;border-bottom:1px solid #dde2ea;padding:0 0 8px;margin:0 0 14px;flex-wrap:wrap}
        nav.top b{font-size:16px}.scroll{overflow-x:auto;max-width:100%}table.sessions{width:100%}
        table.sessions td{white-space:nowrap}table.sessions td.wrap{white-space:normal;overflow-wrap:break-word}
        table.sessions td span{white-space:nowrap}@media (max-width:1100px){table.sessions .optional{display:none}}
        form.filters{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:end;margin:10px 0;padding:10px;background:#f4f6f9;border-radius:6px}
        form.filters label{display:flex;flex-direction:column;font-size:12px;color:#4a5568;gap:2px}
        form.filters input,form.filters select{font:inherit;padding:3px 6px;max-width:14em}
        .counts a{text-decoration:none;margin-right:4px}.pages{display:flex;gap:16px;margin:10px 0}
        tr.fresh{animation:fresh 3s ease-out}@keyframes fresh{from{background:#fff3c4}to{background:transparent}}
        .seq{max-width:100%;overflow-x:auto}.seq svg{max-width:100%;height:auto}pre{white-space:pre-wrap;overflow-wrap:anywhere}
        .doc td,.finding p{overflow-wrap:anywhere}.links{display:flex;gap:16px;flex-wrap:wrap}
        """

    /// The page around `body`: title, navigation, the report's styles and the console's.
    static func layout(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>\(esc(title)) · pilottrace</title>
        <meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer">
        <style>\(HTMLReport.css)\n\(css)</style></head><body>
        <nav class="top"><b>pilottrace</b><a href="/">Sessions</a><a href="/findings">Findings</a><a href="/metrics">Metrics</a><a href="/api/sessions">JSON</a></nav>
        \(body)
        <script src="/console.js" defer></script>
        </body></html>

        """
    }

    // MARK: - Sessions

    /// The counts by state, each a link to its sessions.
    static func counts(_ counts: [String: Int]) -> String {
        let total = counts.values.reduce(0, +)
        let states = ConsoleQuery.states.compactMap { state in
            counts[state].map { "<a class=\"state \(state)\" href=\"/?state=\(state)\">\($0) \(state)</a>" }
        }
        return "<a href=\"/\">\(total) session\(total == 1 ? "" : "s")</a>: " + states.joined(separator: " ")
    }

    static func option(_ value: String, _ label: String, selected: String?) -> String {
        "<option value=\"\(esc(value))\"\(value == (selected ?? "") ? " selected" : "")>\(esc(label))</option>"
    }

    static func filterForm(_ query: ConsoleQuery, sites: [String]) -> String {
        let f = query.filter
        var out = "<form class=\"filters\" method=\"get\" action=\"/\">\n"
        out += "<label>state<select name=\"state\">" + option("", "any", selected: f.state)
        out += ConsoleQuery.states.map { option($0, $0, selected: f.state) }.joined() + "</select></label>\n"
        out += "<label>findings<select name=\"severity\">" + option("", "any", selected: f.minSeverity)
        out += ConsoleQuery.severities.map { option($0, "\($0) or worse", selected: f.minSeverity) }.joined() + "</select></label>\n"
        if sites.count > 1 || f.site != nil {
            out += "<label>capture point<select name=\"site\">" + option("", "any", selected: f.site)
            out += sites.map { option($0, $0.isEmpty ? "(unnamed)" : $0, selected: f.site) }.joined() + "</select></label>\n"
        }
        out += "<label>from (UTC)<input type=\"datetime-local\" step=\"1\" name=\"from\" value=\"\(f.from.map(ConsoleQuery.inputTime) ?? "")\"></label>\n"
        out += "<label>to (UTC)<input type=\"datetime-local\" step=\"1\" name=\"to\" value=\"\(f.to.map(ConsoleQuery.inputTime) ?? "")\"></label>\n"
        out += "<label>search<input type=\"search\" name=\"q\" value=\"\(esc(f.search ?? ""))\" placeholder=\"gateway, aircraft, client id, user\"></label>\n"
        if let rule = f.rule { out += "<input type=\"hidden\" name=\"rule\" value=\"\(esc(rule))\">" }
        out += "<button type=\"submit\">Show</button> <a href=\"/\">clear</a></form>\n"
        return out
    }

    /// The columns, and whether a narrow window may hide it (the MQTT client id is usually the gateway's serial).
    static let sessionColumns: [(title: String, optional: Bool)] = [
        ("session", false), ("state", false), ("gateway", false), ("aircraft", false), ("MQTT client id", true), ("user", false),
        ("capture point", true), ("start (UTC)", false), ("duration", false), ("findings", false),
    ]

    /// One session's row (the live feed sends the same HTML).
    static func sessionRow(_ s: Listed) -> String {
        let r = s.row
        let findings = [("error", s.findings.error), ("warning", s.findings.warning), ("info", s.findings.info)]
            .filter { $0.1 > 0 }.map { "<span class=\"sev-\($0.0)\">\($0.1) \($0.0)</span>" }.joined(separator: ", ")
        let state = esc(r.state)
        var out = "<tr id=\"session-\(r.id)\"><td><a href=\"/sessions/\(r.id)\">#\(r.id)</a></td><td><span class=\"state \(state)\">\(state)</span></td>"
        out += "<td class=\"wrap\">\(esc(r.gatewaySN ?? "unknown"))<br><small>\(esc(r.gatewayModelName ?? r.gatewayModel ?? ""))</small></td>"
        let start = TimeText.date(r.startTime).split(separator: "T", maxSplits: 1)
        out += "<td class=\"wrap\">\(esc(r.aircraftSNs.joined(separator: ", ")))</td><td class=\"wrap optional\">\(esc(r.mqttClientID ?? ""))</td>"
        out += "<td class=\"wrap\">\(esc(r.mqttUsername ?? ""))</td><td class=\"optional\">\(esc(s.site ?? ""))</td>"
        out += "<td>\(start.first ?? "")<br><small>\(start.dropFirst().first ?? "")</small></td>"
        out +=
            "<td>\(r.endTime.map { String(format: "%.3f s", $0 - r.startTime) } ?? "")</td><td class=\"wrap\">\(findings.isEmpty ? "none" : findings)</td></tr>"
        return out
    }

    static func sessions(
        _ page: [Listed], total: Int, counts: [String: Int], query: ConsoleQuery, sites: [String]
    ) -> String {
        var body = "<h1>Sessions</h1>\n<p class=\"facts counts\" id=\"counts\">\(Self.counts(counts))</p>\n"
        body += filterForm(query, sites: sites)
        if let rule = query.filter.rule { body += "<p>With a finding of rule <code>\(esc(rule))</code>.</p>\n" }
        let first = total == 0 ? 0 : query.offset + 1, last = query.offset + page.count
        body += "<p class=\"facts\">\(total == 0 ? "No session matches." : "Sessions \(first)–\(last) of \(total)"), failing first, then the latest.</p>\n"
        // New sessions are inserted at the top of the first page only; rows already shown are updated on any page.
        let events = "/events" + (query.queryString().isEmpty ? "" : "?" + query.queryString())
        body +=
            "<div class=\"scroll\"><table class=\"sessions\" id=\"sessions\" data-events=\"\(esc(events))\" data-insert=\"\(query.offset == 0 ? "yes" : "no")\"><thead><tr>"
        body += sessionColumns.map { "<th\($0.optional ? " class=\"optional\"" : "")>\(esc($0.title))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for s in page { body += sessionRow(s) + "\n" }
        body += "</tbody></table></div>\n<nav class=\"pages\">"
        if query.offset > 0 {
            body += "<a rel=\"prev\" href=\"/?\(esc(query.queryString(offset: max(0, query.offset - query.limit))))\">← previous \(query.limit)</a>"
        }
        if last < total { body += "<a rel=\"next\" href=\"/?\(esc(query.queryString(offset: last)))\">next \(min(query.limit, total - last)) →</a>" }
        body += "</nav>\n"
        return layout(title: "Sessions", body: body)
    }

    // MARK: - One session

    static func session(_ s: ReportSession) -> String {
        let id = s.row.id
        var body = "<p class=\"links\"><a href=\"/\">← sessions</a><a href=\"/api/sessions/\(id)\">JSON</a>"
        body += "<a href=\"/sessions/\(id)/report.html\" download>download the report</a></p>\n"
        if let whole = s.row.partOf {
            body += "<p>This is the part another capture point recorded of <a href=\"/sessions/\(whole)\">session #\(whole)</a>.</p>\n"
        }
        body += HTMLReport.session(s) { "/sessions/\($0)" }
        body += "<p class=\"basis\">Passwords, tokens and secrets are masked; the console never shows them.</p>\n"
        return layout(title: "Session \(id)", body: body)
    }

    // MARK: - Findings

    static func findings(_ groups: [RuleFindings]) -> String {
        var body = "<h1>Findings by rule</h1>\n"
        if groups.isEmpty { body += "<p>No findings.</p>\n" }
        let shown = 40
        for g in groups {
            let rule = ReportText.rule(g.rule)
            body +=
                "<div class=\"finding \(esc(g.severity))\" id=\"rule-\(esc(g.rule))\"><p><b class=\"sev-\(esc(g.severity))\">\(esc(g.severity.uppercased()))</b> "
            body +=
                "<code>\(esc(g.rule))</code>: \(g.findings) finding\(g.findings == 1 ? "" : "s") in \(g.sessions.count) session\(g.sessions.count == 1 ? "" : "s")</p>"
            if let rule { body += "<p>\(esc(rule.title)). \(esc(rule.explanation))</p><p class=\"basis\">Basis: \(esc(rule.basis))</p>" }
            if !g.sessions.isEmpty {
                body += "<p>" + g.sessions.prefix(shown).map { "<a href=\"/sessions/\($0)\">#\($0)</a>" }.joined(separator: " ")
                if g.sessions.count > shown { body += " … " }
                body += " <a href=\"/?rule=\(ConsoleQuery.percentEncoded(g.rule))\">all \(g.sessions.count) →</a></p>"
            }
            body += "</div>\n"
        }
        return layout(title: "Findings", body: body)
    }

    static func message(_ title: String, _ text: String) -> String {
        layout(title: title, body: "<h1>\(esc(title))</h1>\n<p>\(esc(text))</p>\n<p><a href=\"/\">← sessions</a></p>\n")
    }
}

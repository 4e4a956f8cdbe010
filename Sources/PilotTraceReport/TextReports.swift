import Foundation
import PilotTraceStore

/// The report as Markdown: the same content as the HTML without the diagram (for a pull request or an issue).
public enum MarkdownReport {
    /// Capture text as Markdown text.
    static func md(_ s: String) -> String { SafeText.markdown(s) }

    public static func render(_ doc: ReportDocument) -> String {
        var out = "# pilottrace report\n\n"
        if doc.sessions.isEmpty { return out + "No Pilot 2 sessions.\n" }
        out += "| session | gateway | state | verdict | findings |\n|---|---|---|---|---|\n"
        for s in doc.sessions {
            let counts = ReportText.severities.compactMap { sev -> String? in
                let n = s.deviations.filter { $0.severity == sev }.count
                return n == 0 ? nil : "\(n) \(sev)"
            }.joined(separator: ", ")
            out +=
                "| #\(s.row.id) | \(md(s.row.gatewaySN ?? "unknown")) | \(s.row.state) | \(md(ReportText.verdict(s))) | \(counts.isEmpty ? "none" : counts) |\n"
        }
        for s in doc.sessions {
            let r = s.row
            out += "\n## \(md(ReportText.title(r))) — \(r.state)\n\n"
            out += "From \(ReportText.date(r.startTime)), client \(md(r.client ?? "?")), MQTT client id \(md(r.mqttClientID ?? "?"))"
            if !r.aircraftSNs.isEmpty { out += ", aircraft \(md(r.aircraftSNs.joined(separator: ", ")))" }
            out += ". **\(md(ReportText.verdict(s)))**.\n\n"
            if let original = r.replayOf {
                out += "### Replay of session #\(original)\n\n\(ReportText.replaySummary(s.replaySteps)).\n\n"
                out += "| # | step | outcome | latency (recorded → replayed) | differences |\n|---|---|---|---|---|\n"
                for step in s.replaySteps {
                    let outcome = step.regression ? "**\(step.outcome), regression**" : step.outcome
                    let diffs = md(ReportText.replayDifferences(step).joined(separator: "; "))
                    out += "| \(step.ordinal + 1) | \(md(step.name)) | \(outcome) | \(ReportText.latencyPair(step)) | \(diffs) |\n"
                }
                out += "\n"
            }
            out += "### Documented sequence\n\n"
            for d in ReportText.documented { out += "- \(ReportText.mark(d.step, in: s.events).rawValue) `\(d.step)` — \(d.what)\n" }
            out += "\n### Timeline\n\nFrames are Wireshark's `frame.number` (display filter `frame.number == N`).\n\n"
            out += "| time | phase | step | ok | latency | frames |\n|---|---|---|---|---|---|\n"
            for e in s.events {
                out +=
                    "| \(ReportText.stamp(e.time, dated: ReportText.dated(s))) | \(e.phase) | \(e.step) | \(e.ok ? "ok" : "**FAILED**") | \(e.latency.map { String(format: "%.1f ms", $0 * 1000) } ?? "") | \(md(FramePlace(e).text(s.captures))) |\n"
            }
            out += "\n### Findings\n\n"
            if s.deviations.isEmpty { out += "None.\n" }
            for sev in ReportText.severities {
                for d in s.deviations where d.severity == sev {
                    let frames = md(FramePlace(d).text(s.captures))
                    out +=
                        "- **\(sev.uppercased())** `\(d.ruleID)` at \(d.time.map { ReportText.stamp($0, dated: ReportText.dated(s)) } ?? "?")\(frames.isEmpty ? "" : " (\(frames))"): \(md(d.title))"
                    if let rule = ReportText.rule(d.ruleID) { out += "  \n  \(rule.explanation) _Basis: \(rule.basis)_" }
                    out += "\n"
                }
            }
        }
        return out
    }
}

/// The observed session as a Mermaid `sequenceDiagram`, comparable with the documentation's diagram.
///
/// One session is one diagram; several are one fenced `mermaid` block each under a heading (Markdown, as mermaid-cli
/// and GitHub read it), since a Mermaid file holds a single diagram.
public enum MermaidReport {
    public static func render(_ doc: ReportDocument) -> String {
        var out = ""
        let several = doc.sessions.count > 1
        for s in doc.sessions {
            if several { out += "## \(SafeText.markdown(ReportText.title(s.row))) — \(s.row.state)\n\n```mermaid\n" }
            out += "%% \(SafeText.line(ReportText.title(s.row))) — \(s.row.state)\nsequenceDiagram\n"
            out += "    participant P as Pilot 2 / H5\n    participant B as MQTT broker\n    participant C as Cloud\n"
            var phase: String?
            for a in s.arrows {
                if a.phase != phase, let p = a.phase {
                    out += "    Note over P,C: \(p)\n"
                    phase = p
                }
                let ids = ["P", "B", "C"]
                let label = SafeText.mermaid(a.label + (a.count > 1 ? " ×\(a.count)" : ""))
                out += "    \(ids[a.from.rawValue])\(a.ok ? "->>" : "-x")\(ids[a.to.rawValue]): \(label)\n"
                for f in a.findings { out += "    Note right of \(ids[a.to.rawValue]): \(f.severity.uppercased()) \(f.ruleID)\n" }
            }
            out += several ? "```\n\n" : "\n"
        }
        return out
    }
}

/// The full session model for other tools: the `timeline --json` fields plus findings and the diagram's arrows. Times
/// are RFC 3339 (UTC, microseconds) with an `_epoch` twin; frames are Wireshark's `frame.number`.
public enum JSONReport {
    public static func render(_ doc: ReportDocument) throws -> String {
        func with(_ o: [String: Any], _ parts: [String: Any]...) -> [String: Any] {
            parts.reduce(o) { $0.merging($1) { $1 } }
        }
        // The analysis behind a session is shown where it matters: it did not finish, or several capture points recorded.
        let sites = Set(doc.sessions.compactMap { $0.analysis?.site })
        let sessions: [[String: Any]] = doc.sessions.map { s in
            let r = s.row
            var extra: [String: Any] = [:]
            if let a = s.analysis, a.isUnfinished || sites.count > 1 { extra["analysis"] = ReportText.analysisJSON(a) }
            return with(
                extra,
                [
                    "id": r.id, "gateway_sn": r.gatewaySN as Any? ?? NSNull(), "state": r.state, "client": r.client as Any? ?? NSNull(),
                    "gateway_model": r.gatewayModel as Any? ?? NSNull(), "gateway_model_name": r.gatewayModelName as Any? ?? NSNull(),
                    "mqtt_client_id": r.mqttClientID as Any? ?? NSNull(), "mqtt_username": r.mqttUsername as Any? ?? NSNull(),
                    "aircraft_sns": r.aircraftSNs, "verdict": ReportText.verdict(s), "replay_of": r.replayOf as Any? ?? NSNull(),
                    "replay_steps": s.replaySteps.map { step -> [String: Any] in
                        [
                            "ordinal": step.ordinal, "kind": step.kind, "name": step.name, "outcome": step.outcome, "regression": step.regression,
                            "recorded_latency": step.recordedLatency as Any? ?? NSNull(), "replayed_latency": step.replayedLatency as Any? ?? NSNull(),
                            "differences": (try? JSONSerialization.jsonObject(with: Data(step.differencesJSON.utf8))) ?? [],
                        ]
                    },
                    "events": s.events.map { e -> [String: Any] in
                        with(
                            [
                                "phase": e.phase, "step": e.step, "ok": e.ok, "latency": e.latency as Any? ?? NSNull(),
                                "detail": TimeText.presentingTimes((try? JSONSerialization.jsonObject(with: Data(e.detailJSON.utf8))) ?? [:]),
                            ],
                            TimeText.json("time", e.time), FramePlace(e).json(s.captures))
                    },
                    "deviations": s.deviations.map { d -> [String: Any] in
                        with(
                            [
                                "id": d.id ?? 0, "session": d.sessionID as Any? ?? NSNull(), "rule": d.ruleID, "severity": d.severity,
                                "message": d.title,
                                "evidence": TimeText.presentingTimes((try? JSONSerialization.jsonObject(with: Data(d.evidenceJSON.utf8))) ?? [:]),
                            ],
                            TimeText.json("time", d.time), FramePlace(d).json(s.captures))
                    },
                    "messages": s.arrows.map { a -> [String: Any] in
                        with(
                            [
                                "from": ["pilot", "broker", "cloud"][a.from.rawValue], "to": ["pilot", "broker", "cloud"][a.to.rawValue],
                                "label": a.label, "count": a.count, "ok": a.ok, "kind": a.kind, "message_id": a.messageID,
                                "phase": a.phase as Any? ?? NSNull(), "findings": a.findings.map(\.ruleID),
                            ],
                            TimeText.json("time", a.time), a.frames.json(s.captures))
                    },
                ], TimeText.json("start", r.startTime), TimeText.json("end", r.endTime))
        }
        let data = try JSONSerialization.data(withJSONObject: ["sessions": sessions], options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

import Foundation
import PilotTraceFlow
import PilotTraceStore
import PilotTraceWire

/// Capture times as people read them, shared by the reports and the command-line views.
public enum TimeText {
    /// `08:44:49.073135` (UTC time of day), truncated to `fractionDigits` (1–6) digits.
    public static func clock(_ t: Double, fractionDigits: Int) -> String {
        let micros = Int64((t * 1e6).rounded())
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        var fraction = micros - seconds * 1_000_000
        for _ in fractionDigits..<6 { fraction /= 10 }
        let s = ((seconds % 86_400) + 86_400) % 86_400
        return String(format: "%02lld:%02lld:%02lld.%0*lld", s / 3600, (s / 60) % 60, s % 60, Int32(fractionDigits), fraction)
    }

    /// ISO 8601 in UTC with milliseconds.
    public static func date(_ t: Double) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: t))
    }

    /// The one time format of every JSON output: RFC 3339 in UTC with microseconds, `2026-12-02T07:46:38.447739Z`.
    public static func rfc3339(_ t: Double) -> String { Timestamp(nanoseconds: Int64((t * 1e6).rounded()) * 1000).iso8601 }

    /// Seconds since the epoch, rounded to the microsecond: the numeric twin (`…_epoch`) of a JSON time.
    public static func epoch(_ t: Double) -> Double { (t * 1e6).rounded() / 1e6 }

    /// A JSON time and its numeric twin: `[key: "2026-…Z", key_epoch: 1795768088.899689]` (both null when `t` is).
    public static func json(_ key: String, _ t: Double?) -> [String: Any] {
        guard let t else { return [key: NSNull(), key + "_epoch": NSNull()] }
        return [key: rfc3339(t), key + "_epoch": epoch(t)]
    }

    /// A step's detail or a finding's evidence as the JSON outputs show it: members named `…_at` holding seconds since
    /// the epoch (`issued_at`, `expired_at`; the store keeps numbers) become the RFC 3339 time and its `…_at_epoch` twin.
    public static func presentingTimes(_ object: Any) -> Any {
        guard var o = object as? [String: Any] else { return object }
        for (k, v) in o where k.hasSuffix("_at") {
            guard let n = v as? NSNumber else { continue }
            o.merge(json(k, n.doubleValue)) { $1 }
        }
        return o
    }

    /// `2026-11-27` (UTC date).
    public static func day(_ t: Double) -> String { String(rfc3339(t).prefix(10)) }

    /// Whether the times fall on more than one UTC date: text listings then show dates, not only clocks.
    public static func crossesMidnight(_ times: [Double]) -> Bool {
        guard let first = times.first else { return false }
        let d = day(first)
        return times.contains { day($0) != d }
    }
}

/// Where a stored message, step or finding is in the captures, as Wireshark numbers frames (`frame.number`, from 1
/// in each file): the text the listings and reports show, and the JSON keys.
public struct FramePlace: Sendable, Hashable {
    /// The capture file: the analysis's `captures` row of ``ordinal``, when there is one.
    public var ordinal: Int?
    public var first: Int?
    public var last: Int?
    /// The analysis whose capture files ``ordinal`` counts (a stitched session's steps come from several); nil: the
    /// only one given.
    public var analysisID: Int64?

    public init(ordinal: Int?, first: Int?, last: Int?, analysisID: Int64? = nil) {
        self.ordinal = ordinal
        self.first = first
        self.last = last
        self.analysisID = analysisID
    }

    public init(_ e: TimelineEventRow) { self.init(ordinal: e.captureOrdinal, first: e.firstFrame, last: e.lastFrame, analysisID: e.analysisID) }
    public init(_ d: DeviationRow) { self.init(ordinal: d.captureOrdinal, first: d.firstFrame, last: d.lastFrame, analysisID: d.analysisID) }

    public var isKnown: Bool { first != nil || last != nil }

    /// `frame 23`, `frames 4–6` (`frames 4–?` when the last is not known), with the file's name first when the
    /// analysis read several (`b.pcapng frame 3`); empty when no frame is known.
    public func text(_ captures: [CaptureRow]) -> String {
        guard isKnown else { return "" }
        var out: String
        switch (first, last) {
        case let (f?, l?) where f == l: out = "frame \(f)"
        case let (f?, l?): out = "frames \(f)–\(l)"
        case let (f?, nil): out = "frames \(f)–?"
        case let (nil, l?): out = "frames ?–\(l)"
        case (nil, nil): out = ""
        }
        if captures.count > 1, let name = file(captures).map({ URL(fileURLWithPath: $0).lastPathComponent }) { out = "\(name) \(out)" }
        return out
    }

    /// The capture file's path as given to the analysis.
    public func file(_ captures: [CaptureRow]) -> String? {
        guard let ordinal else { return nil }
        return captures.first { $0.ordinal == ordinal && (analysisID == nil || $0.analysisID == analysisID) }?.path
    }

    /// `capture_file`, `first_frame`, `last_frame` (null when not known).
    public func json(_ captures: [CaptureRow]) -> [String: Any] {
        ["capture_file": file(captures) as Any? ?? NSNull(), "first_frame": first as Any? ?? NSNull(), "last_frame": last as Any? ?? NSNull()]
    }
}

/// Shared wording and facts for every report format.
public enum ReportText {
    /// The documented sequence (protocol reference §1.1), as the steps that show it happened.
    static let documented: [(step: String, phase: String, what: String)] = [
        ("h5-page", "license", "The access link's H5 page is fetched"),
        ("login", "token", "POST login issues the access token"),
        ("mqtt-credentials", "cloud-module", "The MQTT address and credentials are handed out"),
        ("workspace-info", "cloud-module", "Workspace and platform names are fetched"),
        ("mqtt-connect", "connect", "Pilot 2 connects to the broker"),
        ("mqtt-connack", "connect", "The broker accepts the CONNECT"),
        ("mqtt-subscribe", "connect", "Pilot 2 subscribes to its downlink topics"),
        ("update-topo", "status", "update_topo on sys/product/{sn}/status"),
        ("status-reply", "status", "The cloud answers status_reply (same tid/bid, result 0)"),
        ("topology-fetch", "status", "Pilot 2 fetches the device topology"),
    ]

    enum Mark: String { case done = "✓", failed = "✗", missing = "–" }

    static func mark(_ step: String, in events: [TimelineEventRow]) -> Mark {
        let of = events.filter { $0.step == step }
        if of.contains(where: \.ok) { return .done }
        return of.isEmpty ? .missing : .failed
    }

    static func clock(_ t: Double) -> String { TimeText.clock(t, fractionDigits: 3) }
    static func date(_ t: Double) -> String { TimeText.date(t) }

    /// Whether the session crosses midnight (UTC): its times then show their dates.
    static func dated(_ s: ReportSession) -> Bool {
        TimeText.crossesMidnight([s.row.startTime] + (s.row.endTime.map { [$0] } ?? []) + s.events.map(\.time))
    }

    /// The clock, with the date first when `dated`.
    static func stamp(_ t: Double, dated: Bool) -> String { dated ? "\(TimeText.day(t)) \(clock(t))" : clock(t) }

    static func title(_ s: SessionRow) -> String {
        var t = "Session \(s.id): gateway \(s.gatewaySN ?? "unknown")"
        if let name = s.gatewayModelName ?? s.gatewayModel { t += " (\(name))" }
        return t
    }

    static func verdict(_ s: ReportSession) -> String {
        let errors = s.deviations.filter { $0.severity == "error" }.count
        switch s.row.state {
        case "online": return errors == 0 ? "came online" : "came online, with \(errors) error\(errors == 1 ? "" : "s")"
        case "offline": return "came online and went offline"
        case "failed":
            if let first = s.events.first(where: { !$0.ok }) { return "failed at \(first.step)" }
            if let e = s.deviations.first(where: { $0.severity == "error" }) { return "failed: \(e.ruleID)" }
            return "failed"
        default:
            switch s.analysis?.state {
            case "interrupted": return "incomplete: its analysis was interrupted (\(s.analysis?.stopReason ?? "no reason recorded")) before the outcome"
            case "running": return "incomplete: its analysis has not finished (still running, or its process was killed)"
            default: return "incomplete: the capture does not show the outcome"
            }
        }
    }

    /// How an analysis ended and where it was recorded, as the JSON outputs show it.
    public static func analysisJSON(_ a: AnalysisRow) -> [String: Any] {
        ["id": a.id ?? 0, "state": a.state, "site": a.site, "stop_reason": a.stopReason as Any? ?? NSNull()]
    }

    struct PhaseSpan { var phase: String; var start: Double; var end: Double; var steps: Int; var latencies: [(String, Double)] }

    static func phases(_ events: [TimelineEventRow]) -> [PhaseSpan] {
        var out: [PhaseSpan] = []
        for e in events {
            if let i = out.lastIndex(where: { $0.phase == e.phase }), i == out.count - 1 {
                out[i].end = e.time
                out[i].steps += 1
                if let l = e.latency { out[i].latencies.append((e.step, l)) }
            } else {
                out.append(PhaseSpan(phase: e.phase, start: e.time, end: e.time, steps: 1, latencies: e.latency.map { [(e.step, $0)] } ?? []))
            }
        }
        return out
    }

    public static func rule(_ id: String) -> Rule? { Rules.rule(id) }

    static let severities = ["error", "warning", "info"]

    /// One line per difference of a replayed step: "what path: recorded → replayed".
    static func replayDifferences(_ step: ReplayStepRow) -> [String] {
        guard let items = (try? JSONSerialization.jsonObject(with: Data(step.differencesJSON.utf8))) as? [[String: Any]] else { return [] }
        return items.map { d in
            var line = "\(d["what"] ?? "")"
            if let path = d["path"] as? String, !path.isEmpty { line += " \(path)" }
            let recorded = d["recorded"].map { "\($0)" }, replayed = d["replayed"].map { "\($0)" }
            if recorded != nil || replayed != nil { line += ": \(recorded ?? "–") → \(replayed ?? "–")" }
            if d["regression"] as? Bool == true { line += " (regression)" }
            return line
        }
    }

    /// "12 matched, 1 changed, 1 missing; 2 regressions".
    static func replaySummary(_ steps: [ReplayStepRow]) -> String {
        let count = { (o: String) in steps.filter { $0.outcome == o }.count }
        let regressions = steps.filter(\.regression).count
        return "\(count("matched")) matched, \(count("changed")) changed, \(count("missing")) missing; "
            + (regressions == 0 ? "no regression" : "\(regressions) regression\(regressions == 1 ? "" : "s")")
    }

    static func latencyPair(_ step: ReplayStepRow) -> String {
        func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0 * 1000) } ?? "–" }
        return step.recordedLatency == nil && step.replayedLatency == nil ? "" : "\(ms(step.recordedLatency)) → \(ms(step.replayedLatency))"
    }
}

/// Text that came from a capture (client ids, topics, paths, serials), made safe for where it is shown.
///
/// A capture is attacker-controlled input: an MQTT client id holding `ESC[41m` would recolour a terminal, a CR would
/// overwrite a line, a bidi override (U+202E) would reorder what a reader sees, and markup would become a link or a
/// table cell in a Markdown report. Every text output goes through one of these.
public enum SafeText {
    /// For a terminal: control characters (C0 but tab and line feed, DEL, C1) and the invisible bidi and direction
    /// marks become visible escapes (`\u{1B}`); everything else is kept.
    public static func terminal(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: needsEscape) else { return s }
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if needsEscape(u) {
                out.append(contentsOf: "\\u{\(String(u.value, radix: 16, uppercase: true))}".unicodeScalars)
            } else {
                out.append(u)
            }
        }
        return String(out)
    }

    /// For one line of a terminal listing: as ``terminal(_:)``, and a line feed or tab escaped too.
    public static func line(_ s: String) -> String {
        terminal(s).replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\t", with: "\\t")
    }

    /// For Markdown (GitHub's flavour, which also renders inline HTML): ``line(_:)``, then HTML's `& < >` as
    /// entities and Markdown's inline punctuation (`\ ` * _ [ ] | ~`) backslash-escaped, so capture text stays text.
    public static func markdown(_ s: String) -> String {
        substitute(line(s), markdownEntities)
    }

    /// For a Mermaid label: ``line(_:)``, with the characters Mermaid's grammar gives a meaning (`;` ends a
    /// statement, `#` starts an entity, `<` `>` are markup, `%` starts a comment) written as Mermaid entity codes.
    public static func mermaid(_ s: String) -> String {
        substitute(line(s), mermaidEntities)
    }

    static let markdownEntities: [Character: String] = [
        "&": "&amp;", "<": "&lt;", ">": "&gt;",
        "\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "|": "\\|", "~": "\\~",
    ]
    static let mermaidEntities: [Character: String] = [";": "#59;", "#": "#35;", "<": "#lt;", ">": "#gt;", "%": "#37;", "\"": "#quot;"]

    /// `s` with each character in `table` replaced by its text.
    static func substitute(_ s: String, _ table: [Character: String]) -> String {
        guard s.contains(where: { table[$0] != nil }) else { return s }
        var out = ""
        for c in s {
            if let r = table[c] { out += r } else { out.append(c) }
        }
        return out
    }

    /// C0 controls but tab and line feed, DEL, C1 controls, and the bidi embeddings, overrides, isolates and marks.
    static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09, 0x0A: return false
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }
}

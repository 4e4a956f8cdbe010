import PilotTraceProtocols

/// A replayed session judged: its steps against the recording, and the replay's findings against the original's.
public struct SessionVerdict: Sendable, Codable {
    public var original: Int64
    public var gatewaySN: String?
    /// The replay's own traffic, stored as a session (source `replay`); nil when it formed none or was not stored.
    public var replaySession: Int64?
    public var replayAnalysis: Int64?
    public var steps: [StepResult]
    public var originalFindings: [String]
    public var replayFindings: [String]
    /// Variables substituted with the target's values, by name, with the steps that used them.
    public var variables: [VariableUse]
    public var notes: [String]
    /// Seconds the replay of this session took.
    public var duration: Double

    public struct VariableUse: Sendable, Codable, Hashable {
        public var name: String
        public var path: String
        public var definedBy: Int
        public var usedBy: [Int]
        /// Whether the target issued its own value (and the replay sent it instead of the recorded one).
        public var rewritten: Bool
        public var recorded: String
        public var replayed: String?

        public init(name: String, path: String, definedBy: Int, usedBy: [Int], rewritten: Bool, recorded: String, replayed: String?) {
            self.name = name
            self.path = path
            self.definedBy = definedBy
            self.usedBy = usedBy
            self.rewritten = rewritten
            self.recorded = recorded
            self.replayed = replayed
        }

        enum CodingKeys: String, CodingKey {
            case name, path, rewritten, recorded, replayed
            case definedBy = "defined_by"
            case usedBy = "used_by"
        }
    }

    public init(
        original: Int64, gatewaySN: String?, steps: [StepResult], originalFindings: [String], replayFindings: [String],
        variables: [VariableUse] = [], notes: [String] = [], duration: Double = 0
    ) {
        self.original = original
        self.gatewaySN = gatewaySN
        self.steps = steps
        self.originalFindings = originalFindings
        self.replayFindings = replayFindings
        self.variables = variables
        self.notes = notes
        self.duration = duration
    }

    /// Rules the replay's traffic broke that the original's did not.
    public var newFindings: [String] { Array(Set(replayFindings).subtracting(originalFindings)).sorted() }

    public var regressed: Bool { !newFindings.isEmpty || steps.contains(where: \.regression) }

    public func count(_ outcome: StepResult.Outcome) -> Int { steps.filter { $0.outcome == outcome }.count }

    enum CodingKeys: String, CodingKey {
        case original, steps, variables, notes, duration
        case gatewaySN = "gateway_sn"
        case replaySession = "replay_session"
        case replayAnalysis = "replay_analysis"
        case originalFindings = "original_findings"
        case replayFindings = "replay_findings"
        case newFindings = "new_findings"
        case regressed
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(original, forKey: .original)
        try c.encode(gatewaySN, forKey: .gatewaySN)
        try c.encode(replaySession, forKey: .replaySession)
        try c.encode(replayAnalysis, forKey: .replayAnalysis)
        try c.encode(regressed, forKey: .regressed)
        try c.encode(steps, forKey: .steps)
        try c.encode(originalFindings, forKey: .originalFindings)
        try c.encode(replayFindings, forKey: .replayFindings)
        try c.encode(newFindings, forKey: .newFindings)
        try c.encode(variables, forKey: .variables)
        try c.encode(notes, forKey: .notes)
        try c.encode(duration, forKey: .duration)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        original = try c.decode(Int64.self, forKey: .original)
        gatewaySN = try c.decodeIfPresent(String.self, forKey: .gatewaySN)
        replaySession = try c.decodeIfPresent(Int64.self, forKey: .replaySession)
        replayAnalysis = try c.decodeIfPresent(Int64.self, forKey: .replayAnalysis)
        steps = try c.decode([StepResult].self, forKey: .steps)
        originalFindings = try c.decode([String].self, forKey: .originalFindings)
        replayFindings = try c.decode([String].self, forKey: .replayFindings)
        variables = try c.decode([VariableUse].self, forKey: .variables)
        notes = try c.decode([String].self, forKey: .notes)
        duration = try c.decode(Double.self, forKey: .duration)
    }
}

/// The replay's outputs: a readable summary, JUnit XML (one test case per session step).
public enum ReplayOutput {
    /// The per-session summary people read.
    public static func text(_ verdicts: [SessionVerdict], showSecrets: Bool) -> String {
        var out = ""
        for v in verdicts {
            let replay = v.replaySession.map { "replay session #\($0)" } ?? "replay not stored as a session"
            out += "Session #\(v.original)\(v.gatewaySN.map { " (gateway \($0))" } ?? "") → \(replay): \(v.regressed ? "REGRESSED" : "no regression")\n"
            out += "  \(v.steps.count) steps: \(v.count(.matched)) matched, \(v.count(.changed)) changed, \(v.count(.missing)) missing"
            out += "; new findings: \(v.newFindings.isEmpty ? "none" : v.newFindings.joined(separator: ", "))"
            out += " (\(ms(v.duration, digits: 0)))\n"
            for s in v.steps {
                let mark = s.outcome == .matched ? "ok     " : s.regression ? s.outcome.rawValue.uppercased().padding(7) : "changed"
                var line = "  \(mark) #\(String(s.ordinal + 1).leftPad(2)) \(s.name)"
                if s.recordedLatency != nil || s.replayedLatency != nil {
                    line += " [\(s.recordedLatency.map { ms($0) } ?? "–") → \(s.replayedLatency.map { ms($0) } ?? "–")]"
                }
                out += line + "\n"
                for d in s.differences {
                    out += "           \(d.regression ? "✗" : "·") \(d.what)\(d.path.map { " \($0)" } ?? ""): \(d.recorded) → \(d.replayed)\n"
                }
            }
            for u in v.variables {
                let values = showSecrets ? ": \(u.recorded) → \(u.replayed ?? "(not issued)")" : ""
                out += "  variable \(u.name) (\(u.path) of step #\(u.definedBy + 1), used by \(u.usedBy.map { "#\($0 + 1)" }.joined(separator: ", "))): "
                let what =
                    u.rewritten
                    ? "the target's own value sent"
                    : u.replayed != nil ? "the target issued the recorded value again" : "recorded value kept (the target issued none)"
                out += what + values + "\n"
            }
            for n in v.notes { out += "  note: \(n)\n" }
            if !v.newFindings.isEmpty {
                out += "  findings: original \(v.originalFindings.isEmpty ? "none" : Self.counted(v.originalFindings)); "
                out += "replay \(Self.counted(v.replayFindings))\n"
            }
        }
        return out
    }

    /// `a, b ×2, c`: rule ids once each, sorted, with their count.
    static func counted(_ ids: [String]) -> String {
        var counts: [String: Int] = [:]
        for id in ids { counts[id, default: 0] += 1 }
        return counts.keys.sorted().map { counts[$0]! > 1 ? "\($0) ×\(counts[$0]!)" : $0 }.joined(separator: ", ")
    }

    static func ms(_ seconds: Double, digits: Int = 1) -> String {
        let v = seconds * 1000
        let scale = digits == 0 ? 1.0 : 10.0
        let r = (v * scale).rounded() / scale
        return digits == 0 ? "\(Int(r)) ms" : "\(r) ms"
    }

    /// JUnit XML: a test suite per session, a test case per step (failed when it regressed) and one for the
    /// findings (failed when the replay has a finding the original lacked).
    public static func junit(_ verdicts: [SessionVerdict]) -> String {
        var suites = ""
        var tests = 0, failures = 0
        for v in verdicts {
            var cases = ""
            var suiteFailures = 0
            let className = "replay.session\(v.original)"
            for s in v.steps {
                cases +=
                    "    <testcase classname=\"\(xml(className))\" name=\"\(xml(String(format2(s.ordinal + 1)) + " " + s.name))\" time=\"\(seconds(s.replayedLatency ?? 0))\">"
                if s.regression {
                    suiteFailures += 1
                    let message = s.differences.filter(\.regression).map { "\($0.what)\($0.path.map { " \($0)" } ?? ""): \($0.recorded) → \($0.replayed)" }
                        .joined(separator: "; ")
                    cases += "\n      <failure type=\"\(s.outcome.rawValue)\" message=\"\(xml(message))\"/>\n    "
                }
                cases += "</testcase>\n"
            }
            cases += "    <testcase classname=\"\(xml(className))\" name=\"findings\" time=\"0\">"
            if !v.newFindings.isEmpty {
                suiteFailures += 1
                cases += "\n      <failure type=\"new-findings\" message=\"\(xml("new findings: " + v.newFindings.joined(separator: ", ")))\"/>\n    "
            }
            cases += "</testcase>\n"
            let count = v.steps.count + 1
            tests += count
            failures += suiteFailures
            let name = "session \(v.original)\(v.gatewaySN.map { " (\($0))" } ?? "")"
            suites += "  <testsuite name=\"\(xml(name))\" tests=\"\(count)\" failures=\"\(suiteFailures)\" errors=\"0\" time=\"\(seconds(v.duration))\">\n"
            suites += cases + "  </testsuite>\n"
        }
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"pilottrace replay\" tests=\"\(tests)\" failures=\"\(failures)\">\n"
            + suites + "</testsuites>\n"
    }

    /// JUnit XML for a replay that could not run: one suite with one test case in error, so CI shows why.
    public static func junitError(_ message: String) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"pilottrace replay\" tests=\"1\" failures=\"0\" errors=\"1\">\n"
            + "  <testsuite name=\"replay\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"0\">\n"
            + "    <testcase classname=\"replay\" name=\"replay could not run\" time=\"0\">\n"
            + "      <error type=\"replay-error\" message=\"\(xml(message))\"/>\n    </testcase>\n  </testsuite>\n</testsuites>\n"
    }

    static func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    static func seconds(_ s: Double) -> String {
        let r = (s * 1_000_000).rounded() / 1_000_000
        return "\(r)"
    }

    static func xml(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "\n": out += "&#10;"
            default:
                // XML 1.0 §2.2: control characters other than tab, LF, CR are not allowed at all.
                if c.value < 0x20 && c != "\t" && c != "\r" { out += "?" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

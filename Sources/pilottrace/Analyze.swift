import ArgumentParser
import Dispatch
import Foundation
import PilotTraceAnalysis
import PilotTraceCapture
import PilotTraceFlow
import PilotTraceProtocols
import PilotTraceStore
import PilotTraceWire
import Synchronization
import Yams

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyze captures and store flows, messages, sessions and timelines in SQLite.",
        discussion: Examples.discussion(
            "analyze",
            """
            Reads the captures as one trace (in time order: by each file's first packet; files that overlap in time, and \
            time going backwards inside a file, are warned about), decodes HTTP, WebSocket and MQTT, reconstructs each Pilot 2 device's \
            session (license, token, cloud-module, connect, status, offline) and stores everything. Analyzing the same \
            files again replaces their rows. Prints a short summary; exit status 0 when the analysis ran, whatever it \
            found (1 when a capture is corrupt: what was read before the corruption is stored).
            """)
    )

    @OptionGroup var input: CaptureOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var site: SiteOptions

    @Option(help: ArgumentHelp("A JSON or YAML (.yaml/.yml) file mapping this cloud's HTTP routes to steps (see docs/profile.md).", valueName: "file"))
    var profile: String?

    @OptionGroup var summary: SummaryOptions
    @OptionGroup var tls: TLSKeyLogOptions

    @Flag(help: "Analyze without storing anything (for benchmarks and quick looks): prints the summary only.")
    var noStore = false

    func run() throws {
        let captures = input.inTimeOrder()
        // Nothing is created for a capture that cannot be read: each is opened (its header read) first.
        for path in captures {
            do { _ = try CaptureFileReader(path: path) } catch { throw Failure(path, error) }
        }
        try tls.check()
        var options = AnalysisOptions()
        options.reassembly = input.reassembly
        options.tlsKeyLogFiles = tls.files
        if let profile {
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: profile))
                if profile.hasSuffix(".yaml") || profile.hasSuffix(".yml") {
                    options.sessions.profile = try YAMLDecoder().decode(HTTPProfile.self, from: data)
                } else {
                    options.sessions.profile = try JSONDecoder().decode(HTTPProfile.self, from: data)
                }
            } catch {
                throw Failure("\(profile): not a usable profile: \(ErrorText.describe(error))")
            }
        }
        let report: AnalysisReport
        if noStore {
            report = try AnalysisRun.analyzeWithoutStoring(captures, options: options)
            printText(Self.summary(report, database: nil, verbose: summary.verbose), terminator: "")
        } else {
            let existed = database.exists
            let db = try database.open()
            let run: AnalysisRun
            do {
                run = try AnalysisRun(
                    paths: captures, database: db, options: options, toolVersion: PilotTraceVersion.string,
                    site: site.resolved)
            } catch {
                try? db.close()
                if !existed { database.discard(db, analysis: -1, created: true) }
                throw Failure(database.shown, error)
            }
            // Ctrl-C / SIGTERM: reading stops, what was read is analyzed and stored (sessions in progress `incomplete`,
            // the analysis `interrupted`); a second one quits at once (the analysis then stays `running`).
            let stopRequest = Mutex<String?>(nil)
            let signals = StopSignals { (signal: Int32) in
                let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
                let first = stopRequest.withLock { reason in
                    defer { if reason == nil { reason = "\(name) while reading" } }
                    return reason == nil
                }
                guard first else { Foundation.exit(ExitStatus.interrupted) }
                warn("\n\(name): stopping; storing what was read so far (again to quit at once)")
            }
            defer { signals.cancel() }
            let progress = ProgressLine()
            report = try run.run(captures, progress: progress.update, stopRequest: { stopRequest.withLock { $0 } })
            progress.clear()
            printText(Self.summary(report, database: database.shown, verbose: summary.verbose), terminator: "")
            // The WAL goes into the file: what the command stored is one file to copy or share.
            do { try db.close() } catch { warn("warning: \(ErrorText.describe(error))") }
            if let reason = report.interrupted {
                warn("interrupted (\(reason)): analysis \(report.analysisID) in \(database.shown) holds what was read, marked interrupted")
                for w in report.files.flatMap(\.warnings) { warn("warning: \(w)") }
                throw ExitCode(ExitStatus.interrupted)
            }
        }
        for w in report.files.flatMap(\.warnings) { warn("warning: \(w)") }
        // A corrupt capture: what was read before the corruption is analyzed (and stored), and the job failed.
        if let error = report.error { throw Failure(ErrorText.describe(error)) }
        try checkFailOn(summary.failOn, report.deviations.map(\.rule.severity))
    }

    /// Sessions listed one by one in a summary up to this many; beyond it, counts and the first failing ones.
    static let listedSessions = 10
    /// Failing sessions a long summary names.
    static let namedFailures = 5

    /// The analysis in at most a screen, whatever the capture's size; `database` is nil for `--no-store`.
    static func summary(_ r: AnalysisReport, database: String?, verbose: Bool = false) -> String {
        let conns = r.connections.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")
        var out = "Analyzed \(r.files.map(\.path).joined(separator: ", ")): \(r.counters.frames) frames, "
        out += "connections: \(conns.isEmpty ? "none" : conns); messages: \(r.messages.http) HTTP, \(r.messages.webSocket) WebSocket, \(r.messages.mqtt) MQTT\n"
        out += database.map { "Stored in \($0) as analysis \(r.analysisID).\n" } ?? "Not stored (--no-store).\n"
        if r.stitched > 0 {
            out += "Joined \(count(r.stitched, "session")) with the other side of the login, recorded at another capture point (pilottrace sessions).\n"
        }
        let order: [SessionState] = [.online, .offline, .failed, .incomplete]
        let states = Dictionary(grouping: r.sessions, by: \.session.state).mapValues(\.count)
        out += "\n\(count(r.sessions.count, "Pilot 2 session"))"
        if !states.isEmpty { out += " (" + order.compactMap { st in states[st].map { "\($0) \(st.rawValue)" } }.joined(separator: ", ") + ")" }
        // Findings per session (by number), to order the failing sessions worst first.
        var errors: [Int: Int] = [:], warnings: [Int: Int] = [:]
        for d in r.deviations {
            guard let n = d.session else { continue }
            if d.rule.severity == .error { errors[n, default: 0] += 1 } else if d.rule.severity == .warning { warnings[n, default: 0] += 1 }
        }
        func line(_ number: Int, _ id: Int64, _ s: Session) -> String {
            var line = "  #\(id)  \(s.state.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) gateway \(s.gatewaySN ?? "unknown")"
            if let name = s.gatewayModel?.name { line += " (\(name))" }
            if !s.aircraft.isEmpty { line += ", aircraft \(s.aircraft.joined(separator: ", "))" }
            line += ", \(s.eventCount ?? s.events.count) steps"
            if let failed = s.events.first(where: { !$0.ok }) { line += ", first failure: \(failed.step.rawValue)" }
            if let e = errors[number] { line += ", \(count(e, "error"))" }
            return line + "\n"
        }
        if verbose || r.sessions.count <= listedSessions {
            out += r.sessions.isEmpty ? "\n" : ":\n"
            for (i, (id, s)) in r.sessions.enumerated() { out += line(i + 1, id, s) }
        } else {
            out += "\n"
            let failing = r.sessions.indices.filter { r.sessions[$0].session.state == .failed || errors[$0 + 1] != nil }
            let worst = failing.sorted {
                (errors[$0 + 1] ?? 0, warnings[$0 + 1] ?? 0, r.sessions[$0].session.state == .failed ? 1 : 0, -$0)
                    > (errors[$1 + 1] ?? 0, warnings[$1 + 1] ?? 0, r.sessions[$1].session.state == .failed ? 1 : 0, -$1)
            }
            if !worst.isEmpty {
                out += "Failing sessions, worst first (\(min(worst.count, namedFailures)) of \(worst.count)):\n"
                for i in worst.prefix(namedFailures) { out += line(i + 1, r.sessions[i].id, r.sessions[i].session) }
            }
            out += "All sessions: pilottrace sessions\(database.map { " --db \($0)" } ?? "") (or analyze --verbose)\n"
        }
        let bySeverity = Dictionary(grouping: r.deviations, by: \.rule.severity)
        out +=
            "\nFindings: "
            + (r.deviations.isEmpty
                ? "none"
                : Severity.allCases.reversed().compactMap { sev in
                    bySeverity[sev].map { count($0.count, sev.rawValue) }
                }.joined(separator: ", ")) + "\n"
        // One line per rule, most severe first: how often, and in how many sessions.
        let byRule = Dictionary(grouping: r.deviations, by: \.rule.id)
        let rules = byRule.values.map { $0[0].rule }.sorted { ($0.severity, $1.id) > ($1.severity, $0.id) }
        let width = rules.map(\.id.count).max() ?? 0
        for rule in rules {
            let found = byRule[rule.id] ?? []
            let sessions = Set(found.compactMap(\.session)).count
            var text =
                "  \(rule.severity.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(rule.id.padding(toLength: width, withPad: " ", startingAt: 0))  \(count(found.count, "time"))"
            if sessions > 0 { text += " in \(count(sessions, "session"))" }
            if rule.severity == .error, let first = found.first { text += ": \(first.text)\(found.count > 1 ? ", …" : "")" }
            out += text + "\n"
        }
        if let database {
            if !r.deviations.isEmpty { out += "Details: pilottrace deviations --db \(database)\n" }
            if !r.sessions.isEmpty { out += "\nShow the timelines with: pilottrace timeline --db \(database) [ID]\n" }
        } else if !r.deviations.isEmpty || !r.sessions.isEmpty {
            out += "\nStore the analysis (without --no-store) to list the findings and timelines.\n"
        }
        return out
    }

    /// `1 session`, `2,000 sessions`.
    static func count(_ n: Int, _ noun: String) -> String {
        var digits = String(n)
        var i = digits.count - 3
        while i > 0 {
            digits.insert(",", at: digits.index(digits.startIndex, offsetBy: i))
            i -= 3
        }
        return "\(digits) \(noun)\(n == 1 ? "" : "s")"
    }
}

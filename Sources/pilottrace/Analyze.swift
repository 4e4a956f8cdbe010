import ArgumentParser
import Dispatch
import Foundation
import PilotTraceAnalysis
import PilotTraceFlow
import PilotTraceProtocols
import PilotTraceStore
import PilotTraceWire
import Yams

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyze captures and store flows, messages, sessions and timelines in SQLite.",
        discussion: """
            Reads the captures as one trace (in time order: by each file's first packet; files that overlap in time, and \
            time going backwards inside a file, are warned about), decodes HTTP, WebSocket and MQTT, reconstructs each Pilot 2 device's \
            session (license, token, cloud-module, connect, status, offline) and stores everything. Analyzing the same \
            files again replaces their rows. Prints a short summary; exit status 0 when the analysis ran, whatever it \
            found (1 when a capture is corrupt: what was read before the corruption is stored).
            """
    )

    @OptionGroup var input: CaptureOptions
    @OptionGroup var database: DatabaseOptions

    @Option(help: ArgumentHelp("A JSON or YAML (.yaml/.yml) file mapping this cloud's HTTP routes to steps (see docs/profile.md).", valueName: "file"))
    var profile: String?

    @Option(help: ArgumentHelp("Exit 1 when there are findings at or above this severity (for CI): error or warning.", valueName: "severity"))
    var failOn: Severity?

    @Flag(help: "Analyze without storing anything (for benchmarks and quick looks): prints the summary only.")
    var noStore = false

    func run() throws {
        let captures = input.inTimeOrder()
        var options = AnalysisOptions()
        options.reassembly = input.reassembly
        if let profile {
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: profile))
                if profile.hasSuffix(".yaml") || profile.hasSuffix(".yml") {
                    options.sessions.profile = try YAMLDecoder().decode(HTTPProfile.self, from: data)
                } else {
                    options.sessions.profile = try JSONDecoder().decode(HTTPProfile.self, from: data)
                }
            } catch {
                warn("error: \(profile): not a usable profile: \(error)")
                throw ExitCode(1)
            }
        }
        if noStore {
            let report = try AnalysisRun.analyzeWithoutStoring(captures, options: options)
            print(Self.summary(report, database: nil), terminator: "")
            for w in report.files.flatMap(\.warnings) { warn("warning: \(w)") }
            if let error = report.error {
                warn("error: \(error)")
                throw ExitCode(1)
            }
            return
        }
        let db = try database.open()
        let run: AnalysisRun
        do {
            run = try AnalysisRun(paths: captures, database: db, options: options, toolVersion: PilotTraceVersion.string)
        } catch {
            warn("error: \(error)")
            throw ExitCode(1)
        }
        // Ctrl-C / SIGTERM: write what was analyzed so far, then stop.
        let signals = StopSignals {
            try? run.flush()
            warn("\ninterrupted: rows analyzed so far are in \(database.resolved) (analysis \(run.analysisID))")
            Foundation.exit(130)
        }
        defer { signals.cancel() }
        let progress = ProgressLine()
        let report = try run.run(captures, progress: progress.update)
        progress.clear()
        print(Self.summary(report, database: database.resolved), terminator: "")
        // The WAL goes into the file: what the command stored is one file to copy or share.
        do { try db.close() } catch { warn("warning: \(error)") }
        for w in report.files.flatMap(\.warnings) { warn("warning: \(w)") }
        if let error = report.error {
            warn("error: \(error)")
            throw ExitCode(1)
        }
        if let failOn, report.deviations.contains(where: { $0.rule.severity >= failOn }) {
            throw ExitCode(1)
        }
    }

    /// The analysis in a few lines; `database` is nil for `--no-store`.
    static func summary(_ r: AnalysisReport, database: String?) -> String {
        let conns = r.connections.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", ")
        var out = "Analyzed \(r.files.map(\.path).joined(separator: ", ")): \(r.counters.frames) frames, "
        out += "connections: \(conns.isEmpty ? "none" : conns); messages: \(r.messages.http) HTTP, \(r.messages.webSocket) WebSocket, \(r.messages.mqtt) MQTT\n"
        out += database.map { "Stored in \($0) as analysis \(r.analysisID).\n" } ?? "Not stored (--no-store).\n"
        let states = Dictionary(grouping: r.sessions, by: \.session.state.rawValue).mapValues(\.count)
        out += "\n\(r.sessions.count) Pilot 2 session\(r.sessions.count == 1 ? "" : "s")"
        if !states.isEmpty { out += " (" + states.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")" }
        out += r.sessions.isEmpty ? "\n" : ":\n"
        for (id, s) in r.sessions {
            var line = "  #\(id)  \(s.state.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) gateway \(s.gatewaySN ?? "unknown")"
            if let name = s.gatewayModel?.name { line += " (\(name))" }
            if !s.aircraft.isEmpty { line += ", aircraft \(s.aircraft.joined(separator: ", "))" }
            line += ", \(s.eventCount ?? s.events.count) steps"
            if let failed = s.events.first(where: { !$0.ok }) { line += ", first failure: \(failed.step.rawValue)" }
            out += line + "\n"
        }
        let bySeverity = Dictionary(grouping: r.deviations, by: \.rule.severity)
        out += "\nDeviations: " + (r.deviations.isEmpty ? "none" : Severity.allCases.reversed().compactMap { sev in
            bySeverity[sev].map { "\($0.count) \(sev.rawValue)\($0.count == 1 ? "" : "s")" }
        }.joined(separator: ", ")) + "\n"
        for d in r.deviations where d.rule.severity == .error {
            out += "  \(d.rule.severity.rawValue.uppercased())  \(d.rule.id)\(d.session.map { " (session #\(r.sessions[$0 - 1].id))" } ?? ""): \(d.text)\n"
        }
        if !r.deviations.isEmpty { out += "Details: pilottrace deviations --db \(database)\n" }
        if !r.sessions.isEmpty { out += "\nShow the timelines with: pilottrace timeline --db \(database)\n" }
        return out
    }
}

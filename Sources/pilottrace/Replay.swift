import ArgumentParser
import Foundation
import PilotTraceReplay
import PilotTraceReplayRunner
import PilotTraceStore

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-drive stored Pilot 2 sessions against a target cloud, as Pilot 2, and report what regressed.",
        discussion: Examples.discussion(
            "replay",
            """
            For each session: its HTTP requests in order (method, path, query, headers, bodies) on keep-alive \
            connections grouped as recorded; MQTT through libmosquitto as the device: CONNECT with the recorded \
            identity, the recorded subscriptions, the uplink publishes in order with fresh tid, bid and timestamp \
            (--verbatim keeps them), waiting up to --reply-timeout for each reply the recording had, then DISCONNECT or \
            a dropped link as recorded. Values the cloud issued in recorded responses (tokens, workspace ids, MQTT \
            credentials) and the recording sent back later are variables: the replay sends the value the target \
            issued instead. --set NAME=VALUE sets a variable or any request field of that name (JSON member, query \
            parameter, header; mqtt_username, mqtt_password, client_id for the CONNECT). Each step is compared with \
            the recording (HTTP status, envelope code, JSON shape with tokens, times and ids left out, --ignore paths; \
            CONNACK, reply received, tid/bid echoed, result). The replay's own traffic is stored as a new session \
            (source replay, linked to the original) and runs through the deviation rules: a finding the original \
            lacked is a regression. Exit status: 0 nothing regressed, 1 regressions, 2 the replay could not run \
            (unknown session, target not answering; nothing is stored). MQTT over WebSocket is replayed over TCP \
            (libmosquitto has no WebSocket client). Secrets are masked unless --show-secrets.
            """)
    )

    @Argument(help: "Stored session ids (see `pilottrace sessions`).") var sessions: [Int64] = []
    @Flag(help: "Replay every stored session that is not itself a replay.") var all = false
    @Option(help: ArgumentHelp("The target cloud's HTTP base URL.", valueName: "url")) var targetHttp: String
    @Option(help: ArgumentHelp("The target broker (default: the mqtt_addr the target's login issues).", valueName: "host:port"))
    var targetMqtt: String?
    @OptionGroup var database: DatabaseOptions
    @Option(
        help: ArgumentHelp(
            "original (recorded timing), N× (N times faster, e.g. 2x) or max (no waits but for replies).",
            valueName: "pace")) var pace = "original"
    @Option(help: ArgumentHelp("Sessions replayed at once, each as its own device.", valueName: "n")) var concurrency = 1
    @Option(
        name: .customLong("set"),
        help: ArgumentHelp(
            "Set a variable or request field (repeatable), e.g. password=secret.",
            valueName: "name=value")) var sets: [String] = []
    @Option(
        name: .customLong("ignore"),
        help: ArgumentHelp(
            "Leave a JSON path out of the comparison (repeatable), e.g. $.data.workspace_name.",
            valueName: "jsonpath")) var ignores: [String] = []
    @Flag(help: "Keep the recorded tid, bid and timestamps.") var verbatim = false
    @Option(help: ArgumentHelp("Seconds to wait for each reply (and CONNACK) the recording had.", valueName: "seconds"))
    var replyTimeout: Double = 5
    @Flag(help: "Compare only: do not store the replay's traffic (no findings are compared).") var noStore = false
    @Flag(help: "Print one JSON document instead of the summary.") var json = false
    @Option(help: ArgumentHelp("Also write JUnit XML: a test case per session step.", valueName: "file")) var junit: String?
    @Flag(help: "Show tokens and passwords (masked by default).") var showSecrets = false

    func validate() throws {
        if all != sessions.isEmpty { throw ValidationError(all ? "give session ids or --all, not both" : "give session ids or --all") }
        guard Self.httpTarget(targetHttp) != nil else { throw ValidationError("--target-http takes http://host:port") }
        if let targetMqtt, Lab.hostPort(targetMqtt) == nil { throw ValidationError("--target-mqtt takes host:port") }
        guard Pacing(pace) != nil else { throw ValidationError("--pace is original, max or N× (e.g. 2x)") }
        guard (1...1000).contains(concurrency) else { throw ValidationError("--concurrency is 1…1000") }
        for s in sets where !s.contains("=") { throw ValidationError("--set takes NAME=VALUE (got '\(s)')") }
        for i in ignores where JSONPathPattern(i) == nil { throw ValidationError("--ignore: not a JSON path: '\(i)'") }
        guard replyTimeout > 0 else { throw ValidationError("--reply-timeout must be positive") }
    }

    static func httpTarget(_ s: String) -> (String, Int)? {
        guard let url = URL(string: s), url.scheme == "http", let host = url.host, !host.isEmpty else { return nil }
        return (host, url.port ?? 80)
    }

    func run() throws {
        // The JUnit file's folder is checked before anything runs; a replay that cannot run still writes one.
        if let junit {
            let folder = URL(fileURLWithPath: junit).deletingLastPathComponent().path
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw Failure("--junit \(junit): no such folder \(folder)")
            }
            guard FileManager.default.isWritableFile(atPath: folder) else { throw Failure("--junit \(junit): cannot write in \(folder)") }
        }
        do {
            try replay()
        } catch let error where !(error is ExitCode) {
            if let junit { try? ReplayOutput.junitError(ErrorText.describe(error)).write(toFile: junit, atomically: true, encoding: .utf8) }
            throw error
        }
    }

    func replay() throws {
        let db = try database.openExisting()
        let (host, port) = Self.httpTarget(targetHttp)!
        var options = ReplayOptions()
        options.pacing = Pacing(pace)!
        options.verbatim = verbatim
        options.replyTimeout = replyTimeout
        options.ignore = ignores.compactMap(JSONPathPattern.init)
        for s in sets {
            let eq = s.firstIndex(of: "=")!
            options.overrides[String(s[..<eq])] = String(s[s.index(after: eq)...])
        }
        let runner = ReplayRunner(
            database: db, target: ReplayTarget(httpHost: host, httpPort: port, mqtt: targetMqtt.flatMap(Lab.hostPort)),
            options: options, concurrency: concurrency, toolVersion: PilotTraceVersion.string, record: !noStore)
        let report: ReplayReport
        do {
            let ids = all ? try db.replayableSessions().map(\.id) : sessions
            guard !ids.isEmpty else { throw ReplayError("no stored sessions to replay in \(db.path)") }
            let loaded = try runner.load(ids)
            try runner.preflight(loaded)
            for note in Set(loaded.flatMap(\.plan.notes)).sorted() { warn("note: \(note)") }
            report = try runner.run(loaded)
        } catch {
            throw Failure(ErrorText.describe(error))
        }
        var verdicts = report.verdicts
        if !showSecrets {
            for i in verdicts.indices {
                for j in verdicts[i].variables.indices {
                    verdicts[i].variables[j].recorded = "***"
                    if verdicts[i].variables[j].replayed != nil { verdicts[i].variables[j].replayed = "***" }
                }
            }
        }
        let p50 = report.latencyPercentile(50), p99 = report.latencyPercentile(99)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            struct Document: Encodable {
                var target_http: String
                var target_mqtt: String?
                var pace: String
                var concurrency: Int
                var sessions: [SessionVerdict]
                var regressions: Int
                var replay_seconds: Double
                var sessions_per_second: Double
                var step_latency_p50: Double?
                var step_latency_p99: Double?
            }
            let doc = Document(
                target_http: targetHttp, target_mqtt: targetMqtt, pace: Pacing(pace)!.description, concurrency: concurrency,
                sessions: verdicts, regressions: report.regressions, replay_seconds: report.replaySeconds,
                sessions_per_second: report.sessionsPerSecond, step_latency_p50: p50, step_latency_p99: p99)
            print(String(decoding: try encoder.encode(doc), as: UTF8.self))
        } else {
            printText(ReplayOutput.text(verdicts, showSecrets: showSecrets), terminator: "")
            let rate = String(format: "%.1f", report.sessionsPerSecond)
            let latency = p50.map { String(format: "step latency p50 %.1f ms, p99 %.1f ms", $0 * 1000, (p99 ?? $0) * 1000) } ?? "no step latencies"
            print(
                "\(verdicts.count) session(s) replayed against \(targetHttp) in \(String(format: "%.1f", report.replaySeconds)) s (\(rate) sessions/s, \(latency)): \(report.regressions == 0 ? "no regression" : "\(report.regressions) regressed")"
            )
        }
        // The WAL goes into the file: what the command stored is one file to copy or share.
        do { try db.close() } catch { warn("warning: \(ErrorText.describe(error))") }
        if let junit {
            do {
                try ReplayOutput.junit(verdicts).write(toFile: junit, atomically: true, encoding: .utf8)
            } catch {
                throw Failure("cannot write \(junit)", error)
            }
        }
        if report.regressions > 0 { throw ExitCode(ExitStatus.findings) }
    }
}

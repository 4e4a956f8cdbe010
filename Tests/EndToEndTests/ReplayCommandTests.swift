import Foundation
import PilotTraceTestSupport
import PilotTraceWire
import Testing

/// A `lab cloud` for a replay to aim at (its own mosquitto on an ephemeral port), logging its requests' token
/// fingerprints.
final class ReplayTargetCloud {
    let process: Process
    let http: String
    let mqtt: String
    let requestLog: String
    let dir: URL

    init(_ arguments: [String] = []) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let ready = dir.appendingPathComponent("ready").path
        requestLog = dir.appendingPathComponent("requests.jsonl").path
        let log = dir.appendingPathComponent("cloud.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process = try LabRun.start(
            [
                "lab", "cloud", "--http-listen", "127.0.0.1:0", "--mqtt-listen", "0", "--ready-file", ready,
                "--request-log", requestLog,
            ] + arguments, stderr: try FileHandle(forWritingTo: log))
        guard let lines = LabRun.waitForFile(ready)?.split(separator: "\n"), lines.count == 2 else {
            LabRun.stop(process)
            throw LabRun.Failure(description: "lab cloud did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
        http = String(lines[0])
        mqtt = String(lines[1].dropFirst("tcp://".count))
    }

    deinit { LabRun.stop(process) }

    /// The request log's lines.
    var requests: [[String: Any]] {
        ((try? String(contentsOfFile: requestLog, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

/// Issue 7: `pilottrace replay` against the lab cloud (needs mosquitto; no root: nothing is captured, the replay
/// records its own traffic).
@Suite(.serialized) struct ReplayCommandTests {
    static var canRun: Bool { TestPaths.which("mosquitto") != nil && TestPaths.which("mosquitto_passwd") != nil }

    /// A fresh database holding the analysis of `capture` (from Captures/).
    static func database(_ captures: String...) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-replay-db-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let db = dir.appendingPathComponent("db.sqlite").path
        for c in captures {
            let r = try pilottrace("analyze", "--db", db, TestPaths.captures.appendingPathComponent(c).path)
            #expect(r.status == 0, "\(r.stderr)")
        }
        return db
    }

    static func replay(_ db: String, _ cloud: ReplayTargetCloud, _ extra: [String]) throws -> (ProcessResult, [String: Any]) {
        let r = try pilottrace(["replay", "--db", db, "--target-http", cloud.http, "--target-mqtt", cloud.mqtt, "--json"] + extra)
        let json = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        return (r, json)
    }

    static func fingerprint(_ token: String) -> String {
        var h = SHA256()
        h.update(Array(token.utf8))
        return h.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    @Test(.enabled(if: ReplayCommandTests.canRun, "replay tests need mosquitto (scripts/bootstrap installs it)"))
    func theRecordedLabSessionsReplayAgainstAFreshLabCloudWithoutRegression() throws {
        let db = try Self.database("lab-clean-login.pcapng", "lab-expired-token.pcapng", "lab-two-devices.pcapng")
        let cloud = try ReplayTargetCloud()
        let (r, json) = try Self.replay(db, cloud, ["--all", "--pace", "4x"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: db + "-wal"), "the replay's rows were checkpointed into the file")
        let sessions = json["sessions"] as? [[String: Any]] ?? []
        #expect(sessions.count == 4)
        for s in sessions {
            #expect(s["regressed"] as? Bool == false, "\(s)")
            #expect(s["new_findings"] as? [String] == [])
            let steps = s["steps"] as? [[String: Any]] ?? []
            #expect(steps.count >= 12)
            #expect(steps.allSatisfy { $0["outcome"] as? String == "matched" }, "\(steps.filter { $0["outcome"] as? String != "matched" })")
            // The replay's own traffic is a stored session with the documented steps.
            let replayed = try #require(s["replay_session"] as? Int)
            let timeline = try pilottrace("timeline", String(replayed), "--db", db, "--json")
            let stored = ((try JSONSerialization.jsonObject(with: Data(timeline.stdout.utf8)) as? [String: Any])?["sessions"] as? [[String: Any]])?.first
            #expect(stored?["state"] as? String == "offline")
            let events = stored.map(LabRun.steps) ?? []
            for step in ["login", "mqtt-connect", "mqtt-connack", "mqtt-subscribe", "update-topo", "status-reply", "mqtt-disconnect"] {
                #expect(events.contains(step), "replay session \(replayed): missing \(step) in \(events)")
            }
        }
        // Secrets stay masked in the output.
        #expect(!r.stdout.contains("pilot123"))
        #expect(!r.stdout.contains("eyJ"))
    }

    @Test(.enabled(if: ReplayCommandTests.canRun, "replay tests need mosquitto (scripts/bootstrap installs it)"))
    func theReplaysLaterRequestsCarryTheTokenTheTargetIssued() throws {
        let db = try Self.database("lab-clean-login.pcapng")
        let cloud = try ReplayTargetCloud()
        let (r, json) = try Self.replay(db, cloud, ["1", "--pace", "max", "--show-secrets"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let variables = (json["sessions"] as? [[String: Any]])?.first?["variables"] as? [[String: Any]] ?? []
        let token = try #require(variables.first { $0["name"] as? String == "access_token" })
        #expect(token["rewritten"] as? Bool == true, "\(token)")
        let recorded = try #require(token["recorded"] as? String), replayed = try #require(token["replayed"] as? String)
        // From the target's side: its login issued a token, and every later request carried exactly that one, not the
        // recorded one.
        let requests = cloud.requests
        let issued = try #require(requests.first { $0["path"] as? String == "/manage/api/v1/login" }?["issued"] as? String)
        #expect(issued == Self.fingerprint(replayed))
        #expect(issued != Self.fingerprint(recorded))
        let later = requests.filter { $0["token"] != nil }
        #expect(
            later.map { $0["path"] as? String ?? "" } == [
                "/manage/api/v1/workspaces/current", "/manage/api/v1/users/current",
                "/manage/api/v1/workspaces/e3dea0f5-37f2-4d79-ae58-490af3228069/devices/topologies",
            ])
        #expect(later.allSatisfy { $0["token"] as? String == issued }, "\(requests)")
        #expect(later.allSatisfy { $0["status"] as? Int == 200 })
    }

    @Test(.enabled(if: ReplayCommandTests.canRun, "replay tests need mosquitto (scripts/bootstrap installs it)"))
    func aCloudThatStopsAnsweringStatusIsARegressionNamed() throws {
        let db = try Self.database("lab-clean-login.pcapng")
        let cloud = try ReplayTargetCloud(["--fault", "no-status-reply"])
        let junit = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString).xml").path
        let (r, json) = try Self.replay(db, cloud, ["1", "--pace", "max", "--junit", junit])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        let session = try #require((json["sessions"] as? [[String: Any]])?.first)
        #expect(session["regressed"] as? Bool == true)
        #expect((session["new_findings"] as? [String] ?? []).contains("status-reply-missing"))
        let steps = session["steps"] as? [[String: Any]] ?? []
        let status = steps.filter { ($0["name"] as? String ?? "").contains("/status (update_topo)") }
        #expect(status.count == 2)
        #expect(status.allSatisfy { $0["outcome"] as? String == "missing" }, "\(status)")
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<testcase classname=\"replay.session1\" name=\"07 PUBLISH sys/product/5YSZL260021E9A/status (update_topo)\""))
        #expect(xml.contains("new findings: status-reply-missing"))
        // The readable summary names the regression too.
        let text = try pilottrace(
            "replay", "1", "--db", db, "--target-http", cloud.http, "--target-mqtt", cloud.mqtt, "--pace", "max",
            "--reply-timeout", "1", "--no-store")
        #expect(text.status == 1)
        #expect(text.stdout.contains("REGRESSED"))
        #expect(text.stdout.contains("MISSING # 7 PUBLISH sys/product/5YSZL260021E9A/status (update_topo)"), "\(text.stdout)")
    }

    @Test func aClosedPortCannotRunAndNothingIsWritten() throws {
        let db = try Self.database("lab-clean-login.pcapng")
        let before = try LabRun.sessions(db).count
        // A port nothing listens on: bind one, note it, close it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        close(fd)
        let r = try pilottrace("replay", "1", "--db", db, "--target-http", "http://127.0.0.1:\(port)", "--target-mqtt", "127.0.0.1:\(port)")
        #expect(r.status == 2)
        #expect(r.stderr.contains("does not answer (connection refused); nothing was replayed or stored"), "\(r.stderr)")
        #expect(try LabRun.sessions(db).count == before)
        // An unknown session cannot run either.
        let unknown = try pilottrace("replay", "99", "--db", db, "--target-http", "http://127.0.0.1:\(port)")
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("no session 99"), "\(unknown.stderr)")
    }

    /// 50 different stored sessions (a generated capture: each device its own serial and credentials) replayed at
    /// once; `--set` gives them the lab cloud's login.
    @Test(.enabled(if: ReplayCommandTests.canRun, "replay tests need mosquitto (scripts/bootstrap installs it)"))
    func fiftySessionsAtOnceAllReplayWithoutRegression() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-replay-50-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let capture = dir.appendingPathComponent("fifty.pcap").path, db = dir.appendingPathComponent("db.sqlite").path
        #expect(try pilottrace("lab", "generate", "--devices", "50", "--duration", "4", "--noise", "0", "--out", capture).status == 0)
        #expect(try pilottrace("analyze", "--db", db, capture).status == 0)
        let cloud = try ReplayTargetCloud()
        let (r, json) = try Self.replay(
            db, cloud,
            [
                "--all", "--concurrency", "50", "--pace", "max", "--set", "username=pilot",
                "--set", "password=pilot123",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        let sessions = json["sessions"] as? [[String: Any]] ?? []
        #expect(sessions.count == 50)
        #expect(Set(sessions.compactMap { $0["gateway_sn"] as? String }).count == 50)
        #expect(sessions.allSatisfy { $0["regressed"] as? Bool == false && ($0["replay_session"] as? Int) != nil })
        let steps = sessions.flatMap { $0["steps"] as? [[String: Any]] ?? [] }
        #expect(steps.allSatisfy { $0["outcome"] as? String != "missing" })
        print(
            String(
                format: "replay load: 50 sessions, %.1f sessions/s, step latency p50 %.1f ms, p99 %.1f ms (%d steps)",
                json["sessions_per_second"] as? Double ?? 0, (json["step_latency_p50"] as? Double ?? 0) * 1000,
                (json["step_latency_p99"] as? Double ?? 0) * 1000, steps.count))
    }
}

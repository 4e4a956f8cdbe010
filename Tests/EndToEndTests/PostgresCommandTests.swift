import Foundation
import PilotTraceTestSupport
import Synchronization
import Testing

/// Every command on a PostgreSQL database (`--db postgresql://…`), against a private cluster the tests start
/// (PostgresServer: initdb in a temporary folder, a free loopback port), compared with the same commands on SQLite.
@Suite(.enabled(if: PostgresServer.isAvailable, "needs PostgreSQL's server binaries and root (scripts/bootstrap installs postgresql)"))
struct PostgresCommandTests {
    /// State, gateway, steps and findings of every session, as `timeline --json` gives them: what must not depend
    /// on the engine.
    func picture(_ db: String) throws -> [String] {
        let r = try pilottrace("timeline", "--db", db, "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return (doc["sessions"] as? [[String: Any]] ?? []).map { s in
            let steps = (s["events"] as? [[String: Any]] ?? []).map { "\($0["step"] as? String ?? "?")@\($0["first_frame"] as? Int ?? 0)" }
            let rules = (s["deviations"] as? [[String: Any]] ?? []).map { $0["rule"] as? String ?? "?" }.sorted()
            return "\(s["state"] as? String ?? "?") \(s["gateway_sn"] as? String ?? "-") \(s["start"] as? String ?? "") \(steps) \(rules)"
        }.sorted()
    }

    func sessionIDs(_ db: String) throws -> [Int] {
        let r = try pilottrace("sessions", "--db", db, "--json")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return (doc["sessions"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
    }

    static let captures = ["lab-clean-login.pcapng", "lab-restart.pcapng", "lab-wrong-password-retries.pcapng", "pilot2-no-status-reply.pcap"]
        .map { TestPaths.captures.appendingPathComponent($0).path }

    @Test("Four analyses at once into one PostgreSQL database: all exit 0 with positive ids, and the sessions are SQLite's")
    func fourWritersAtOnce() throws {
        let url = try PostgresServer.shared().createDatabase()
        let sqlite = try temporaryDatabase()
        for capture in Self.captures { #expect(try pilottrace("analyze", "--db", sqlite, capture).status == 0) }

        let results = Mutex<[ProcessResult?]>(Array(repeating: nil, count: Self.captures.count))
        DispatchQueue.concurrentPerform(iterations: Self.captures.count) { i in
            let r = try? pilottrace("analyze", "--db", url, Self.captures[i])
            results.withLock { $0[i] = r }
        }
        for (i, r) in results.withLock({ $0 }).enumerated() {
            #expect(r?.status == 0, "writer \(i): \(r?.stderr ?? "did not run")")
            #expect(r?.stdout.contains("Stored in postgresql://postgres@127.0.0.1:") == true, "\(r?.stdout ?? "")")
        }
        let ids = try sessionIDs(url)
        #expect(!ids.isEmpty && ids.allSatisfy { $0 > 0 } && Set(ids).count == ids.count)
        #expect(try picture(url) == (try picture(sqlite)))
        // The other commands read it as they read SQLite.
        for command in [["sessions"], ["deviations"], ["deviations", "--json"], ["report", "--all", "--format", "markdown", "--out", "-"]] {
            let a = try pilottrace(command + ["--db", url]), b = try pilottrace(command + ["--db", sqlite])
            #expect(a.status == 0, "\(command): \(a.stderr)")
            #expect(a.stdout.split(separator: "\n").count == b.stdout.split(separator: "\n").count, "\(command)")
        }
        // Analysing the same capture again replaces it there too.
        #expect(try pilottrace("analyze", "--db", url, Self.captures[0]).status == 0)
        #expect(try picture(url) == (try picture(sqlite)))
    }

    @Test("Ctrl-C in the middle of an analysis into PostgreSQL keeps its sessions and marks it interrupted")
    func interruptedAnalysis() throws {
        let url = try PostgresServer.shared().createDatabase()
        let (process, _) = try analysisUnderWay(into: url)
        #expect(process.isRunning)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        let r = try pilottrace("sessions", "--db", url, "--json")
        #expect(r.stdout.contains("\"state\" : \"interrupted\""))
        #expect(r.stdout.contains("\"state\" : \"incomplete\""))
        #expect(try pilottrace("analyze", "--db", url, Self.captures[0]).status == 0)
        #expect(try sessionIDs(url).allSatisfy { $0 > 0 })
    }

    @Test(
        "A capture point pair written at once by two processes into PostgreSQL yields the whole capture's sessions",
        .enabled(if: TestPaths.which("tcpdump") != nil, "splits the capture with tcpdump (scripts/bootstrap installs it)"))
    func aCapturePointPairWrittenAtOnce() throws {
        let url = try PostgresServer.shared().createDatabase()
        let (whole, http, mqtt) = try capturePointPair(devices: 30)
        let reference = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", reference, whole).status == 0)

        let results = Mutex<[ProcessResult?]>([nil, nil])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = try? pilottrace("analyze", "--db", url, "--site", i == 0 ? "web" : "broker", i == 0 ? http : mqtt)
            results.withLock { $0[i] = r }
        }
        for r in results.withLock({ $0 }) { #expect(r?.status == 0, "\(r?.stderr ?? "did not run")") }
        // Frames differ (each side's file numbers its own) and so may the start's last microsecond (the stitched session
        // starts at its HTTP side's first step, the whole capture's session at the same step as the tracker rounds it).
        func withoutFrames(_ p: [String]) -> [String] {
            p.map { $0.replacing(/@\d+/, with: "").replacing(/\s\d{4}-\d\d-\d\dT[0-9:.]+Z/, with: "") }.sorted()
        }
        #expect(withoutFrames(try picture(url)) == withoutFrames(try picture(reference)))
        #expect(try sessionIDs(url).count == 30)
    }

    @Test("An unreachable server, a wrong password or another application's database is exit 2, the password never shown")
    func badDatabases() throws {
        let server = try PostgresServer.shared()
        let capture = Self.captures[0]
        // Nothing listens on this port.
        let closed = "postgresql://pilot:s3cret-pw@127.0.0.1:\(try freeLoopbackPort())/nothing"
        for command in [["analyze", capture], ["sessions"], ["timeline"], ["deviations"], ["report", "--all", "--out", "-"]] {
            let r = try pilottrace(command + ["--db", closed])
            #expect(r.status == 2, "\(command): \(r.stderr)")
            #expect(r.stderr.hasPrefix("error: postgresql://pilot:***@127.0.0.1:"), "\(command): \(r.stderr)")
            #expect(!r.stderr.contains("s3cret-pw") && !r.stdout.contains("s3cret-pw"))
        }
        // A role that must give its password, given a wrong one.
        let role = "pilot_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try server.psql("CREATE ROLE \(role) LOGIN PASSWORD 'right-pw'")
        let db = try server.createDatabase()
        let name = try #require(db.split(separator: "/").last.map(String.init))
        let wrong = server.url(database: name, user: role, password: "wrong-pw")
        let r = try pilottrace("sessions", "--db", wrong)
        #expect(r.status == 2)
        #expect(!r.stderr.contains("wrong-pw"), "\(r.stderr)")
        #expect(r.stderr.contains("***"))
        // Another application's tables: refused, left as they were.
        let other = try server.createDatabase()
        let otherName = try #require(other.split(separator: "/").last.map(String.init))
        _ = try server.psql("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('x');", database: otherName)
        for command in [["analyze", capture], ["sessions"]] {
            let r = try pilottrace(command + ["--db", other])
            #expect(r.status == 2, "\(command): \(r.stderr)")
            #expect(r.stderr.contains("did not create"), "\(r.stderr)")
        }
        #expect(
            try server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database: otherName)
                .trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        // An empty database is not created by a query.
        let empty = try server.createDatabase()
        #expect(try pilottrace("sessions", "--db", empty).status == 2)
        #expect(try pilottrace("sessions", "--db", empty).stderr.contains("no pilottrace data yet"))
    }

    @Test(
        "replay reads its sessions from PostgreSQL and stores the replay there",
        .enabled(if: ReplayCommandTests.canRun, "replay tests need mosquitto (scripts/bootstrap installs it)"))
    func replayOnPostgres() throws {
        let url = try PostgresServer.shared().createDatabase()
        #expect(try pilottrace("analyze", "--db", url, Self.captures[0]).status == 0)
        let cloud = try ReplayTargetCloud()
        let (r, json) = try ReplayCommandTests.replay(url, cloud, ["--all", "--pace", "max"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let sessions = json["sessions"] as? [[String: Any]] ?? []
        #expect(sessions.count == 1)
        #expect(sessions.first?["regressed"] as? Bool == false)
        let replayed = try #require(sessions.first?["replay_session"] as? Int)
        let timeline = try pilottrace("timeline", String(replayed), "--db", url)
        #expect(timeline.stdout.contains("mqtt-connack"), "\(timeline.stdout)\(timeline.stderr)")
        #expect(try pilottrace("report", String(replayed), "--db", url, "--format", "json", "--out", "-").stdout.contains("\"replay_steps\""))
    }

    @Test(
        "A live capture stores its picture into PostgreSQL every second and its sessions at the end",
        .enabled(if: CaptureCommandTests.canCapture, "live capture needs root and mosquitto/mosquitto_pub (scripts/bootstrap installs them)"))
    func liveCaptureOnPostgres() throws {
        let url = try PostgresServer.shared().createDatabase()
        let broker = try LoopbackBroker()
        let port = broker.port
        #expect(try broker.waitUntilListening())
        let capture = Process()
        capture.executableURL = TestPaths.binary
        capture.arguments = ["capture", "--interface", "lo", "--filter", "tcp port \(port)", "--duration", "4", "--db", url, "--site", "broker-1"]
        let out = Pipe()
        capture.standardOutput = out
        capture.standardError = FileHandle.nullDevice
        try capture.run()
        // The capture has begun its analysis once the database holds it.
        #expect(try waitUntil(timeout: 10, poll: 0.1) { try pilottrace("sessions", "--db", url).status == 0 })
        let pub = try publishUpdateTopo(port: port)
        #expect(pub.status == 0)
        // While the capture runs, the session is already in the database.
        #expect(try waitUntil(timeout: 3, poll: 0.2) { try pilottrace("sessions", "--db", url).stdout.contains("5YSZL260021E9A") })
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        capture.waitUntilExit()
        #expect(capture.terminationStatus == 0, "\(output)")
        let sessions = try pilottrace("sessions", "--db", url, "--json").stdout
        #expect(sessions.contains("5YSZL260021E9A"))
        #expect(sessions.contains("\"site\" : \"broker-1\""))
        #expect(sessions.contains("\"state\" : \"complete\""))
    }
}

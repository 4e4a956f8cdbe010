import Foundation
import PilotTraceTestSupport
import Synchronization
import Testing

/// The record many writers share (issue 16), through the binary and real SQLite files: analyses at once, Ctrl-C and
/// kill -9 in the middle of one, read-only files, files that are not pilottrace's.
@Suite struct StoreCommandTests {
    /// `sessions --json` of a database, as objects.
    func sessions(_ db: String) throws -> [[String: Any]] {
        let r = try pilottrace("sessions", "--db", db, "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return try #require(doc["sessions"] as? [[String: Any]])
    }

    /// A folder of its own for a test's files (removed by the system's temporary-file cleaning).
    func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("Four analyses of different captures into one database at once: all exit 0 and store every session, ids positive and unique")
    func fourWritersAtOnce() throws {
        let captures = ["lab-clean-login.pcapng", "lab-restart.pcapng", "lab-wrong-password-retries.pcapng", "pilot2-no-status-reply.pcap"]
            .map { TestPaths.captures.appendingPathComponent($0).path }
        // Each alone, in a database of its own: what the shared one must hold.
        var expected: [String] = []
        for capture in captures {
            let db = try temporaryDatabase()
            #expect(try pilottrace("analyze", "--db", db, capture).status == 0)
            expected += try sessions(db).map { "\($0["gateway_sn"] as? String ?? "-") \($0["state"] as? String ?? "")" }
        }
        #expect(expected.count >= 4)

        // All four at once, three times over (each time replacing the analyses of the time before).
        let shared = try temporaryDatabase()
        for _ in 0..<3 {
            let results = Mutex<[ProcessResult?]>(Array(repeating: nil, count: captures.count))
            DispatchQueue.concurrentPerform(iterations: captures.count) { i in
                let r = try? pilottrace("analyze", "--db", shared, "--site", "writer-\(i)", captures[i])
                results.withLock { $0[i] = r }
            }
            for (i, r) in results.withLock({ $0 }).enumerated() {
                #expect(r?.status == 0, "writer \(i): \(r?.stderr ?? "did not run")")
                #expect(r?.stderr.contains("SQLite") == false)
            }
        }
        let stored = try sessions(shared)
        let ids = stored.compactMap { $0["id"] as? Int }
        #expect(ids.count == stored.count)
        #expect(ids.allSatisfy { $0 > 0 })
        #expect(Set(ids).count == ids.count)
        #expect(stored.map { "\($0["gateway_sn"] as? String ?? "-") \($0["state"] as? String ?? "")" }.sorted() == expected.sorted())
        let analyses = Set(stored.compactMap { ($0["analysis"] as? [String: Any])?["id"] as? Int })
        #expect(analyses.count == captures.count)
        let sites = Set(stored.compactMap { ($0["analysis"] as? [String: Any])?["site"] as? String })
        #expect(sites == Set((0..<captures.count).map { "writer-\($0)" }))
        #expect(stored.allSatisfy { ($0["analysis"] as? [String: Any])?["state"] as? String == "complete" })
        // Several capture points: the listing shows which recorded each session.
        let table = try pilottrace("sessions", "--db", shared)
        #expect(table.stdout.split(separator: "\n").first?.hasSuffix("site") == true)
    }

    @Test(
        "Ctrl-C in the middle of an analysis keeps the sessions finished and in progress, with their findings; the analysis is marked interrupted; the next one gets ordinary ids"
    )
    func interruptedAnalysis() throws {
        let db = try folder().appendingPathComponent("interrupted.sqlite").path
        // Interrupted once sessions are being stored (so some are over and some are still going on).
        let (process, stderr) = try analysisUnderWay(into: db)
        #expect(process.isRunning, "the analysis ended before it could be interrupted")
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 130, "\(message)")
        #expect(message.contains("interrupted (SIGINT while reading)"))

        let stored = try sessions(db)
        #expect(stored.count >= 20 && stored.count < 3_000)
        #expect(stored.contains { $0["state"] as? String == "offline" })
        #expect(stored.contains { $0["state"] as? String == "incomplete" })
        #expect(!stored.contains { $0["state"] as? String == "online" })
        let analysis = try #require(stored.first?["analysis"] as? [String: Any])
        #expect(analysis["state"] as? String == "interrupted")
        #expect(analysis["stop_reason"] as? String == "SIGINT while reading")
        #expect(try pilottrace("sessions", "--db", db).stdout.contains("note: analysis 1"))
        // Findings so far are stored (the lab capture's reconnects give capture-incomplete / link findings at least in
        // the sessions cut off).
        let findings = try pilottrace("deviations", "--db", db, "--json")
        #expect(findings.status == 0)
        #expect(findings.stdout.contains("\"rule\""))

        // The next analysis in that database works as usual.
        let next = try pilottrace("analyze", "--db", db, TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path)
        #expect(next.status == 0, "\(next.stderr)")
        let after = try sessions(db)
        let newIDs = after.compactMap { $0["id"] as? Int }.filter { id in !stored.contains { $0["id"] as? Int == id } }
        #expect(newIDs.count == 1)
        #expect(newIDs.allSatisfy { $0 > 0 && $0 == stored.count + 1 })
    }

    @Test("kill -9 in the middle of an analysis leaves a consistent database whose analysis is visibly unfinished")
    func killedAnalysis() throws {
        let db = try folder().appendingPathComponent("killed.sqlite").path
        let (process, _) = try analysisUnderWay(into: db)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()

        let check = try runProcess("/usr/bin/sqlite3", [db, "PRAGMA integrity_check; PRAGMA foreign_key_check;"])
        #expect(check.stdout == "ok\n", "\(check.stdout)\(check.stderr)")
        let stored = try sessions(db)
        #expect(stored.count >= 20)
        #expect((stored.first?["analysis"] as? [String: Any])?["state"] as? String == "running")
        #expect(try pilottrace("sessions", "--db", db).stdout.contains("has not finished"))
        let next = try pilottrace("analyze", "--db", db, TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try sessions(db).compactMap { $0["id"] as? Int }.allSatisfy { $0 > 0 })
    }

    static let canSwitchUser = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser")

    @Test(
        "A database the user may only read can be queried by every query command, and is not changed",
        .enabled(if: canSwitchUser, "needs root to run the queries as user nobody (runuser)"))
    func readOnlyDatabase() throws {
        let dir = try folder()
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        let db = dir.appendingPathComponent("shared.sqlite").path
        #expect(try pilottrace("analyze", "--db", db, TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path).status == 0)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: db)
        let before = try Data(contentsOf: URL(fileURLWithPath: db))
        #expect(!FileManager.default.fileExists(atPath: db + "-wal"))
        for command in [["sessions"], ["timeline", "1"], ["timeline", "--json"], ["deviations"], ["report", "--all", "--format", "json", "--out", "-"]] {
            let r = try runProcess("/usr/sbin/runuser", ["-u", "nobody", "--", TestPaths.binary.path] + command + ["--db", db])
            #expect(r.status == 0, "\(command): \(r.stderr)")
            #expect(!r.stderr.contains("readonly"), "\(command): \(r.stderr)")
        }
        #expect(try pilottrace("sessions", "--db", db).stdout.contains("5YSZL260021E9A"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == before)
        // Writing is refused in words, not by SQLite's code.
        let write = try runProcess(
            "/usr/sbin/runuser",
            [
                "-u", "nobody", "--", TestPaths.binary.path, "analyze", "--db", db,
                TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path,
            ])
        #expect(write.status == 2)
        #expect(write.stderr.hasPrefix("error: \(db)"), "\(write.stderr)")
    }

    @Test("A --db that is not a pilottrace database is exit 2 with the reason for every command, and is never changed")
    func notAPilotTraceDatabase() throws {
        let dir = try folder()
        let text = dir.appendingPathComponent("notes.txt").path
        try Data("not a database\n".utf8).write(to: URL(fileURLWithPath: text))
        let other = dir.appendingPathComponent("other.sqlite").path
        #expect(try runProcess("/usr/bin/sqlite3", [other, "CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('x');"]).status == 0)
        let corrupt = dir.appendingPathComponent("corrupt.sqlite").path
        var bytes = Data("SQLite format 3\0".utf8)
        bytes.append(Data(repeating: 0xA5, count: 8_176))
        try bytes.write(to: URL(fileURLWithPath: corrupt))
        let capture = TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path
        let commands: [[String]] = [
            ["analyze", capture], ["sessions"], ["timeline"], ["timeline", "1"], ["deviations"], ["report", "--all", "--out", "-"],
            ["replay", "1", "--target-http", "http://127.0.0.1:9"],
        ]
        for db in [text, other, corrupt] {
            let before = try Data(contentsOf: URL(fileURLWithPath: db))
            for command in commands {
                let r = try pilottrace(command + ["--db", db])
                #expect(r.status == 2, "\(command) on \(db): \(r.status) \(r.stderr)")
                #expect(r.stderr.hasPrefix("error: \(db): "), "\(command): \(r.stderr)")
                #expect(r.stderr.split(separator: "\n").count == 1, "\(command): \(r.stderr)")
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == before, "\(db) changed")
            #expect(!FileManager.default.fileExists(atPath: db + "-wal"))
        }
        // Nothing is created when the capture cannot be read.
        let fresh = dir.appendingPathComponent("fresh.sqlite").path
        #expect(try pilottrace("analyze", "--db", fresh, dir.appendingPathComponent("missing.pcap").path).status == 2)
        #expect(!FileManager.default.fileExists(atPath: fresh))
        // A query on a database that does not exist creates none.
        #expect(try pilottrace("sessions", "--db", fresh).status == 2)
        #expect(!FileManager.default.fileExists(atPath: fresh))
    }
}

/// Several capture points, one record: the HTTP side and the MQTT side of the same devices, recorded apart and
/// analyzed at once into one database, end as one session per device, as the whole capture gives.
@Suite struct CapturePointTests {
    /// State, gateway, steps and findings of every session, as `timeline --json` gives them.
    func picture(_ db: String) throws -> [String] {
        let r = try pilottrace("timeline", "--db", db, "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return (doc["sessions"] as? [[String: Any]] ?? []).map { s in
            let steps = (s["events"] as? [[String: Any]] ?? []).map { $0["step"] as? String ?? "?" }
            let rules = (s["deviations"] as? [[String: Any]] ?? []).map { $0["rule"] as? String ?? "?" }.sorted()
            return "\(s["state"] as? String ?? "?") \(s["gateway_sn"] as? String ?? "-") \(steps) \(rules)"
        }
    }

    @Test(
        "An HTTP-side capture and an MQTT-side capture of the same 40 devices, analyzed at once, give the whole capture's sessions",
        .enabled(if: TestPaths.which("tcpdump") != nil, "splits the capture with tcpdump (scripts/bootstrap installs it)"))
    func twoCapturePointsMakeOneRecord() throws {
        let (whole, http, mqtt) = try capturePointPair(devices: 40)

        let reference = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", reference, whole).status == 0)
        let expected = try picture(reference)
        #expect(expected.count == 40)

        // Each side alone is not the whole story: sessions without a gateway, devices without a login.
        let web = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", web, http).status == 0)
        #expect(try picture(web).allSatisfy { $0.contains(" - ") })

        let shared = try temporaryDatabase()
        let results = Mutex<[ProcessResult?]>([nil, nil])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = try? pilottrace("analyze", "--db", shared, "--site", i == 0 ? "web" : "broker", i == 0 ? http : mqtt)
            results.withLock { $0[i] = r }
        }
        for r in results.withLock({ $0 }) { #expect(r?.status == 0, "\(r?.stderr ?? "did not run")") }
        #expect(try picture(shared) == expected)
        let listing = try pilottrace("sessions", "--db", shared)
        #expect(listing.stdout.split(separator: "\n").count == 41)
        let timeline = try pilottrace("timeline", "--db", shared)
        #expect(timeline.stdout.contains("recorded at"))
        #expect(timeline.stdout.contains("web.pcap frames"))
        #expect(timeline.stdout.contains("broker.pcap frame"))
        // A part asked for by its own id says whose part it is.
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(try pilottrace("sessions", "--db", shared, "--json").stdout.utf8)) as? [String: Any])
        let first = try #require((doc["sessions"] as? [[String: Any]])?.first)
        let part = try #require(((first["parts"] as? [[String: Any]])?.first)?["id"] as? Int)
        let owner = try #require(first["id"] as? Int)
        let alone = try pilottrace("timeline", String(part), "--db", shared)
        #expect(alone.status == 0)
        #expect(alone.stdout.contains("the part another capture point recorded of session \(owner)"), "\(alone.stdout)")
        #expect(try pilottrace("timeline", String(part), "--db", shared, "--json").stdout.contains("\"part_of\" : \(owner)"))
    }

    @Test("Stitching is by credentials, then address and time: a device session with neither is left alone")
    func unrelatedSessionsStayApart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-apart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let shared = try temporaryDatabase()
        // The same capture twice would be replaced; two different ones at different times are unrelated.
        #expect(try pilottrace("analyze", "--db", shared, TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path).status == 0)
        #expect(try pilottrace("analyze", "--db", shared, TestPaths.captures.appendingPathComponent("lab-clean-login.pcapng").path).status == 0)
        let r = try pilottrace("timeline", "--db", shared)
        #expect(!r.stdout.contains("recorded at"))
        #expect(try picture(shared).count == 2)
    }
}

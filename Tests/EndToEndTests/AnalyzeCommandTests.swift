import Foundation
import PilotTraceTestSupport
import Testing

/// `analyze`, `sessions` and `timeline` on the project's own captures, through a real SQLite file.
@Suite struct AnalyzeCommandTests {
    let pcap = TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path
    let pcapng = TestPaths.captures.appendingPathComponent("pilot2-login-any.pcapng").path

    func database() throws -> String { try temporaryDatabase() }

    func timelineJSON(_ db: String, _ extra: String...) throws -> [[String: Any]] {
        let r = try runProcess(TestPaths.binary.path, ["timeline", "--db", db, "--json"] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(Set(doc.keys) == ["sessions"])
        return doc["sessions"] as! [[String: Any]]
    }

    @Test(arguments: ["pilot2-login.pcap", "pilot2-login-any.pcapng"])
    func theRecordedLoginHasTheDocumentedStepsInOrder(capture: String) throws {
        let db = try database()
        let r = try pilottrace("analyze", "--db", db, TestPaths.captures.appendingPathComponent(capture).path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("1 Pilot 2 session (1 offline)"))
        #expect(r.stdout.contains("#1  offline    gateway 5YSZL260021E9A (DJI RC Plus), aircraft 1581F5FHD232600D3B4E, 14 steps"))
        let sessions = try timelineJSON(db)
        #expect(sessions.count == 1)
        let s = sessions[0]
        #expect(s["gateway_sn"] as? String == "5YSZL260021E9A")
        #expect(s["state"] as? String == "offline")
        #expect(s["client"] as? String == "127.0.0.1")
        #expect((s["start_epoch"] as? Double ?? 0) > 1.7e9)
        #expect((s["start"] as? String)?.wholeMatch(of: /2026-11-27T\d\d:\d\d:\d\d\.\d{6}Z/) != nil)
        let events = s["events"] as! [[String: Any]]
        #expect(
            events.map { $0["step"] as! String } == [
                "h5-page", "login", "mqtt-credentials", "workspace-info", "mqtt-credentials", "mqtt-connect", "mqtt-connack",
                "mqtt-subscribe", "update-topo", "status-reply", "update-topo", "device-offline", "status-reply", "mqtt-disconnect",
            ])
        #expect(events.map { $0["phase"] as! String }.first == "license")
        let times = events.map { $0["time_epoch"] as! Double }
        #expect(times == times.sorted())
        #expect(events.allSatisfy { $0["ok"] as? Bool == true })
        for e in events {
            #expect(Set(e.keys) == ["time", "time_epoch", "phase", "step", "ok", "latency", "detail", "capture_file", "first_frame", "last_frame"])
            #expect(e["capture_file"] as? String == TestPaths.captures.appendingPathComponent(capture).path)
        }
        let reply = events.first { $0["step"] as? String == "status-reply" }!
        #expect((reply["latency"] as? Double ?? 0) > 0.01)
        #expect(events.first { $0["step"] as? String == "mqtt-connect" }!["latency"] is NSNull)
    }

    @Test("After analyze the database is one file: the WAL was checkpointed into it and removed")
    func theDatabaseIsWholeAfterward() throws {
        let db = try database()
        let r = try pilottrace("analyze", "--db", db, pcap)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: db + "-wal"))
        #expect(try pilottrace("sessions", "--db", db).stdout.contains("5YSZL260021E9A"))
    }

    @Test("--no-store prints the same analysis, says nothing was stored, and creates no database")
    func noStore() throws {
        let folder = URL(fileURLWithPath: try temporaryDatabase()).deletingLastPathComponent()
        let r = try runProcess(TestPaths.binary.path, ["analyze", "--no-store", pcap], in: folder)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Not stored (--no-store).\n"))
        #expect(r.stdout.contains("#1  offline    gateway 5YSZL260021E9A (DJI RC Plus), aircraft 1581F5FHD232600D3B4E, 14 steps"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }

    @Test func analyzingTheSameFileAgainReplacesItsRows() throws {
        let db = try database()
        _ = try pilottrace("analyze", "--db", db, pcap)
        let again = try pilottrace("analyze", "--db", db, pcap)
        #expect(again.status == 0)
        let sessions = try pilottrace("sessions", "--db", db, "--json")
        let list = (try JSONSerialization.jsonObject(with: Data(sessions.stdout.utf8)) as! [String: Any])["sessions"] as! [[String: Any]]
        #expect(list.count == 1)
        #expect(list[0]["events"] == nil)
        // A different capture adds its own session.
        _ = try pilottrace("analyze", "--db", db, pcapng)
        let table = try pilottrace("sessions", "--db", db)
        #expect(table.stdout.split(separator: "\n").count == 3)
        #expect(table.stdout.hasPrefix("id  state    gateway"))
    }

    @Test func timelineOfOneSessionAndErrors() throws {
        let db = try database()
        _ = try pilottrace("analyze", "--db", db, pcap)
        let sessions = try timelineJSON(db)
        let id = sessions[0]["id"] as! Int
        let one = try pilottrace("timeline", "--db", db, String(id))
        #expect(one.status == 0)
        #expect(one.stdout.hasPrefix("Session \(id): gateway 5YSZL260021E9A (DJI RC Plus, 2-119-0), OFFLINE"))
        #expect(one.stdout.contains("status-reply      ok     frame "))
        #expect(one.stdout.contains(" result 0 ["))
        let missing = try pilottrace("timeline", "--db", db, "999999")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("no session 999999"))
        let noDB = try pilottrace("timeline", "--db", "/nonexistent/x.sqlite")
        #expect(noDB.status == 2)
        #expect(noDB.stderr.contains("/nonexistent/x.sqlite: no such database"))
    }

    @Test func profilesInJSONAndYAMLAndABadOne() throws {
        let db = try database()
        let dir = URL(fileURLWithPath: db).deletingLastPathComponent()
        let yaml = dir.appendingPathComponent("p.yaml").path, json = dir.appendingPathComponent("p.json").path
        let bad = dir.appendingPathComponent("bad.yml").path
        try "login: [/manage/api/v1/login]\ntopology: [\"/api/w/*/devices/topologies\"]\n".write(toFile: yaml, atomically: true, encoding: .utf8)
        try #"{"h5_page": ["/pilot-login"]}"#.write(toFile: json, atomically: true, encoding: .utf8)
        try "login: {not: a list}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(try pilottrace("analyze", "--db", db, "--profile", yaml, pcap).status == 0)
        #expect(try pilottrace("analyze", "--db", db, "--profile", json, pcap).status == 0)
        let r = try pilottrace("analyze", "--db", db, "--profile", bad, pcap)
        #expect(r.status == 2)
        #expect(r.stderr.contains("error: \(bad): not a usable profile"))
    }

    @Test func theDatabaseComesFromTheEnvironmentWhenNotGiven() throws {
        let db = try database()
        let p = Process()
        p.executableURL = TestPaths.binary
        p.arguments = ["analyze", pcap]
        p.environment = ProcessInfo.processInfo.environment.merging(["PILOTTRACE_DB": db]) { $1 }
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: db))
    }

    @Test func secretsStayOutOfTheTimeline() throws {
        let db = try database()
        _ = try pilottrace("analyze", "--db", db, pcap)
        let text = try pilottrace("timeline", "--db", db)
        let json = try pilottrace("timeline", "--db", db, "--json")
        for output in [text.stdout, json.stdout] {
            #expect(!output.contains("pilot123"))
            #expect(!output.contains("eyJhbGciOi"))  // the access token
            #expect(!output.contains("d3v1c3-s3cr3t"))
        }
    }

    /// Every public capture analyzes without an error of pilottrace's own; none holds Pilot 2 traffic.
    @Test(.enabled(if: TestPaths.publicCaptures != nil, "../shared/captures/public is absent")) func thePublicCapturesAnalyzeWithoutErrors() throws {
        let files = TestPaths.publicCaptureFiles
        let db = try database()
        var analyzed = 0
        for f in files {
            let r = try pilottrace("analyze", "--db", db, f.path)
            // Exit 1 is allowed only for a corrupt capture, named with its offset.
            if r.status != 0 {
                #expect(r.status == 2 && r.stderr.contains("error: \(f.path)"), "\(f.lastPathComponent): \(r.stderr)")
            } else {
                analyzed += 1
            }
            #expect(!r.stderr.contains("Fatal error"))
        }
        #expect(analyzed > 100)
        let sessions = try pilottrace("sessions", "--db", db, "--json")
        let list = (try JSONSerialization.jsonObject(with: Data(sessions.stdout.utf8)) as! [String: Any])["sessions"] as! [Any]
        #expect(list.isEmpty)
    }

    @Test func severalFilesAreReadInTimeOrderWithOverlapsWarnedAbout() throws {
        let early = TestPaths.captures.appendingPathComponent("lab-clean-login.pcapng").path
        let late = TestPaths.captures.appendingPathComponent("lab-two-devices.pcapng").path
        // Given late first: read early first, and said so.
        let r = try pilottrace("analyze", "--no-store", late, early)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("note: reading the captures in time order (by first packet): \(early), \(late)"))
        #expect(r.stdout.contains("Analyzed \(early), \(late):"))
        #expect(r.stdout.contains("3 Pilot 2 sessions (3 offline)"))
        #expect(!r.stderr.contains("overlaps"))
        // The same recording twice overlaps itself.
        let copy = try temporaryFile("copy.pcapng", Array(try Data(contentsOf: URL(fileURLWithPath: early))))
        let twice = try pilottrace("analyze", "--no-store", early, copy)
        #expect(twice.stderr.contains("warning: \(copy) overlaps \(early) in time"))
    }

    @Test func timeGoingBackwardsInsideAFileIsWarnedAbout() throws {
        // Two records, the second 90 s before the first (pcap, microseconds).
        var bytes: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 1, 0, 0, 0]
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
        for sec: UInt32 in [1_700_000_100, 1_700_000_010] {
            bytes += le32(sec) + le32(0) + le32(14) + le32(14) + [UInt8](repeating: 0, count: 12) + [0x08, 0x06]
        }
        let file = try temporaryFile("backwards.pcap", bytes)
        let r = try pilottrace("analyze", "--no-store", file)
        #expect(r.stderr.contains("warning: \(file): time goes backwards 1 time (the largest step back is 90.000000 s, at record 2)"))
    }
}

import Foundation
import PilotTraceTestSupport
import Testing

/// One lab run on loopback: `lab cloud` (with its own mosquitto), `capture` on lo writing pcapng into SQLite as it
/// happens, and `lab pilot`; then the written pcapng analyzed again offline.
struct LabRun {
    let dir: URL
    var liveDB: String { dir.appendingPathComponent("live.sqlite").path }
    var fileDB: String { dir.appendingPathComponent("file.sqlite").path }
    var pcap: String { dir.appendingPathComponent("live.pcapng").path }
    var pilot: ProcessResult
    var capture: String
    var cloudLog: String

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Runs the scenario; `tail` is how long the capture goes on after the pilot exits.
    /// `meanwhile`, if given, runs `after` seconds into the pilot's run with the live database's path.
    static func run(
        cloud: [String] = [], pilot: [String], tail: Double = 0.5, after: Double = 0,
        meanwhile: ((String) -> Void)? = nil
    ) throws -> LabRun {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-lab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let ready = dir.appendingPathComponent("ready").path
        let cloudLog = dir.appendingPathComponent("cloud.log")
        FileManager.default.createFile(atPath: cloudLog.path, contents: nil)
        let cloudProcess = try start(
            ["lab", "cloud", "--http-listen", "127.0.0.1:0", "--mqtt-listen", "0", "--ready-file", ready] + cloud,
            stderr: try FileHandle(forWritingTo: cloudLog))
        defer { stop(cloudProcess) }
        guard let lines = waitForFile(ready)?.split(separator: "\n"), lines.count == 2,
            let httpPort = lines[0].split(separator: ":").last, let mqttPort = lines[1].split(separator: ":").last
        else {
            throw Failure(description: "lab cloud did not start: \((try? String(contentsOf: cloudLog, encoding: .utf8)) ?? "")")
        }
        let captureErr = dir.appendingPathComponent("capture.err")
        FileManager.default.createFile(atPath: captureErr.path, contents: nil)
        let out = Pipe()
        let captureProcess = try start(
            [
                "capture", "--interface", "lo", "--filter", "tcp port \(httpPort) or tcp port \(mqttPort)",
                "--write", dir.appendingPathComponent("live.pcapng").path,
                "--db", dir.appendingPathComponent("live.sqlite").path,
            ],
            stdout: out, stderr: try FileHandle(forWritingTo: captureErr))
        defer { stop(captureProcess) }
        for _ in 0..<100 where !((try? String(contentsOf: captureErr, encoding: .utf8)) ?? "").contains("capturing on") { usleep(50_000) }
        usleep(300_000)
        let pilotArguments = ["lab", "pilot", "--cloud", "http://127.0.0.1:\(httpPort)"] + pilot
        let pilotResult: ProcessResult
        if let meanwhile {
            final class Box: @unchecked Sendable { var result: ProcessResult? }
            let box = Box()
            let done = DispatchSemaphore(value: 0)
            let worker = Thread {
                box.result = try? runProcess(TestPaths.binary.path, pilotArguments)
                done.signal()
            }
            worker.start()
            usleep(UInt32(after * 1_000_000))
            meanwhile(dir.appendingPathComponent("live.sqlite").path)
            done.wait()
            guard let result = box.result else { throw Failure(description: "lab pilot did not run") }
            pilotResult = result
        } else {
            pilotResult = try runProcess(TestPaths.binary.path, pilotArguments)
        }
        usleep(UInt32(tail * 1_000_000))
        captureProcess.interrupt()
        let captured = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        captureProcess.waitUntilExit()
        guard captureProcess.terminationStatus == 0 else {
            throw Failure(description: "capture failed: \(captured) \((try? String(contentsOf: captureErr, encoding: .utf8)) ?? "")")
        }
        stop(cloudProcess)
        // The cloud stopped everything it started: nothing listens on its ports any more.
        #expect(!listening(Int(httpPort)!), "lab cloud's HTTP port still open")
        #expect(!listening(Int(mqttPort)!), "lab cloud's mosquitto still running")
        return LabRun(
            dir: dir, pilot: pilotResult, capture: captured,
            cloudLog: (try? String(contentsOf: cloudLog, encoding: .utf8)) ?? "")
    }

    static func start(_ arguments: [String], stdout: Any? = nil, stderr: FileHandle) throws -> Process {
        let p = Process()
        p.executableURL = TestPaths.binary
        p.arguments = arguments
        p.standardOutput = stdout ?? FileHandle.nullDevice
        p.standardError = stderr
        try p.run()
        return p
    }

    static func stop(_ p: Process) {
        guard p.isRunning else { return }
        p.terminate()
        for _ in 0..<200 where p.isRunning { usleep(50_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func listening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    static func waitForFile(_ path: String) -> String? {
        for _ in 0..<200 {
            if let s = try? String(contentsOfFile: path, encoding: .utf8), s.hasSuffix("\n") { return s }
            usleep(50_000)
        }
        return nil
    }

    /// The sessions stored in `db` (the `timeline --json` contract).
    static func sessions(_ db: String) throws -> [[String: Any]] {
        let r = try pilottrace("timeline", "--db", db, "--json")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return json?["sessions"] as? [[String: Any]] ?? []
    }

    /// Finding rule ids in `db`, sorted.
    static func findings(_ db: String) throws -> [String] {
        let r = try pilottrace("deviations", "--db", db, "--json")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return ((json?["deviations"] as? [[String: Any]]) ?? []).compactMap { $0["rule"] as? String }.sorted()
    }

    static func steps(_ session: [String: Any]) -> [String] {
        ((session["events"] as? [[String: Any]]) ?? []).compactMap { $0["step"] as? String }
    }

    /// Analyzes the written pcapng and checks it says exactly what the live run stored.
    func checkFileAgreesWithLive() throws {
        let analyzed = try pilottrace("analyze", "--db", fileDB, pcap)
        #expect(analyzed.status == 0, "\(analyzed.stderr)")
        for command in ["timeline", "deviations"] {
            let live = try pilottrace(command, "--db", liveDB), file = try pilottrace(command, "--db", fileDB)
            #expect(live.stdout == file.stdout, "\(command) differs between the live run and its pcapng:\n\(live.stdout)\n---\n\(file.stdout)")
        }
    }
}

/// Issue 6's scenarios end to end: real mosquitto, the lab cloud, live capture on lo, the lab pilot (needs root).
@Suite(.serialized) struct LabScenarioTests {
    static var canRun: Bool {
        getuid() == 0 && TestPaths.which("mosquitto") != nil && TestPaths.which("mosquitto_passwd") != nil
    }

    static let documentedSteps = [
        "h5-page", "login", "mqtt-credentials", "workspace-info", "mqtt-connect", "mqtt-connack",
        "mqtt-subscribe", "update-topo", "status-reply", "topology-fetch", "device-offline", "mqtt-disconnect",
    ]

    @Test(.enabled(if: LabScenarioTests.canRun, "lab scenarios need root (live capture) and mosquitto (scripts/bootstrap installs it)"))
    func aCleanLoginIsStoredWhileLiveAndTheFileAgrees() throws {
        // The pilot stays online 6 s: half-way through, another process reads the session from the live database.
        var during = ""
        let run = try LabRun.run(pilot: ["--online", "6"], after: 4) { db in during = (try? pilottrace("timeline", "--db", db))?.stdout ?? "" }
        #expect(run.pilot.status == 0, "\(run.pilot.stderr)")
        #expect(during.contains("gateway 5YSZL260021E9A"), "no session visible while live: \(during)")
        #expect(during.contains("ONLINE"), "the session was not online mid-capture: \(during)")
        #expect(!during.contains("mqtt-disconnect"))
        let sessions = try LabRun.sessions(run.liveDB)
        #expect(sessions.count == 1)
        #expect(sessions.first?["state"] as? String == "offline")
        let steps = sessions.first.map(LabRun.steps) ?? []
        for step in Self.documentedSteps { #expect(steps.contains(step), "missing \(step) in \(steps)") }
        #expect(try LabRun.findings(run.liveDB) == ["cleartext-credentials"])
        #expect(run.capture.contains(" 0 dropped"))
        try run.checkFileAgreesWithLive()
    }

    struct Scenario: CustomTestStringConvertible, Sendable {
        var name: String
        var cloud: [String] = []
        var pilot: [String]
        var tail = 0.5
        var pilotSucceeds = true
        var state: String
        var findings: [String]
        var steps: [String] = []
        var testDescription: String { name }
    }

    static let scenarios: [Scenario] = [
        Scenario(
            name: "expired stored token: 401, then a new login", pilot: ["--online", "1", "--fault", "expired-token"],
            state: "offline", findings: ["cleartext-credentials"], steps: ["token-rejected", "login"]),
        Scenario(
            name: "the cloud accepts an expired token", cloud: ["--fault", "accept-expired-tokens"],
            pilot: ["--online", "1", "--fault", "expired-token"], state: "offline",
            findings: [
                "cleartext-credentials", "expired-token-accepted", "expired-token-accepted", "expired-token-accepted",
                "expired-token-accepted",
            ]),
        Scenario(
            name: "no status_reply", cloud: ["--fault", "no-status-reply"], pilot: ["--online", "1"], tail: 4, pilotSucceeds: false,
            state: "failed",
            findings: [
                "cleartext-credentials", "status-reply-missing", "status-reply-missing", "status-reply-missing",
                "status-retransmitted", "status-retransmitted",
            ]),
        Scenario(
            name: "status_reply with the wrong tid", cloud: ["--fault", "wrong-tid"], pilot: ["--online", "1", "--status-tries", "1"],
            pilotSucceeds: false, state: "failed", findings: ["cleartext-credentials", "status-reply-mismatch"]),
        Scenario(
            name: "anonymous login", cloud: ["--fault", "allow-anonymous"], pilot: ["--online", "1", "--fault", "anonymous"],
            state: "offline", findings: ["cleartext-credentials", "mqtt-anonymous-login"]),
        Scenario(
            name: "wrong MQTT password", pilot: ["--fault", "wrong-password"], pilotSucceeds: false, state: "failed",
            findings: ["cleartext-credentials", "mqtt-connect-refused", "mqtt-credentials-mismatch"], steps: ["mqtt-connack"]),
        Scenario(
            name: "update_topo on the wrong topic", pilot: ["--online", "1", "--fault", "wrong-status-topic", "--status-tries", "1"],
            pilotSucceeds: false, state: "failed", findings: ["cleartext-credentials", "status-topic-wrong"]),
        Scenario(
            name: "topology request without a token", pilot: ["--online", "1", "--fault", "missing-token"], state: "offline",
            findings: ["cleartext-credentials", "token-missing"]),
        Scenario(
            name: "MQTT 5, exit without taking the aircraft offline", pilot: ["--online", "1", "--mqtt-version", "5", "--offline", "exit"],
            state: "offline", findings: ["cleartext-credentials"], steps: ["update-topo", "status-reply", "mqtt-disconnect"]),
    ]

    @Test(.enabled(if: LabScenarioTests.canRun, "lab scenarios need root (live capture) and mosquitto (scripts/bootstrap installs it)"), arguments: scenarios)
    func scenario(_ s: Scenario) throws {
        let run = try LabRun.run(cloud: s.cloud, pilot: s.pilot, tail: s.tail)
        #expect((run.pilot.status == 0) == s.pilotSucceeds, "pilot: \(run.pilot.stdout) \(run.pilot.stderr)")
        let sessions = try LabRun.sessions(run.liveDB)
        #expect(sessions.count == 1, "\(sessions)")
        #expect(sessions.first?["state"] as? String == s.state)
        let steps = sessions.first.map(LabRun.steps) ?? []
        for step in s.steps { #expect(steps.contains(step), "missing \(step) in \(steps)") }
        let findings = try LabRun.findings(run.liveDB)
        #expect(findings == s.findings.sorted())
        try run.checkFileAgreesWithLive()
    }

    @Test(.enabled(if: LabScenarioTests.canRun, "lab scenarios need root (live capture) and mosquitto (scripts/bootstrap installs it)"))
    func passiveOfflineIsConfirmedAfterTheThirtySecondGrace() throws {
        let run = try LabRun.run(pilot: ["--online", "1", "--offline", "passive"], tail: 31.5)
        #expect(run.pilot.status == 0)
        let sessions = try LabRun.sessions(run.liveDB)
        #expect(sessions.count == 1)
        #expect(sessions.first?["state"] as? String == "offline")
        let steps = sessions.first.map(LabRun.steps) ?? []
        #expect(steps.contains("link-lost"), "\(steps)")
        #expect(steps.last == "offline-confirmed", "\(steps)")
        #expect(!steps.contains("mqtt-disconnect"))
        try run.checkFileAgreesWithLive()
    }

    /// A lab cloud killed with SIGKILL cannot stop its mosquitto; the next lab cloud stops it.
    @Test(.enabled(if: TestPaths.which("mosquitto") != nil && TestPaths.which("mosquitto_passwd") != nil, "needs mosquitto (scripts/bootstrap installs it)"))
    func aKilledCloudsBrokerIsReapedByTheNextCloud() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-reap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let ready = dir.appendingPathComponent("ready").path
        let first = try LabRun.start(
            ["lab", "cloud", "--http-listen", "127.0.0.1:0", "--mqtt-listen", "0", "--ready-file", ready],
            stderr: FileHandle.nullDevice)
        guard let port = LabRun.waitForFile(ready)?.split(separator: "\n").last?.split(separator: ":").last.flatMap({ Int($0) }) else {
            LabRun.stop(first)
            Issue.record("lab cloud did not start")
            return
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        #expect(LabRun.listening(port), "the killed cloud's broker should still be running")
        // The old option names (--http, --mqtt-port) still work, hidden.
        let second = try pilottrace("lab", "cloud", "--http", "127.0.0.1:0", "--mqtt-port", "0", "--duration", "0.5")
        #expect(second.status == 0)
        #expect(second.stderr.contains("left running by a lab cloud that was killed"), "\(second.stderr)")
        #expect(!LabRun.listening(port))
    }

    /// Issue 6's load test: 50 remote controllers at once through a live capture.
    @Test(.enabled(if: LabScenarioTests.canRun, "lab scenarios need root (live capture) and mosquitto (scripts/bootstrap installs it)"))
    func fiftyDevicesEachGetTheirOwnCompleteSessionWithNothingDropped() throws {
        let run = try LabRun.run(pilot: ["--devices", "50", "--online", "4", "--quiet"], tail: 1)
        #expect(run.pilot.status == 0, "\(run.pilot.stdout)")
        #expect(run.capture.contains("50 Pilot 2 sessions (50 offline)"), "\(run.capture)")
        #expect(run.capture.contains(" 0 dropped, 0 dropped by the interface"), "\(run.capture)")
        let sessions = try LabRun.sessions(run.liveDB)
        #expect(Set(sessions.compactMap { $0["gateway_sn"] as? String }).count == 50)
        for s in sessions {
            let steps = LabRun.steps(s)
            for step in Self.documentedSteps { #expect(steps.contains(step), "\(s["gateway_sn"] ?? "?"): missing \(step)") }
        }
        #expect(try LabRun.findings(run.liveDB).allSatisfy { $0 == "cleartext-credentials" })
        print("load: \(run.capture.split(separator: "\n").first ?? "")")
    }
}

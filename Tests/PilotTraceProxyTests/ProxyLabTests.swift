import Foundation
import PilotTraceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `lab pilot` → `pilottrace proxy` → `lab cloud` (with its mosquitto): the proxy's recording against what lab pilot
/// sent, and against the same scenario captured passively on loopback.
@Suite(.serialized) struct ProxyLabTests {
    static var ready: Bool { Broker.available && FileManager.default.fileExists(atPath: TestPaths.binary.path) }

    /// `lab cloud` on ephemeral ports: its HTTP base URL and broker port once ready.
    final class LabCloud {
        let process = Process()
        let url: String
        let httpPort: Int
        let brokerPort: Int

        init(dir: TempDir) throws {
            let ready = dir.path("ready-\(UUID().uuidString)")
            process.executableURL = TestPaths.binary
            process.arguments = ["lab", "cloud", "--http-listen", "127.0.0.1:0", "--mqtt-listen", "0", "--ready-file", ready]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            var lines: [Substring] = []
            for _ in 0..<200 where lines.count < 2 {
                lines = ((try? String(contentsOfFile: ready, encoding: .utf8)) ?? "").split(separator: "\n")
                usleep(50_000)
            }
            guard lines.count >= 2, let h = lines[0].split(separator: ":").last.flatMap({ Int($0) }),
                let b = lines[1].split(separator: ":").last.flatMap({ Int($0) })
            else { throw FixtureError("lab cloud did not start") }
            url = String(lines[0])
            httpPort = h
            brokerPort = b
        }

        deinit {
            kill(process.processIdentifier, SIGTERM)
            for _ in 0..<100 where process.isRunning { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    func pilot(_ cloud: String, _ extra: [String]) throws -> ProcessResult {
        try runProcess(TestPaths.binary.path, ["lab", "pilot", "--cloud", cloud, "--quiet"] + extra, timeout: 120)
    }

    @Test(.enabled(if: ProxyLabTests.ready, "needs mosquitto and the built binary")) func fiftyDevicesAtOnceEveryMessageRecorded() throws {
        let dir = try TempDir("proxy-lab50")
        let cloud = try LabCloud(dir: dir)
        let db = dir.path("p.sqlite")
        let proxy = try ProxyProcess(
            dir: dir,
            [
                "--http-listen", "127.0.0.1:0", "--http-upstream", cloud.url, "--mqtt-listen", "127.0.0.1:0",
                "--db", db, "--quiet",
            ])
        let run = try pilot("http://127.0.0.1:\(proxy.httpPort)", ["--devices", "50", "--online", "4", "--ramp-up", "1"])
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        let summary = try #require(run.stdout.split(separator: "\n").first { $0.contains("messages published") })
        #expect(summary.hasPrefix("50 device(s): 50 completed, 0 failed;"))
        let published = try #require(summary.split(separator: ";")[1].split(separator: " ").first.flatMap { Int($0) })
        usleep(300_000)
        let out = try proxy.stop()
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.contains("50 Pilot 2 sessions (50 offline)"))
        let store = try StoredDB(db)
        #expect(try store.int("SELECT sum(packet_count) FROM mqtt_packets WHERE type = 'PUBLISH' AND direction = 'to-server'") == published)
        #expect(try store.int("SELECT count(*) FROM mqtt_packets WHERE type = 'CONNECT'") == 50)
        #expect(try store.int("SELECT count(DISTINCT gateway_sn) FROM sessions WHERE state = 'offline'") == 50)
        #expect(try store.int("SELECT count(*) FROM flows WHERE protocol = 'mqtt'") == 50)
        #expect(try store.int("SELECT count(*) FROM http_exchanges WHERE status IS NULL OR incomplete IS NOT NULL") == 0)
        #expect(try store.int("SELECT count(*) FROM timeline_events WHERE step = 'status-reply' AND ok = 1") >= 100)  // online and offline topo
    }

    /// The device session's steps, as `phase/step/ok`.
    func steps(_ db: String) throws -> [String] {
        try StoredDB(db).strings(
            """
            SELECT t.phase || '/' || t.step || '/' || t.ok FROM timeline_events t JOIN sessions s ON s.id = t.session_id
            WHERE s.gateway_sn IS NOT NULL ORDER BY t.ordinal
            """)
    }

    /// One run, two recordings: `capture` on lo sees the app side of the proxy (plain HTTP and MQTT) while the proxy
    /// records the same connections by synthesising their frames. Both must tell the same story.
    @Test(.enabled(if: ProxyLabTests.ready && getuid() == 0, "needs root (capture on lo), mosquitto and the built binary"))
    func theProxiedTimelineIsTheOneCapturedPassively() throws {
        let dir = try TempDir("proxy-lab-same")
        let cloud = try LabCloud(dir: dir)
        let proxyDB = dir.path("proxy.sqlite"), passiveDB = dir.path("passive.sqlite")
        let proxy = try ProxyProcess(
            dir: dir,
            [
                "--http-listen", "127.0.0.1:0", "--http-upstream", cloud.url, "--mqtt-listen", "127.0.0.1:0",
                "--db", proxyDB, "--quiet",
            ])
        let mqtt = try #require(proxy.mqttPort)
        let capture = Process()
        capture.executableURL = TestPaths.binary
        capture.arguments = ["capture", "--interface", "lo", "--filter", "tcp port \(proxy.httpPort) or tcp port \(mqtt)", "--db", passiveDB]
        let err = dir.path("capture.err")
        FileManager.default.createFile(atPath: err, contents: nil)
        capture.standardOutput = FileHandle.nullDevice
        capture.standardError = FileHandle(forWritingAtPath: err)
        try capture.run()
        for _ in 0..<100 where !((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").contains("capturing on") { usleep(50_000) }
        usleep(300_000)

        let run = try pilot("http://127.0.0.1:\(proxy.httpPort)", ["--online", "2", "--osd-interval", "1"])
        #expect(run.status == 0, "\(run.stdout)")
        usleep(500_000)
        capture.interrupt()
        capture.waitUntilExit()
        #expect(capture.terminationStatus == 0)
        #expect(try proxy.stop().status == 0)

        let passive = try steps(passiveDB), proxied = try steps(proxyDB)
        #expect(passive.count >= 10)
        #expect(proxied == passive)
        #expect(passive.first == "license/h5-page/1")
        #expect(passive.last == "offline/mqtt-disconnect/1")
        // The same messages, too.
        for table in ["http_exchanges", "mqtt_packets"] {
            #expect(try StoredDB(proxyDB).int("SELECT count(*) FROM \(table)") == (try StoredDB(passiveDB).int("SELECT count(*) FROM \(table)")))
        }
    }

    /// TLS on every hop lab pilot cannot speak itself: lab pilot → proxy A (plain in; TLS out, trusting the test
    /// certificate) → proxy B (terminates TLS with it; plain to the cloud) → lab cloud. B rewrites the cloud's
    /// `tcp://` broker to its own `ssl://` listener, A remembers that and relays MQTT over TLS to it. The timeline B
    /// records from decrypted TLS is the one A records from plain traffic.
    @Test(.enabled(if: ProxyLabTests.ready && TestPaths.which("openssl") != nil, "needs mosquitto, openssl and the built binary"))
    func aTLSHopIsDecryptedIntoTheSameTimeline() throws {
        let dir = try TempDir("proxy-lab-tls")
        let (cert, key) = try makeCertificate(in: dir)
        let cloud = try LabCloud(dir: dir)
        let dbA = dir.path("a.sqlite"), dbB = dir.path("b.sqlite")
        let b = try ProxyProcess(
            dir: dir,
            [
                "--http-listen", "127.0.0.1:0", "--http-upstream", cloud.url, "--mqtt-listen", "127.0.0.1:0",
                "--tls-cert", cert, "--tls-key", key, "--db", dbB, "--quiet",
            ], name: "b")
        let a = try ProxyProcess(
            dir: dir,
            [
                "--http-listen", "127.0.0.1:0", "--http-upstream", "https://127.0.0.1:\(b.httpPort)",
                "--mqtt-listen", "127.0.0.1:0", "--upstream-ca", cert, "--db", dbA, "--quiet",
            ], name: "a")
        let run = try pilot("http://127.0.0.1:\(a.httpPort)", ["--online", "2", "--osd-interval", "1"])
        #expect(run.status == 0, "\(run.stdout)")
        usleep(500_000)
        let outA = try a.stop(), outB = try b.stop()
        #expect(outA.status == 0 && outB.status == 0, "\(outA.stderr) \(outB.stderr)")
        #expect(outA.stdout.contains("The cloud handed out MQTT address ssl://127.0.0.1:\(b.mqttPort ?? 0)"))
        #expect(outB.stdout.contains("The cloud handed out MQTT address tcp://127.0.0.1:\(cloud.brokerPort)"))
        let stepsA = try steps(dbA), stepsB = try steps(dbB)
        #expect(stepsA.count >= 10)
        #expect(stepsB == stepsA)
        #expect(stepsB.contains("status/status-reply/1"))
        #expect(try StoredDB(dbB).int("SELECT count(*) FROM mqtt_packets") == (try StoredDB(dbA).int("SELECT count(*) FROM mqtt_packets")))
    }
}

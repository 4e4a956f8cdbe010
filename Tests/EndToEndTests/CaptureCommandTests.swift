import Foundation
import PilotTraceTestSupport
import Testing

/// Live capture on the loopback interface against a real mosquitto broker (needs root, as CI runs).
@Suite(.serialized) struct CaptureCommandTests {
    static var canCapture: Bool {
        getuid() == 0 && TestPaths.which("mosquitto") != nil && TestPaths.which("mosquitto_pub") != nil
    }

    @Test(.enabled(if: CaptureCommandTests.canCapture, "live capture needs root and mosquitto/mosquitto_pub (scripts/bootstrap installs them)"))
    func aLiveDeviceIsCapturedAnalyzedStoredAndWritten() throws {
        let broker = try LoopbackBroker()
        let (dir, port) = (broker.folder, broker.port)

        let db = dir.appendingPathComponent("live.sqlite").path, pcap = dir.appendingPathComponent("live.pcap").path
        let capture = Process()
        capture.executableURL = TestPaths.binary
        capture.arguments = [
            "capture", "--interface", "lo", "--filter", "tcp port \(port)", "--duration", "4", "--write", pcap, "--db", db,
            "--fail-on", "info",
        ]
        let out = Pipe()
        capture.standardOutput = out
        capture.standardError = FileHandle.nullDevice
        try capture.run()
        usleep(1_200_000)
        let pub = try publishUpdateTopo(port: port)
        #expect(pub.status == 0)
        // While the capture runs, `serve` on its database exports its frames so far and the kernel's drops.
        do {
            let server = try ServeCommandTests.Server(["--db", db, "--listen", "127.0.0.1:0"])
            var metrics = ""
            let live = waitUntil(timeout: 2.5, poll: 0.1) {
                metrics = (try? httpGet(port: server.port, path: "/metrics").body) ?? ""
                return metrics.contains("pilottrace_live_frames{") && metrics.contains(#"by="kernel"} 0"#)
            }
            #expect(live, "no live frames and drops in /metrics: \(metrics)")
            #expect(metrics.contains(#"pilottrace_analyses{source="live",state="running"} 1"#))
            server.stop()
        }
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        capture.waitUntilExit()
        // The password crossed in clear text (an info finding): --fail-on info exits 1, after storing everything.
        #expect(capture.terminationStatus == 1)
        #expect(output.contains("cleartext-credentials"))
        #expect(output.contains("1 Pilot 2 session"))
        #expect(output.contains("gateway 5YSZL260021E9A (DJI RC Plus)"))
        #expect(output.contains("0 dropped"))
        // The same frames analyzed from the written file give the same session.
        let again = try pilottrace("analyze", "--db", dir.appendingPathComponent("file.sqlite").path, pcap)
        #expect(again.status == 0)
        #expect(again.stdout.contains("gateway 5YSZL260021E9A (DJI RC Plus), 4 steps"))
        #expect(output.contains("gateway 5YSZL260021E9A (DJI RC Plus), 4 steps"))
        let timeline = try pilottrace("timeline", "--db", db, "--json")
        #expect(timeline.stdout.contains("\"step\" : \"update-topo\""))
    }

    @Test(
        "A rotating capture with --db records each file it wrote, in order",
        .enabled(if: CaptureCommandTests.canCapture, "live capture needs root and mosquitto/mosquitto_pub (scripts/bootstrap installs them)"))
    func rotatedFilesAreRecorded() throws {
        let broker = try LoopbackBroker("message_size_limit 0\n")
        let (dir, port) = (broker.folder, broker.port)
        #expect(try broker.waitUntilListening())

        let db = dir.appendingPathComponent("rotated.sqlite").path, pcap = dir.appendingPathComponent("rotated.pcap").path
        let capture = Process()
        capture.executableURL = TestPaths.binary
        capture.arguments = [
            "capture", "--interface", "lo", "--filter", "tcp port \(port)", "--duration", "4", "--write", pcap,
            "--rotate-size", "1", "--db", db,
        ]
        let err = Pipe()
        capture.standardOutput = FileHandle.nullDevice
        capture.standardError = err
        try capture.run()
        #expect(try waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: db) })
        // 3 MB in one message: three files of 1 MB and a bit.
        let payload = dir.appendingPathComponent("payload.bin")
        try Data(repeating: 0x41, count: 3 << 20).write(to: payload)
        let pub = try runProcess(TestPaths.which("mosquitto_pub")!, ["-p", String(port), "-t", "bulk", "-f", payload.path])
        #expect(pub.status == 0, "\(pub.stderr)")
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        capture.waitUntilExit()
        #expect(capture.terminationStatus == 0, "\(message)")
        #expect(!message.contains("no capture with ordinal"))
        let rows = try runProcess("/usr/bin/sqlite3", [db, "SELECT ordinal || ' ' || path || ' ' || records FROM captures ORDER BY ordinal"])
        let lines = rows.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count >= 3, "\(rows.stdout)")
        let written = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("rotated") && $0.hasSuffix(".pcap") }.sorted()
        #expect(written.count == lines.count)
        for (i, line) in lines.enumerated() {
            let parts = line.split(separator: " ")
            #expect(parts.first == Substring(String(i)))
            #expect(parts.count == 3 && FileManager.default.fileExists(atPath: String(parts[1])))
            #expect((Int(parts.last ?? "") ?? 0) > 0)
        }
        let state = try runProcess("/usr/bin/sqlite3", [db, "SELECT state FROM analyses"])
        #expect(state.stdout == "complete\n")
    }

    @Test func badFiltersAndInterfacesAreClearErrors() throws {
        let filter = try pilottrace("capture", "--interface", "lo", "--filter", "tcp port 1 and", "--duration", "1")
        #expect(filter.status == 2)
        #expect(filter.stderr.contains("invalid capture filter") || filter.stderr.contains("permission denied"))
        let iface = try pilottrace("capture", "--interface", "nosuch0", "--duration", "1")
        #expect(iface.status == 2)
        #expect(iface.stderr.contains("nosuch0"))
    }
}

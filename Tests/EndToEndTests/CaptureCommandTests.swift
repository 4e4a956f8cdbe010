import Foundation
import PilotTraceTestSupport
import Testing

/// Live capture on the loopback interface against a real mosquitto broker (needs root, as CI runs).
@Suite(.serialized) struct CaptureCommandTests {
    static var canCapture: Bool {
        getuid() == 0 && TestPaths.which("mosquitto") != nil && TestPaths.which("mosquitto_pub") != nil
    }

    @Test(.enabled(if: CaptureCommandTests.canCapture, "live capture needs root and mosquitto/mosquitto_pub (scripts/bootstrap installs them)")) func aLiveDeviceIsCapturedAnalyzedStoredAndWritten() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        let port = Int(try freeLoopbackPort())
        let conf = dir.appendingPathComponent("mosquitto.conf")
        try "listener \(port) 127.0.0.1\nallow_anonymous true\npersistence false\n".write(to: conf, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: conf.path)
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: TestPaths.which("mosquitto")!)
        broker.arguments = ["-c", conf.path]
        broker.standardOutput = FileHandle.nullDevice
        broker.standardError = FileHandle.nullDevice
        try broker.run()
        defer {
            // mosquitto drops to its own user: signal it directly, and do not wait forever.
            kill(broker.processIdentifier, SIGTERM)
            for _ in 0..<50 where broker.isRunning { usleep(100_000) }
            if broker.isRunning { kill(broker.processIdentifier, SIGKILL) }
        }

        let db = dir.appendingPathComponent("live.sqlite").path, pcap = dir.appendingPathComponent("live.pcap").path
        let capture = Process()
        capture.executableURL = TestPaths.binary
        capture.arguments = ["capture", "--interface", "lo", "--filter", "tcp port \(port)", "--duration", "4", "--write", pcap, "--db", db,
                             "--fail-on", "info"]
        let out = Pipe()
        capture.standardOutput = out
        capture.standardError = FileHandle.nullDevice
        try capture.run()
        usleep(1_200_000)
        let topo = #"{"tid":"a","bid":"b","timestamp":1,"method":"update_topo","data":{"domain":"2","type":119,"sub_type":0,"device_secret":"s","nonce":"n","thing_version":"1","sub_devices":[]}}"#
        let pub = try runProcess(TestPaths.which("mosquitto_pub")!, ["-p", String(port), "-i", "5YSZL260021E9A", "-u", "pilot", "-P", "pilot123",
                                                                     "-q", "1", "-t", "sys/product/5YSZL260021E9A/status", "-m", topo])
        #expect(pub.status == 0)
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

    @Test func badFiltersAndInterfacesAreClearErrors() throws {
        let filter = try pilottrace("capture", "--interface", "lo", "--filter", "tcp port 1 and", "--duration", "1")
        #expect(filter.status == 2)
        #expect(filter.stderr.contains("invalid capture filter") || filter.stderr.contains("permission denied"))
        let iface = try pilottrace("capture", "--interface", "nosuch0", "--duration", "1")
        #expect(iface.status == 2)
        #expect(iface.stderr.contains("nosuch0"))
    }
}

import Foundation
import PilotTraceTestSupport

/// A mosquitto broker of a test's own on a free loopback port (anonymous, no persistence), in a folder it can read
/// after dropping to its own user; stopped when the value goes.
final class LoopbackBroker {
    let port: Int
    /// A folder of the test's own (mode 0755), beside the broker's configuration.
    let folder: URL
    private let process: Process

    init(_ extraConfiguration: String = "") throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-broker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.path)
        port = Int(try freeLoopbackPort())
        let conf = folder.appendingPathComponent("mosquitto.conf")
        try "listener \(port) 127.0.0.1\nallow_anonymous true\npersistence false\n\(extraConfiguration)"
            .write(to: conf, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: conf.path)
        process = Process()
        process.executableURL = URL(fileURLWithPath: TestPaths.which("mosquitto") ?? "/usr/sbin/mosquitto")
        process.arguments = ["-c", conf.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits until the broker accepts connections.
    func waitUntilListening() throws -> Bool {
        try waitUntil(timeout: 10) { try runProcess("/usr/bin/env", ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"]).status == 0 }
    }

    deinit {
        // mosquitto drops to its own user: signal it directly, and do not wait forever.
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A generated capture of `devices` logging in, and the same traffic as two capture points see it: the web backend's
/// (HTTP, port 6789) and the broker's (MQTT, port 1883), split with tcpdump.
func capturePointPair(devices: Int) throws -> (whole: String, web: String, broker: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-points-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let whole = dir.appendingPathComponent("whole.pcap").path
    let generated = try pilottrace("lab", "generate", "--devices", String(devices), "--online", "20", "--stagger", "0.5", "--out", whole)
    guard generated.status == 0, let tcpdump = TestPaths.which("tcpdump") else {
        throw LabRun.Failure(description: "cannot make the capture point pair: \(generated.stderr)")
    }
    let web = dir.appendingPathComponent("web.pcap").path, broker = dir.appendingPathComponent("broker.pcap").path
    for (out, filter) in [(web, "tcp port 6789"), (broker, "tcp port 1883")] {
        let r = try runProcess(tcpdump, ["-r", whole, "-w", out, filter])
        guard r.status == 0 else { throw LabRun.Failure(description: "tcpdump: \(r.stderr)") }
    }
    return (whole, web, broker)
}

/// An `analyze` of a long generated capture (3,000 devices one after the other, 0.2 s apart, each online 5 s) into
/// `database`, running in the background and already storing: returned once the database holds 20 sessions, so some
/// are over and some still going on when the test interrupts it. Its stderr is the pipe returned.
func analysisUnderWay(into database: String) throws -> (process: Process, stderr: Pipe) {
    let capture = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-long-\(UUID().uuidString).pcap").path
    let generated = try pilottrace("lab", "generate", "--devices", "3000", "--online", "5", "--stagger", "0.2", "--out", capture)
    guard generated.status == 0 else { throw LabRun.Failure(description: "lab generate: \(generated.stderr)") }
    let process = Process()
    process.executableURL = TestPaths.binary
    process.arguments = ["analyze", "--db", database, capture]
    let stderr = Pipe()
    process.standardError = stderr
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    func stored() -> Int {
        guard let r = try? pilottrace("sessions", "--db", database, "--json"), r.status == 0,
            let doc = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        else { return 0 }
        return (doc["sessions"] as? [[String: Any]])?.count ?? 0
    }
    guard waitUntil(timeout: 60, poll: 0.2, { stored() >= 20 }) else {
        process.terminate()
        throw LabRun.Failure(description: "the analysis of \(capture) stored no 20 sessions within 60 s")
    }
    return (process, stderr)
}

/// Pilot 2's first status, as `mosquitto_pub` sends it to a broker on `port` (device 5YSZL260021E9A, user pilot, an
/// update_topo without aircraft): one device session for a live capture to find.
func publishUpdateTopo(port: Int) throws -> ProcessResult {
    let topo =
        #"{"tid":"a","bid":"b","timestamp":1,"method":"update_topo","data":{"domain":"2","type":119,"sub_type":0,"device_secret":"s","nonce":"n","thing_version":"1","sub_devices":[]}}"#
    return try runProcess(
        TestPaths.which("mosquitto_pub")!,
        [
            "-p", String(port), "-i", "5YSZL260021E9A", "-u", "pilot", "-P", "pilot123",
            "-q", "1", "-t", "sys/product/5YSZL260021E9A/status", "-m", topo,
        ])
}

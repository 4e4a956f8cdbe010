import Foundation
// The MQTT wire builders and the seeded generator live in the lab, which the synthetic captures use too: one of
// each, re-exported so every test that imports its support has them.
@_exported import PilotTraceLab

/// Paths the tests need, found from this file's location.
public enum TestPaths {
    /// The package root (the folder holding Package.swift).
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// `Captures/` in the package: captures the project recorded itself.
    public static var captures: URL { packageRoot.appendingPathComponent("Captures") }

    /// `../shared/captures/public`: third-party captures, present on developer machines and in CI.
    public static var publicCaptures: URL? {
        let url = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/captures/public")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// Every capture file (pcap, pcapng, .gz) below the public captures folder, sorted; empty when absent.
    public static var publicCaptureFiles: [URL] {
        guard let root = publicCaptures,
            let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        else { return [] }
        return e.compactMap { $0 as? URL }
            .filter { ["pcap", "pcapng", "gz", "cap"].contains($0.pathExtension) }
            .sorted { $0.path < $1.path }
    }

    /// The captures in `Captures/`.
    public static var projectCaptureFiles: [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: captures, includingPropertiesForKeys: nil)) ?? [])
            .filter { ["pcap", "pcapng"].contains($0.pathExtension) }
            .sorted { $0.path < $1.path }
    }

    /// The built `pilottrace` binary (`make test` builds it before the tests run).
    public static var binary: URL { packageRoot.appendingPathComponent(".build/debug/pilottrace") }

    /// The path of an executable on PATH, or nil.
    public static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}

/// The result of running a process to completion.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// A process that did not exit within its timeout: it and every process it started were killed.
public struct ProcessTimedOut: Error, CustomStringConvertible {
    public var command: String
    public var timeout: TimeInterval
    public var stdout: String
    public var stderr: String
    public var description: String {
        "\(command) did not exit within \(timeout) s and was killed with its process group; it printed:\n\(stdout)\n--- stderr ---\n\(stderr)"
    }
}

/// Runs `executable` with `arguments`, collecting its output; stdin is empty.
///
/// The child runs in a process group of its own (Foundation's Process starts it so), both pipes are read while it runs, and at the deadline
/// the whole group is killed (a hung child, or the broker it started) and ``ProcessTimedOut`` is thrown with what it
/// printed: a hung binary fails its test instead of hanging `make test`.
public func runProcess(_ executable: String, _ arguments: [String], timeout: TimeInterval = 120, in directory: URL? = nil) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let directory { p.currentDirectoryURL = directory }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    // Both pipes are read on their own threads so neither fills up and blocks the child, and the deadline is
    // watched while they are read.
    final class Box: @unchecked Sendable { var data = Data() }
    let outBox = Box(), errBox = Box()
    let group = DispatchGroup()
    for (pipe, box) in [(out, outBox), (err, errBox)] {
        group.enter()
        DispatchQueue.global().async {
            box.data = pipe.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
    }
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    while p.isRunning {
        if Date() >= deadline {
            timedOut = true
            kill(-p.processIdentifier, SIGKILL)  // the child leads its own process group
            break
        }
        usleep(5_000)
    }
    p.waitUntilExit()
    // Grandchildren that kept the pipes open were in the group too (and are gone after a kill); a daemon that left
    // the group on purpose may hold them: its output is not waited for beyond a few seconds.
    if group.wait(timeout: .now() + (timedOut ? 2 : 30)) == .timedOut { kill(-p.processIdentifier, SIGKILL) }
    let stdout = String(decoding: outBox.data, as: UTF8.self), stderr = String(decoding: errBox.data, as: UTF8.self)
    if timedOut {
        throw ProcessTimedOut(command: ([executable] + arguments).joined(separator: " "), timeout: timeout, stdout: stdout, stderr: stderr)
    }
    return ProcessResult(status: p.terminationStatus, stdout: stdout, stderr: stderr)
}

/// A free TCP port on 127.0.0.1, chosen by the kernel (bind to port 0), released for the caller to use.
public func freeLoopbackPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: addr.sin_port)
}

/// Waits until `condition` holds or `timeout` passes (readiness by a condition, not a fixed sleep); returns whether it held.
public func waitUntil(timeout: TimeInterval, poll: TimeInterval = 0.02, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(useconds_t(poll * 1_000_000))
    }
    return try condition()
}

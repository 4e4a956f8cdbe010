import Foundation

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
              let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return [] }
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

/// Runs `executable` with `arguments`, collecting its output; stdin is empty.
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
    // Read both pipes concurrently so neither fills up and blocks the child.
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning { p.terminate() }
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// SplitMix64: a tiny, seeded, reproducible generator for randomized tests.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    public mutating func byte() -> UInt8 { UInt8.random(in: 0...255, using: &self) }
}

import Foundation
import PilotTraceTestSupport
import Testing

/// Runs the built `pilottrace` binary, as a user would.
func pilottrace(_ arguments: String...) throws -> ProcessResult { try pilottrace(arguments) }

/// Runs the built `pilottrace` binary with an argument list.
func pilottrace(_ arguments: [String]) throws -> ProcessResult {
    let binary = TestPaths.binary.path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw BinaryMissing(path: binary)
    }
    return try runProcess(binary, arguments)
}

struct BinaryMissing: Error, CustomStringConvertible {
    var path: String
    var description: String { "\(path) is not built: run `make test` (it builds before testing)" }
}

/// A path for a new SQLite database in a fresh temporary folder.
func temporaryDatabase() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-db-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent("test.sqlite").path
}

func temporaryFile(_ name: String, _ bytes: [UInt8]) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-e2e-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url.path
}

@Suite struct FlowsCommandTests {
    @Test func helpListsTheCommands() throws {
        let r = try pilottrace("--help")
        #expect(r.status == 0)
        #expect(r.stdout.contains("flows"))
        #expect(r.stdout.contains("List the TCP conversations"))
        let flows = try pilottrace("flows", "--help")
        #expect(flows.stdout.contains("--json"))
        #expect(flows.stdout.contains("--idle-timeout"))
    }

    @Test func missingFileIsAClearErrorWithNonZeroExit() throws {
        let r = try pilottrace("flows", "/nonexistent/capture.pcap")
        #expect(r.status == 2)
        #expect(r.stderr.contains("/nonexistent/capture.pcap: cannot open: No such file or directory"))
    }

    @Test func notACaptureNamesFileAndOffset() throws {
        let path = try temporaryFile("notes.txt", Array("this is text, not packets\n".utf8))
        let r = try pilottrace("flows", path)
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(path): offset 0: not a pcap or pcapng capture"))
    }

    @Test func noArgumentsIsAUsageError() throws {
        let r = try pilottrace("flows")
        #expect(r.status != 0)
        #expect(r.stderr.contains("Missing expected argument") || r.stderr.contains("Name at least one capture"))
    }
}

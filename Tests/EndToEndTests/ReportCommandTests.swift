import Foundation
import PilotTraceTestSupport
import Testing

/// `pilottrace report` in every format on the two recorded sessions (a clean login and the unanswered status),
/// against golden files in Tests/Golden (regenerate: see `golden(_:)`).
@Suite struct ReportCommandTests {
    /// A database named gold.sqlite (the HTML footer names it) holding both recorded sessions.
    func goldDatabase() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let db = dir.appendingPathComponent("gold.sqlite").path
        for capture in ["Captures/pilot2-login.pcap", "Captures/pilot2-no-status-reply.pcap"] {
            let r = try runProcess(TestPaths.binary.path, ["analyze", "--db", db, capture], in: TestPaths.packageRoot)
            #expect(r.status == 0, "\(r.stderr)")
        }
        return db
    }

    func golden(_ format: String) throws -> String {
        try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("Tests/Golden/report.\(format)"), encoding: .utf8)
    }

    @Test func everyFormatMatchesItsGoldenFile() throws {
        let db = try goldDatabase()
        for format in ["html", "markdown", "json", "mermaid"] {
            let r = try runProcess(TestPaths.binary.path, ["report", "--db", db, "--format", format, "--out", "-"], in: TestPaths.packageRoot)
            #expect(r.status == 0)
            #expect(
                r.stdout == (try golden(format)),
                "report.\(format) changed; regenerate with: pilottrace report --db gold.sqlite --format \(format) --out Tests/Golden/report.\(format)")
        }
    }

    @Test func theHTMLIsSelfContainedAndMasksSecrets() throws {
        let html = try golden("html")
        #expect(html.hasPrefix("<!doctype html>"))
        #expect(!html.contains("<script"))
        // No network resource: the only URLs are the SVG namespace.
        #expect(!html.contains("https://"))
        #expect(html.components(separatedBy: "http://").count == html.components(separatedBy: "http://www.w3.org/2000/svg").count)
        #expect(html.components(separatedBy: "<svg ").count == 3)  // one diagram per session
        for secret in ["pilot123", "cloud-secret", "eyJhbGci", "d3v1c3-s3cr3t"] { #expect(!html.contains(secret)) }
        #expect(html.contains("⚠ error status-reply-missing"))
        #expect(html.contains("PUBLISH thing/…/osd ×2"))  // telemetry collapsed
        let json = try JSONSerialization.jsonObject(with: Data(try golden("json").utf8)) as! [String: Any]
        let sessions = json["sessions"] as! [[String: Any]]
        #expect(sessions.map { $0["state"] as! String } == ["offline", "failed"])
        #expect((sessions[1]["deviations"] as! [[String: Any]]).map { $0["rule"] as! String }.contains("status-reply-missing"))
    }

    @Test func secretsShowOnlyWhenAsked() throws {
        let db = try goldDatabase()
        let shown = try runProcess(TestPaths.binary.path, ["report", "--db", db, "--show-secrets", "--out", "-"], in: TestPaths.packageRoot)
        #expect(shown.stdout.contains("pilot123"))
    }

    @Test func writesIntoReportsByDefaultAndRejectsUnknownSessions() throws {
        let db = try goldDatabase()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-cwd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let r = try runProcess(TestPaths.binary.path, ["report", "--db", db], in: dir)
        #expect(r.stdout == "Reports/pilottrace-report.html\n")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("Reports/pilottrace-report.html").path))
        let bad = try runProcess(TestPaths.binary.path, ["report", "--db", db, "42"], in: dir)
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("no session 42"))
    }
}

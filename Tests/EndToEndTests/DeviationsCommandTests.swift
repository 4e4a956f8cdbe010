import Foundation
import PilotTraceTestSupport
import Testing

/// `deviations`, `rules` and `analyze --fail-on` on the project's own captures: the clean login and the same login
/// recorded with the cloud ignoring update_topo (FAULT=no-status-reply scripts/record-demo-capture).
@Suite struct DeviationsCommandTests {
    let clean = TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path
    let noReply = TestPaths.captures.appendingPathComponent("pilot2-no-status-reply.pcap").path

    func database() throws -> String { try temporaryDatabase() }

    func deviations(_ db: String, _ extra: [String] = []) throws -> [[String: Any]] {
        let r = try runProcess(TestPaths.binary.path, ["deviations", "--db", db, "--json"] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        return doc["deviations"] as! [[String: Any]]
    }

    @Test func theCleanLoginRaisesNothingAboveInfo() throws {
        let db = try database()
        let r = try pilottrace("analyze", "--db", db, "--fail-on", "warning", clean)
        #expect(r.status == 0)
        let found = try deviations(db)
        #expect(found.map { $0["rule"] as! String } == ["cleartext-credentials"])
        #expect(try deviations(db, ["--min-severity", "warning"]).isEmpty)
    }

    @Test func theUnansweredStatusIsFoundExactly() throws {
        let db = try database()
        let plain = try pilottrace("analyze", "--db", db, noReply)
        #expect(plain.status == 0)  // without --fail-on, findings do not fail the run
        #expect(plain.stdout.contains("1 Pilot 2 session (1 failed)"))
        #expect(plain.stdout.contains("Findings: 1 error, 2 warnings, 1 info"))
        #expect(plain.stdout.contains("  error    status-reply-missing   1 time in 1 session: no status_reply within 5 s"), "\(plain.stdout)")
        #expect(plain.stdout.contains("  warning  status-retransmitted   2 times in 1 session\n"))
        let found = try deviations(db)
        #expect(found.map { $0["rule"] as! String } == ["cleartext-credentials", "status-reply-missing", "status-retransmitted", "status-retransmitted"])
        for d in found {
            #expect(
                Set(d.keys) == [
                    "id", "session", "rule", "severity", "time", "time_epoch", "message", "evidence", "capture_file", "first_frame",
                    "last_frame",
                ])
            #expect(d["session"] as? Int == 1)
        }
        #expect(found[1]["severity"] as? String == "error")
        #expect((found[1]["evidence"] as? [String: Any])?["gateway_sn"] as? String == "5YSZL260021E9A")
        let gate = try pilottrace("analyze", "--db", db, "--fail-on", "error", noReply)
        #expect(gate.status == 1)
        let timeline = try pilottrace("timeline", "--db", db)
        #expect(timeline.stdout.contains("↳ ERROR status-reply-missing: no status_reply within 5 s"))
        #expect(timeline.stdout.contains(": gateway 5YSZL260021E9A (DJI RC Plus, 2-119-0), FAILED"))  // re-analysis gave it a new id
        let table = try pilottrace("deviations", "--db", db, "--min-severity", "error")
        #expect(table.stdout.split(separator: "\n").count == 2)
    }

    @Test func docsRulesIsTheGeneratedCatalogue() throws {
        let r = try pilottrace("rules", "--markdown")
        let file = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("docs/rules.md"), encoding: .utf8)
        #expect(r.stdout == file, "regenerate with: .build/debug/pilottrace rules --markdown > docs/rules.md")
        let json = try pilottrace("rules", "--json")
        let rules = (try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any])["rules"] as! [[String: Any]]
        #expect(rules.count >= 13)
        #expect(rules.allSatisfy { !($0["basis"] as! String).isEmpty })
    }
}

import Foundation
import PilotTraceTestSupport
import Testing

/// What `analyze` stores for every capture the project recorded (TLS ones with their key logs; and a generated one
/// whose sessions retire while the capture goes on), against golden files in Tests/Golden/analysis/: the flows (with
/// what TLS decryption gave), sessions, their timeline steps and the findings, as SQL reads them back — no database
/// ids, sessions named by their rank in start order. A change that is only meant to be faster (issue: performance)
/// must leave every line alone; a change of behaviour updates the files in the same commit, with
/// `PILOTTRACE_UPDATE_GOLDEN=1 swift test --skip-build --filter AnalysisGoldenTests`.
@Suite struct AnalysisGoldenTests {
    static let folder = TestPaths.packageRoot.appendingPathComponent("Tests/Golden/analysis")
    static var updating: Bool { ProcessInfo.processInfo.environment["PILOTTRACE_UPDATE_GOLDEN"] == "1" }

    /// Devices coming and going (a device starts every 2 s, each online 10 s): sessions retire while the capture
    /// goes on, so the golden covers the early-retirement path that short recorded captures never reach.
    static let generated = ["--devices", "60", "--online", "10", "--stagger", "2", "--noise", "1", "--seed", "5"]

    static let captures = TestPaths.projectCaptureFiles.map(\.lastPathComponent).sorted() + ["generated-come-and-go"]

    /// flows, sessions, steps, findings: one line each, in a stable order.
    static let dump = """
        SELECT 'flow', connection_number, client, server, role_evidence, protocol, classification_evidence, classification_note,
          tls_server_name, mqtt_role, printf('%.6f', first_time), printf('%.6f', last_time), close_reason, handshake_complete,
          up_packets, up_bytes, down_packets, down_bytes, community_id, tls_version, tls_cipher_suite, tls_alpn, tls_decrypted,
          tls_failure
          FROM flows ORDER BY connection_number;
        CREATE TEMP VIEW ranked AS SELECT id, part_of, ROW_NUMBER() OVER (ORDER BY start_time, id) AS n FROM sessions;
        SELECT 'session', r.n, s.gateway_sn, s.gateway_model, s.state, printf('%.6f', s.start_time), printf('%.6f', s.end_time),
          s.client, s.mqtt_client_id, s.mqtt_username, s.aircraft_sns_json, s.summary_json,
          (SELECT p.n FROM ranked p WHERE p.id = s.part_of)
          FROM sessions s JOIN ranked r ON r.id = s.id ORDER BY r.n;
        SELECT 'step', r.n, e.ordinal, printf('%.6f', e.time), e.phase, e.step, e.ok, printf('%.6f', e.latency), e.message_kind,
          e.capture_ordinal, e.first_frame, e.last_frame, e.detail_json, e.credential_digest IS NOT NULL
          FROM timeline_events e JOIN ranked r ON r.id = e.session_id ORDER BY r.n, e.ordinal;
        SELECT 'finding', r.n, d.rule_id, d.severity, d.title, printf('%.6f', d.time), d.message_kind, d.capture_ordinal,
          d.first_frame, d.last_frame, d.evidence_json
          FROM deviations d LEFT JOIN ranked r ON r.id = d.session_id
          ORDER BY r.n NULLS FIRST, d.time, d.rule_id, d.title, d.evidence_json;
        """

    @Test(arguments: captures) func theStoredAnalysisIsUnchanged(capture: String) throws {
        let db = try temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: (db as NSString).deletingLastPathComponent) }
        var path = TestPaths.captures.appendingPathComponent(capture).path
        if capture == "generated-come-and-go" {
            path = (db as NSString).deletingLastPathComponent + "/generated.pcap"
            let generated = try pilottrace(["lab", "generate"] + Self.generated + ["--out", path])
            try #require(generated.status == 0, "\(generated.stderr)")
        }
        // A TLS capture is analyzed with its key log (`NAME.keys` beside it), so the golden holds what decryption gave.
        let keys = TestPaths.captures.appendingPathComponent((capture as NSString).deletingPathExtension + ".keys").path
        let keylog = FileManager.default.fileExists(atPath: keys) ? ["--tls-keylog", keys] : []
        let analyzed = try pilottrace(["analyze", "--db", db, path] + keylog)
        try #require([0, 1].contains(analyzed.status), "analyze exited \(analyzed.status): \(analyzed.stderr)")
        let sqlite = try #require(TestPaths.which("sqlite3"), "sqlite3 is installed by scripts/bootstrap")
        let dumped = try runProcess(sqlite, ["-bail", "-separator", "|", db, Self.dump])
        try #require(dumped.status == 0, "\(dumped.stderr)")
        #expect(dumped.stdout.contains("flow|1|"), "no flow stored for \(capture)")

        let golden = Self.folder.appendingPathComponent("\(capture).txt")
        if Self.updating {
            try FileManager.default.createDirectory(at: Self.folder, withIntermediateDirectories: true)
            try dumped.stdout.write(to: golden, atomically: true, encoding: .utf8)
            return
        }
        let expected = try? String(contentsOf: golden, encoding: .utf8)
        try #require(expected != nil, "no golden file \(golden.path): write it with PILOTTRACE_UPDATE_GOLDEN=1")
        let (got, want) = (dumped.stdout.split(separator: "\n"), expected!.split(separator: "\n"))
        #expect(got.count == want.count, "\(capture): \(got.count) lines stored, the golden file has \(want.count)")
        if let i = zip(got, want).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            Issue.record("\(capture): line \(i + 1) differs\n  golden: \(want[i])\n  now:    \(got[i])")
        }
    }

    /// Every golden file belongs to a capture that is still analysed here (none left behind by a removed capture).
    @Test func everyGoldenFileHasItsCapture() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".txt") }
        #expect(Set(files) == Set(Self.captures.map { "\($0).txt" }))
    }
}

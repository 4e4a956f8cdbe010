import Foundation
import PilotTraceTestSupport
import Testing

/// `pilottrace messages` on the project's own captures, against golden files in Tests/Golden.
@Suite struct MessagesCommandTests {
    let pcap = TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path
    let pcapng = TestPaths.captures.appendingPathComponent("pilot2-login-any.pcapng").path

    func golden(_ name: String) throws -> String {
        try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("Tests/Golden/\(name)"), encoding: .utf8)
    }

    @Test(arguments: [("pilot2-login.pcap", "messages-pilot2-login.txt"), ("pilot2-login-any.pcapng", "messages-pilot2-login-any.txt")])
    func textMatchesTheGoldenFile(capture: String, golden name: String) throws {
        let r = try pilottrace("messages", TestPaths.captures.appendingPathComponent(capture).path)
        #expect(r.status == 0)
        #expect(r.stdout == (try golden(name)), "regenerate with: .build/debug/pilottrace messages Captures/\(capture) > Tests/Golden/\(name)")
    }

    @Test func secretsAreMaskedUnlessAsked() throws {
        let masked = try pilottrace("messages", pcap)
        #expect(!masked.stdout.contains("pilot123"))
        #expect(!masked.stdout.contains("cloud-secret"))
        #expect(masked.stdout.contains("password=<hidden>"))
        let shown = try pilottrace("messages", "--show-secrets", pcap)
        #expect(shown.stdout.contains("password=\"pilot123\""))
    }

    @Test func jsonLinesCarryStructuredFields() throws {
        let r = try pilottrace("messages", "--json", pcapng)
        #expect(r.status == 0)
        let lines = r.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(lines.count == 31)
        let login = lines.first { ($0["fields"] as? [String: Any])?["path"] as? String == "/manage/api/v1/login" && $0["kind"] as? String == "response" }
        let fields = try #require(login?["fields"] as? [String: Any])
        #expect(fields["status"] as? Int == 200)
        #expect(fields["content_type"] as? String == "application/json")
        #expect(fields["method"] as? String == "POST")
        let statuses = lines.filter { ($0["fields"] as? [String: Any])?["topic"] as? String == "sys/product/5YSZL260021E9A/status" }
        #expect(statuses.count == 4)  // two update_topo, each seen going in (Pilot 2 → broker) and out (broker → cloud)
        #expect(statuses.allSatisfy { ($0["fields"] as? [String: Any])?["qos"] as? Int == 1 })
    }

    @Test func protocolFilterKeepsOnlyThatProtocol() throws {
        let http = try pilottrace("messages", "--protocol", "http", pcap)
        let lines = http.stdout.split(separator: "\n").filter { $0.contains(" #") }
        #expect(lines.count == 8)
        #expect(lines.allSatisfy { $0.contains(" HTTP ") })
        let bad = try pilottrace("messages", "--protocol", "smtp", pcap)
        #expect(bad.status != 0)
    }

    @Test(.enabled(if: TestPaths.publicCaptures != nil, "../shared/captures/public is absent")) func encryptedFlowsAreNamedAndPointToTheProxy() throws {
        let publicCaptures = try #require(TestPaths.publicCaptures)
        let r = try pilottrace("messages", publicCaptures.appendingPathComponent("sv/mqtt-events-missing-connect.pcap").path)
        #expect(r.status == 0)
        #expect(r.stdout.contains("#1   TLS     tls (mid-stream): picked up mid-stream: TLS records; encrypted, record it with `pilottrace proxy`"))
        #expect(r.stdout.contains("CONNACK rc=0x00 (Connection Accepted) (version 3.1.1 assumed)"))
    }
}

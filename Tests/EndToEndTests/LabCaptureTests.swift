import Foundation
import PilotTraceTestSupport
import Testing

/// The lab captures in Captures/ (scripts/record-lab-captures): each analyzed by the built binary gives exactly the
/// timeline and findings Captures/README.md states.
struct LabCaptureTests {
    struct Expected: CustomTestStringConvertible, Sendable {
        var file: String
        /// Per session, in start order: state and steps that must appear in this order (others may come between).
        var sessions: [(state: String, steps: [String])]
        var findings: [String]
        var testDescription: String { file }
    }

    static let login = [
        "h5-page", "login", "mqtt-credentials", "workspace-info", "mqtt-connect", "mqtt-connack", "mqtt-subscribe",
        "update-topo", "status-reply", "topology-fetch",
    ]

    static let expected: [Expected] = [
        Expected(
            file: "lab-clean-login.pcapng", sessions: [("offline", login + ["update-topo", "device-offline", "status-reply", "mqtt-disconnect"])],
            findings: ["cleartext-credentials"]),
        Expected(
            file: "lab-expired-token.pcapng",
            sessions: [("offline", ["h5-page", "token-rejected", "login"] + login.dropFirst(2) + ["device-offline", "mqtt-disconnect"])],
            findings: ["cleartext-credentials"]),
        Expected(
            file: "lab-no-status-reply.pcapng",
            sessions: [("failed", Array(login.prefix(8)) + ["update-topo", "update-topo", "mqtt-disconnect"])],
            findings: ["cleartext-credentials", "status-reply-missing", "status-reply-missing", "status-retransmitted", "status-retransmitted"]),
        Expected(
            file: "lab-anonymous.pcapng", sessions: [("offline", login + ["device-offline", "mqtt-disconnect"])],
            findings: ["cleartext-credentials", "mqtt-anonymous-login"]),
        Expected(
            file: "lab-passive-offline.pcapng", sessions: [("offline", login + ["link-lost", "offline-confirmed"])],
            findings: ["cleartext-credentials"]),
        Expected(
            file: "lab-two-devices.pcapng",
            sessions: [("offline", login + ["device-offline", "mqtt-disconnect"]), ("offline", login + ["device-offline", "mqtt-disconnect"])],
            findings: ["cleartext-credentials", "cleartext-credentials"]),
        // Session boundaries as real captures have them (issue 15).
        Expected(
            file: "lab-midstream.pcapng",
            sessions: [("offline", ["already-connected", "update-topo", "status-reply", "mqtt-disconnect"])],
            findings: ["capture-incomplete"]),
        Expected(
            file: "lab-midstream-silent-backend.pcapng",
            sessions: [("failed", ["already-connected", "update-topo", "update-topo", "mqtt-disconnect"])],
            findings: ["capture-incomplete", "status-reply-missing", "status-retransmitted"]),
        Expected(
            file: "lab-restart.pcapng",
            sessions: [("offline", login + ["device-offline", "mqtt-disconnect"]), ("offline", login + ["device-offline", "mqtt-disconnect"])],
            findings: ["cleartext-credentials", "cleartext-credentials"]),
        Expected(
            file: "lab-wrong-password-retries.pcapng",
            sessions: [("failed", ["h5-page", "login", "mqtt-credentials", "workspace-info", "mqtt-credentials", "mqtt-connect", "mqtt-connack"])],
            findings: ["cleartext-credentials", "mqtt-connect-refused", "mqtt-credentials-mismatch"]),
        Expected(
            file: "lab-shared-client-id.pcapng",
            sessions: [
                ("offline", login + ["link-lost", "reconnect", "mqtt-connect", "mqtt-disconnect"]),
                ("offline", login + ["link-lost", "reconnect", "mqtt-connect", "mqtt-disconnect"]),
            ],
            findings: ["cleartext-credentials", "cleartext-credentials", "mqtt-client-id-takeover", "status-retransmitted"]),
    ]

    static func analyzed(_ file: String) throws -> String {
        let db = try temporaryDatabase()
        let r = try pilottrace("analyze", "--db", db, TestPaths.captures.appendingPathComponent(file).path)
        #expect(r.status == 0, "\(r.stderr)")
        return db
    }

    static func timelineEvents(_ session: [String: Any]) -> [[String: Any]] { session["events"] as? [[String: Any]] ?? [] }

    @Test func aDeviceOnlineBeforeTheCaptureIsTheClientAndTheBackendTheCloud() throws {
        // The broker listens on 61883, above every ephemeral port: by port number alone the device would be the server.
        for file in ["lab-midstream.pcapng", "lab-midstream-silent-backend.pcapng"] {
            let path = TestPaths.captures.appendingPathComponent(file).path
            let messages = try pilottrace("messages", "--json", "--protocol", "mqtt", path)
            let lines = messages.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(!lines.isEmpty)
            for line in lines { #expect((line["server"] as? String)?.hasSuffix(":61883") == true, "\(file): \(line)") }
            // The device's uplink goes to the broker.
            let uplink = lines.filter { ($0["fields"] as? [String: Any])?["topic"] as? String == "sys/product/5YSZL260021E9A/status" }
            #expect(Set(uplink.compactMap { $0["direction"] as? String }).count == 2, "\(file): the device sends it, the backend receives it")
            let db = try Self.analyzed(file)
            #expect(try LabRun.sessions(db)[0]["gateway_sn"] as? String == "5YSZL260021E9A")
            // The backend connected before the capture and silent is still the cloud: the report draws the broker's
            // deliveries to it.
            let mermaid = try pilottrace("report", "--db", db, "--format", "mermaid", "--out", "-")
            #expect(mermaid.stdout.contains("B->>C: PUBLISH sys/…/status"), "\(file): \(mermaid.stdout)")
        }
    }

    @Test func retriedRefusalsAreCountedAndThePasswordIsNamedNotShown() throws {
        let db = try Self.analyzed("lab-wrong-password-retries.pcapng")
        let session = try LabRun.sessions(db)[0]
        let connack = Self.timelineEvents(session).first { $0["step"] as? String == "mqtt-connack" }
        let detail = connack?["detail"] as? [String: Any]
        #expect(detail?["attempts"] as? Int == 4)
        #expect(!LabRun.steps(session).contains("link-lost"))
        let deviations = try pilottrace("deviations", "--db", db)
        #expect(deviations.stdout.contains("refused 4 times in "))
        #expect(deviations.stdout.contains("the CONNECT's password differs from the one issued by GET /manage/api/v1/users/current"))
        let json = try pilottrace("deviations", "--db", db, "--json")
        let timeline = try pilottrace("timeline", "--db", db, "--json")
        for text in [deviations.stdout, json.stdout, timeline.stdout] {
            #expect(!text.contains("pilot123"))  // neither the issued password nor the wrong one derived from it
        }
    }

    @Test func theRestartedAppHasItsOwnLoginInTheSecondSession() throws {
        let db = try Self.analyzed("lab-restart.pcapng")
        let sessions = try LabRun.sessions(db)
        #expect(sessions.count == 2)
        for s in sessions {
            let steps = LabRun.steps(s)
            #expect(steps.first == "h5-page" && steps.last == "mqtt-disconnect")
            #expect(!steps.contains("link-lost") && !steps.contains("reconnect"))
        }
    }

    @Test func twoDevicesSharingAClientIDAreTwoSessionsAndOneFinding() throws {
        let db = try Self.analyzed("lab-shared-client-id.pcapng")
        let sessions = try LabRun.sessions(db)
        #expect(Set(sessions.compactMap { $0["gateway_sn"] as? String }) == ["5YSZL260021E9A", "5YSZL260020001"])
        for s in sessions {
            for e in Self.timelineEvents(s) where e["step"] as? String == "link-lost" {
                #expect((e["detail"] as? [String: Any])?["reason"] as? String == "client-id-takeover")
            }
        }
        let json = try pilottrace("deviations", "--db", db, "--json")
        let doc = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let takeovers = (doc?["deviations"] as? [[String: Any]] ?? []).filter { $0["rule"] as? String == "mqtt-client-id-takeover" }
        #expect(takeovers.count == 1)
        let evidence = takeovers.first?["evidence"] as? [String: Any]
        #expect(Set(evidence?["devices"] as? [String] ?? []) == ["5YSZL260021E9A", "5YSZL260020001"])
        #expect((evidence?["takeovers"] as? Int ?? 0) >= 2)
    }

    @Test(arguments: expected) func labCaptureIsAnalyzedAsRecorded(_ e: Expected) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-labcap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("a.sqlite").path
        let analyzed = try pilottrace("analyze", "--db", db, TestPaths.captures.appendingPathComponent(e.file).path)
        #expect(analyzed.status == 0, "\(analyzed.stderr)")
        let sessions = try LabRun.sessions(db)
        #expect(sessions.count == e.sessions.count)
        for (s, want) in zip(sessions, e.sessions) {
            #expect(s["state"] as? String == want.state, "\(s["gateway_sn"] ?? "?")")
            var steps = LabRun.steps(s)[...]
            for step in want.steps {
                guard let i = steps.firstIndex(of: step) else {
                    Issue.record("\(e.file): \(step) missing (or out of order) in \(LabRun.steps(s))")
                    break
                }
                steps = steps[(i + 1)...]
            }
        }
        let findings = try LabRun.findings(db)
        #expect(findings == e.findings.sorted())
        // Distinct devices in the two-device captures: distinct gateways and client addresses.
        if e.file == "lab-two-devices.pcapng" || e.file == "lab-shared-client-id.pcapng" {
            #expect(Set(sessions.compactMap { $0["gateway_sn"] as? String }).count == e.sessions.count)
            #expect(Set(sessions.compactMap { $0["client"] as? String }).count == e.sessions.count)
        }
    }
}

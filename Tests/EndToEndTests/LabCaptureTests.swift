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

    static let login = ["h5-page", "login", "mqtt-credentials", "workspace-info", "mqtt-connect", "mqtt-connack", "mqtt-subscribe",
                        "update-topo", "status-reply", "topology-fetch"]

    static let expected: [Expected] = [
        Expected(file: "lab-clean-login.pcapng", sessions: [("offline", login + ["update-topo", "device-offline", "status-reply", "mqtt-disconnect"])],
                 findings: ["cleartext-credentials"]),
        Expected(file: "lab-expired-token.pcapng",
                 sessions: [("offline", ["h5-page", "token-rejected", "login"] + login.dropFirst(2) + ["device-offline", "mqtt-disconnect"])],
                 findings: ["cleartext-credentials"]),
        Expected(file: "lab-no-status-reply.pcapng",
                 sessions: [("failed", Array(login.prefix(8)) + ["update-topo", "update-topo", "mqtt-disconnect"])],
                 findings: ["cleartext-credentials", "status-reply-missing", "status-reply-missing", "status-retransmitted", "status-retransmitted"]),
        Expected(file: "lab-anonymous.pcapng", sessions: [("offline", login + ["device-offline", "mqtt-disconnect"])],
                 findings: ["cleartext-credentials", "mqtt-anonymous-login"]),
        Expected(file: "lab-passive-offline.pcapng", sessions: [("offline", login + ["link-lost", "offline-confirmed"])],
                 findings: ["cleartext-credentials"]),
        Expected(file: "lab-two-devices.pcapng",
                 sessions: [("offline", login + ["device-offline", "mqtt-disconnect"]), ("offline", login + ["device-offline", "mqtt-disconnect"])],
                 findings: ["cleartext-credentials", "cleartext-credentials"]),
    ]

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
        // Distinct devices in the two-device capture: distinct gateways and client addresses.
        if e.sessions.count > 1 {
            #expect(Set(sessions.compactMap { $0["gateway_sn"] as? String }).count == e.sessions.count)
            #expect(Set(sessions.compactMap { $0["client"] as? String }).count == e.sessions.count)
        }
    }
}

import Foundation
import PilotTraceStore
import Testing

@testable import PilotTraceReport
@testable import PilotTraceServe

@Suite struct ConsolePagesTests {
    static let hostile = "<script>alert(1)</script>\"'&\u{202E}\u{1B}[31m"

    @Test func whatCameFromTheCaptureIsEscapedInRows() {
        let row = SessionRow(
            id: 7, gatewaySN: Self.hostile, gatewayModelName: Self.hostile, state: "online", startTime: 0, endTime: 1, mqttClientID: Self.hostile,
            mqttUsername: Self.hostile, aircraftSNs: [Self.hostile])
        let html = ConsolePages.sessionRow(.init(row: row, findings: FindingCounts(error: 2), site: Self.hostile))
        #expect(!html.contains("<script>") && !html.contains("\u{202E}") && !html.contains("\u{1B}"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;"))
        #expect(html.contains("<a href=\"/sessions/7\">#7</a>") && html.contains("2 error"))
    }

    @Test func theSessionPageEscapesTheDiagramAndLinksItsJSONAndReport() {
        let row = SessionRow(id: 3, gatewaySN: Self.hostile, state: "failed", startTime: 0, endTime: 2)
        let flow = FlowRow(
            id: 10, connectionNumber: 1, client: "10.0.0.5:40000", server: "10.0.0.1:1883", roleEvidence: "syn", protocol: "mqtt",
            classificationEvidence: "first-bytes", mqttRole: "device", firstTime: 0, lastTime: 2, closeReason: "fin", handshakeComplete: true)
        let packet = MQTTPacketRow(
            id: 1, flowID: 10, direction: "to-server", time: 0.5, version: "3.1.1", type: "PUBLISH", qos: 0, topic: "sys/product/\(Self.hostile)/status",
            summary: "PUBLISH \(Self.hostile)")
        let step = TimelineEventRow(
            sessionID: 3, ordinal: 0, time: 0.5, phase: "status", step: "update-topo", ok: true, flowID: 10, messageKind: "mqtt", messageID: 1)
        let finding = DeviationRow(
            sessionID: 3, ruleID: "status-reply-missing", severity: "error", title: Self.hostile, time: 0.5, messageKind: "mqtt", messageID: 1)
        let session = ReportLoader.build(row, [step], [finding], [flow], [], [packet], [], showSecrets: false)
        let html = ConsolePages.session(session)
        #expect(html.contains("<svg") && html.contains("status-reply-missing"))
        #expect(!html.contains("<script>") && !html.contains("\u{202E}"))
        #expect(html.contains("href=\"/api/sessions/3\"") && html.contains("href=\"/sessions/3/report.html\""))
        #expect(html.contains("<script src=\"/console.js\" defer></script>"))
    }

    @Test func theSessionsPageKeepsItsFilterInLinksAndTheFeed() {
        var query = ConsoleQuery(["state": "failed", "q": "a b&c", "offset": "50"], defaultLimit: 50, maximumLimit: 500)
        #expect(query.filter.state == "failed" && query.filter.search == "a b&c" && query.offset == 50)
        let rows = (51...100).map { ConsolePages.Listed(row: SessionRow(id: Int64($0), state: "failed", startTime: 0), findings: FindingCounts(), site: nil) }
        let html = ConsolePages.sessions(rows, total: 120, counts: ["failed": 120], query: query, sites: ["web"])
        #expect(html.contains("Sessions 51–100 of 120"))
        #expect(html.contains("href=\"/?state=failed&amp;q=a%20b%26c\""))  // previous page: offset 0
        #expect(html.contains("href=\"/?state=failed&amp;q=a%20b%26c&amp;offset=100\""))
        #expect(html.contains("data-events=\"/events?state=failed&amp;q=a%20b%26c\"") && html.contains("data-insert=\"no\""))
        #expect(html.contains("<option value=\"failed\" selected>"))
        query.offset = 0
        #expect(ConsolePages.sessions([], total: 0, counts: [:], query: query, sites: []).contains("data-insert=\"yes\""))
    }

    @Test func queriesIgnoreWhatTheyCannotUse() {
        let q = ConsoleQuery(
            ["state": "nonsense", "severity": "fatal", "from": "yesterday", "limit": "100000", "offset": "-4"], defaultLimit: 50, maximumLimit: 500)
        #expect(q.filter == SessionFilter() && q.limit == 500 && q.offset == 0)
        #expect(ConsoleQuery.time("2026-11-27") == 1_795_737_600)
        #expect(ConsoleQuery.time("2026-11-27T11:10") == 1_795_777_800)
        #expect(ConsoleQuery.time("2026-11-27T11:10:57Z") == 1_795_777_857)
        #expect(ConsoleQuery.time("1795737600.5") == 1_795_737_600.5)
        let back = ConsoleQuery(["from": ConsoleQuery.inputTime(1_795_737_601)], defaultLimit: 1, maximumLimit: 1)
        #expect(back.filter.from == 1_795_737_601)
    }

    @Test func theFindingsPageGroupsByRuleAndLinksAllTheSessions() {
        let html = ConsolePages.findings([
            RuleFindings(rule: "status-reply-missing", severity: "error", findings: 3, sessions: [1, 4]),
            RuleFindings(rule: "cleartext-credentials", severity: "info", findings: 1, sessions: [2]),
        ])
        #expect(html.contains("<code>status-reply-missing</code>: 3 findings in 2 sessions"))
        #expect(html.contains("<a href=\"/sessions/4\">#4</a>") && html.contains("href=\"/?rule=status-reply-missing\""))
        #expect(html.range(of: "status-reply-missing")!.lowerBound < html.range(of: "cleartext-credentials")!.lowerBound)
    }

    @Test func tokensCompareWhole() {
        #expect(TokenCheck.same("abc", "abc"))
        #expect(!TokenCheck.same("abc", "abd"))
        #expect(!TokenCheck.same("abc", "abcd"))
        #expect(!TokenCheck.same("", "a"))
    }
}

import Foundation
import PilotTraceStore
import Testing

@testable import PilotTraceServe

/// The store's console queries (pagination with filters, counts, findings by rule, totals, the live feed), on SQLite
/// and on PostgreSQL: the same answers from both.
@Suite struct ConsoleQueriesTests {
    /// Six sessions at two capture points: two failed (one with an error), one online with a warning, …
    static func sample(_ db: PilotTraceDatabase) throws {
        try store(
            [
                .make("offline", start: 1_000, gateway: "RC-A", clientID: "client-a", user: "pilot", aircraft: ["AC-1"], latency: 0.004),
                .make("failed", start: 1_010, gateway: "RC-B", clientID: "client_b", user: "bob", findings: [("status-reply-missing", "error")]),
                .make(
                    "online", start: 1_020, gateway: "RC-C", clientID: "client-c", user: "pilot", findings: [("cleartext-credentials", "info")], latency: 0.2),
            ], in: db, key: "one", site: "web")
        try store(
            [
                .make("online", start: 1_030, gateway: "RC-D", clientID: "100%", user: "carol", findings: [("keep-alive-too-long", "warning")], latency: 0.03),
                .make("failed", start: 1_040, gateway: "RC-E", clientID: "client-e", user: "dave"),
                .make("incomplete", start: 1_050, gateway: "RC-F", aircraft: ["AC-9"], findings: [("status-reply-missing", "error")]),
            ], in: db, key: "two", site: "broker")
    }

    static func gateways(_ page: SessionPage) -> [String] { page.rows.map { $0.gatewaySN ?? "-" } }

    @Test(arguments: Engines.all) func pagesPutFailingSessionsFirstThenTheLatest(engine: String) throws {
        let db = try Engines.fresh(engine)
        try Self.sample(db)
        let all = try db.sessionPage(SessionFilter(), limit: 10)
        #expect(all.total == 6)
        // Failed or with an error: F (error, latest), E, B; then the others, latest first.
        #expect(Self.gateways(all) == ["RC-F", "RC-E", "RC-B", "RC-D", "RC-C", "RC-A"])
        let second = try db.sessionPage(SessionFilter(), limit: 2, offset: 2)
        #expect(Self.gateways(second) == ["RC-B", "RC-D"] && second.total == 6)
        #expect(try db.sessionCountsByState() == ["offline": 1, "failed": 2, "online": 2, "incomplete": 1])
        #expect(try db.sites() == ["broker", "web"])
    }

    @Test(arguments: Engines.all) func filtersNarrowTheListAndTheTotal(engine: String) throws {
        let db = try Engines.fresh(engine)
        try Self.sample(db)
        func gateways(_ f: SessionFilter) throws -> [String] {
            let page = try db.sessionPage(f, limit: 10)
            #expect(page.total == page.rows.count)
            return Self.gateways(page).sorted()
        }
        #expect(try gateways(SessionFilter(state: "online")) == ["RC-C", "RC-D"])
        #expect(try gateways(SessionFilter(minSeverity: "error")) == ["RC-B", "RC-F"])
        #expect(try gateways(SessionFilter(minSeverity: "warning")) == ["RC-B", "RC-D", "RC-F"])
        #expect(try gateways(SessionFilter(rule: "cleartext-credentials")) == ["RC-C"])
        #expect(try gateways(SessionFilter(site: "broker")) == ["RC-D", "RC-E", "RC-F"])
        #expect(try gateways(SessionFilter(from: 1_020, to: 1_040)) == ["RC-C", "RC-D"])
        // Search: gateway and aircraft serials, MQTT client id and user, any case; LIKE's wildcards are plain text.
        #expect(try gateways(SessionFilter(search: "rc-a")) == ["RC-A"])
        #expect(try gateways(SessionFilter(search: "ac-9")) == ["RC-F"])
        #expect(try gateways(SessionFilter(search: "PILOT")) == ["RC-A", "RC-C"])
        #expect(try gateways(SessionFilter(search: "%")) == ["RC-D"])
        #expect(try gateways(SessionFilter(search: "t_b")) == ["RC-B"])
        #expect(try gateways(SessionFilter(state: "failed", site: "web")) == ["RC-B"])
    }

    @Test(arguments: Engines.all) func findingsGroupByRuleWithTheirSessions(engine: String) throws {
        let db = try Engines.fresh(engine)
        try Self.sample(db)
        let groups = try db.findingsByRule()
        #expect(groups.map(\.rule) == ["status-reply-missing", "keep-alive-too-long", "cleartext-credentials"])
        #expect(groups[0].findings == 2 && groups[0].sessions.count == 2)
        let page = try db.sessionPage(SessionFilter(rule: "status-reply-missing"), limit: 10)
        #expect(Set(groups[0].sessions) == Set(page.rows.map(\.id)))
        let counts = try db.findingCounts(sessionIDs: page.rows.map(\.id))
        #expect(page.rows.allSatisfy { counts[$0.id] == FindingCounts(error: 1) })
    }

    @Test(arguments: Engines.all) func totalsCountStatesLoginsFindingsAndLatencies(engine: String) throws {
        let db = try Engines.fresh(engine)
        try Self.sample(db)
        let totals = try db.recordTotals()
        #expect(totals.sessionsByState == ["offline": 1, "failed": 2, "online": 2, "incomplete": 1])
        #expect(totals.loginsByResult == ["ok": 4, "failed": 2])
        #expect(
            totals.findings.map { "\($0.rule) \($0.severity) \($0.count)" }.sorted() == [
                "cleartext-credentials info 1", "keep-alive-too-long warning 1", "status-reply-missing error 2",
            ])
        #expect(totals.statusReplyLatencies.sorted() == [0.004, 0.03, 0.2])
        #expect(totals.frames == 200)
    }

    /// A login recorded at the web backend (with an error finding) joined to the device's session recorded at the
    /// broker: the session is listed once, failing first, and found by its part's findings.
    @Test(arguments: Engines.all) func aStitchedSessionCarriesItsPartsFindings(engine: String) throws {
        let db = try Engines.fresh(engine)
        try Self.sample(db)
        let part = StoredSession(
            row: SessionRow(id: 0, state: "incomplete", startTime: 3_000, endTime: 3_001, client: "10.0.0.7:5000"),
            steps: [
                TimelineEventRow(sessionID: 0, ordinal: 0, time: 3_000, phase: "token", step: "login", ok: true),
                TimelineEventRow(sessionID: 0, ordinal: 1, time: 3_000.5, phase: "cloud-module", step: "mqtt-credentials", ok: true),
            ],
            findings: [DeviationRow(ruleID: "mqtt-credentials-mismatch", severity: "error", title: "credentials differ", time: 3_000.5)])
        let device = StoredSession(
            row: SessionRow(id: 0, gatewaySN: "RC-P", state: "online", startTime: 3_002, endTime: 3_010, client: "10.0.0.7:6000", mqttClientID: "RC-P"),
            steps: [TimelineEventRow(sessionID: 0, ordinal: 0, time: 3_002, phase: "connect", step: "mqtt-connect", ok: true)])
        try store([part], in: db, key: "web", site: "web")
        let broker = try store([device], in: db, key: "broker", site: "broker")
        #expect(try db.stitchSessions(analysisID: broker).count == 1)
        let main = try #require(try db.sessionPage(SessionFilter(search: "RC-P"), limit: 1).rows.first)
        #expect(try db.sessionPage(SessionFilter(), limit: 10).total == 7)  // the part is not listed on its own
        #expect(try db.sessionPage(SessionFilter(minSeverity: "error"), limit: 10).rows.map(\.id).contains(main.id))
        #expect(try db.sessionPage(SessionFilter(rule: "mqtt-credentials-mismatch"), limit: 10).rows.map(\.id) == [main.id])
        #expect(try db.sessionPage(SessionFilter(), limit: 1).rows.first?.id == main.id)  // failing first: the latest with an error
        #expect(try db.findingCounts(sessionIDs: [main.id])[main.id] == FindingCounts(error: 1))
        #expect(try db.findingsByRule().first { $0.rule == "mqtt-credentials-mismatch" }?.sessions == [main.id])
    }

    @Test(arguments: Engines.all) func aLiveRunsProgressIsInTheTotalsWhileItRuns(engine: String) throws {
        let db = try Engines.fresh(engine)
        try Self.sample(db)
        let writer = try db.beginAnalysis(key: "live:eth0", captures: [], toolVersion: "test", source: "live", site: "tower")
        #expect(try db.recordTotals().live.isEmpty)  // nothing recorded yet
        try writer.recordProgress(countersJSON: #"{"frames":42,"interfaceDropped":0,"kernelDropped":3}"#)
        let live = try db.recordTotals().live
        #expect(live.count == 1 && live.first?.analysisID == writer.analysisID && live.first?.site == "tower" && live.first?.source == "live")
        #expect(live.first?.countersJSON.contains("\"kernelDropped\":3") == true)
        try writer.finish(frames: 50, frameBytes: 3_200, firstTime: nil, lastTime: nil, countersJSON: "{}")
        #expect(try db.recordTotals().live.isEmpty)  // finished: its counters are the run's
        #expect(throws: PilotTraceStoreError.self) { try writer.recordProgress(countersJSON: "{}") }
    }

    @Test(arguments: Engines.all) func theFeedAnnouncesSessionsThatAppearOrChange(engine: String) async throws {
        let db = try Engines.fresh(engine)
        try Self.sample(db)
        let feed = SessionFeed(database: ConsoleDatabase(db))
        do {
            #expect(try await feed.poll().isEmpty)  // the first look only learns the picture
            #expect(try await feed.poll().isEmpty)
            let writer = try db.beginAnalysis(key: "live", captures: [], toolVersion: "test", source: "live", site: "web")
            try writer.storeSession(key: 0, StoredSession.make("online", start: 2_000, gateway: "RC-L").row, timeline: [])
            try writer.flush()
            let appeared = try await feed.poll()
            let id = try #require(try db.sessionPage(SessionFilter(search: "RC-L"), limit: 1).rows.first?.id)
            #expect(appeared == [id])
            #expect(try await feed.poll().isEmpty)
            // The live run stores its picture again: the session went offline.
            var row = StoredSession.make("offline", start: 2_000, gateway: "RC-L").row
            row.endTime = 2_030
            try writer.storeSession(key: 0, row, timeline: [])
            try writer.flush()
            #expect(try await feed.poll() == [id])
            try writer.finish(frames: 1, frameBytes: 64, firstTime: nil, lastTime: nil, countersJSON: nil)
            _ = try await feed.poll()
            #expect(try await feed.poll().isEmpty)
        }
    }
}

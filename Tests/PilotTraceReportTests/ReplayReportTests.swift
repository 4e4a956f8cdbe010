import Foundation
import PilotTraceStore
import Testing

@testable import PilotTraceReport

/// A replayed session's comparison with its recording appears in every report format.
@Suite struct ReplayReportTests {
    @Test func aReplaysStepsAndRegressionsAreReported() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-replay-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try PilotTraceDatabase.open(path: dir.appendingPathComponent("r.sqlite").path)
        let original = try db.beginAnalysis(key: "capture-1", captures: [], toolVersion: "t")
        try original.storeSession(key: 1, SessionRow(id: 0, gatewaySN: "RC1", state: "offline", startTime: 10, endTime: 14), timeline: [])
        try original.finish(frames: 0, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)
        let replay = try db.beginAnalysis(key: "replay:1", captures: [], toolVersion: "t", source: "replay")
        try replay.storeSession(key: 1, SessionRow(id: 0, gatewaySN: "RC1", state: "failed", startTime: 100, endTime: 110), timeline: [])
        try replay.finish(frames: 0, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)
        try db.recordReplay(
            analysisID: replay.analysisID, sessionID: 2, originalSessionID: 1,
            steps: [
                ReplayStepRow(
                    ordinal: 0, kind: "http", name: "POST /manage/api/v1/login", outcome: "matched", regression: false,
                    recordedLatency: 0.0015, replayedLatency: 0.002, differencesJSON: "[]"),
                ReplayStepRow(
                    ordinal: 1, kind: "mqtt", name: "PUBLISH sys/product/RC1/status (update_topo)", outcome: "missing",
                    regression: true, recordedLatency: 0.0004, replayedLatency: nil,
                    differencesJSON: #"[{"what":"reply","recorded":"received","replayed":"none within the deadline","regression":true}]"#),
            ])

        let doc = try ReportLoader.load(db)
        #expect(doc.sessions.first { $0.row.id == 1 }?.replaySteps.isEmpty == true)
        #expect(doc.sessions.first { $0.row.id == 2 }?.replaySteps.count == 2)

        let markdown = MarkdownReport.render(doc)
        #expect(markdown.contains("### Replay of session #1"))
        #expect(markdown.contains("1 matched, 0 changed, 1 missing; 1 regression."))
        #expect(
            markdown.contains(
                "| 2 | PUBLISH sys/product/RC1/status (update\\_topo) | **missing, regression** | 0.4 ms → – | reply: received → none within the deadline (regression) |"
            ))

        let html = HTMLReport.render(doc)
        #expect(html.contains("Replay of <a href=\"#session-1\">session #1</a>"))
        #expect(html.contains("missing (regression)"))

        let json = try JSONSerialization.jsonObject(with: Data(try JSONReport.render(doc).utf8)) as? [String: Any]
        let sessions = json?["sessions"] as? [[String: Any]] ?? []
        let replayed = sessions.first { $0["id"] as? Int == 2 }
        #expect(replayed?["replay_of"] as? Int == 1)
        #expect((replayed?["replay_steps"] as? [[String: Any]])?.map { $0["outcome"] as? String } == ["matched", "missing"])
        #expect(sessions.first { $0["id"] as? Int == 1 }?["replay_of"] is NSNull)
    }
}

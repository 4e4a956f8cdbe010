import Foundation
import PilotTraceStore
import PilotTraceTestSupport

/// A session to store: its row, its steps and its findings.
struct StoredSession {
    var row: SessionRow
    var steps: [TimelineEventRow] = []
    var findings: [DeviationRow] = []

    /// A session of `state` starting at `start`, with a login (ok or failed) and, when online, a status reply.
    static func make(
        _ state: String, start: Double, gateway: String, clientID: String? = nil, user: String? = nil, aircraft: [String] = [],
        findings: [(rule: String, severity: String)] = [], latency: Double? = nil
    ) -> StoredSession {
        var steps = [
            TimelineEventRow(
                sessionID: 0, ordinal: 0, time: start, phase: "token", step: state == "failed" ? "login-failed" : "login", ok: state != "failed")
        ]
        if let latency {
            steps.append(TimelineEventRow(sessionID: 0, ordinal: 1, time: start + 1, phase: "status", step: "status-reply", ok: true, latency: latency))
        }
        return StoredSession(
            row: SessionRow(
                id: 0, gatewaySN: gateway, state: state, startTime: start, endTime: start + 5, mqttClientID: clientID, mqttUsername: user,
                aircraftSNs: aircraft),
            steps: steps,
            findings: findings.map { DeviationRow(ruleID: $0.rule, severity: $0.severity, title: "\($0.rule) happened", time: start) })
    }
}

/// The databases the store tests run on: a new SQLite file, and a new PostgreSQL database when the private cluster
/// can run here.
enum Engines {
    static var all: [String] {
        var engines = ["sqlite"]
        if PostgresServer.isAvailable { engines.append("postgresql") }
        return engines
    }

    /// A new, empty database of `engine`, opened for writing.
    static func fresh(_ engine: String) throws -> PilotTraceDatabase {
        if engine == "postgresql" { return try PilotTraceDatabase.open(path: try PostgresServer.shared().createDatabase()) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-serve-tests-\(UUID().uuidString)")
        return try PilotTraceDatabase.open(path: folder.appendingPathComponent("db.sqlite").path)
    }
}

/// Stores `sessions` as one finished analysis recorded at `site`; returns its id.
@discardableResult
func store(_ sessions: [StoredSession], in db: PilotTraceDatabase, key: String, site: String = "web", finish: Bool = true) throws -> Int64 {
    let writer = try db.beginAnalysis(key: key, captures: [], toolVersion: "test", site: site)
    for (i, s) in sessions.enumerated() { try writer.storeSession(key: i, s.row, timeline: s.steps, findings: s.findings) }
    if finish {
        try writer.finish(frames: 100, frameBytes: 6_400, firstTime: nil, lastTime: nil, countersJSON: nil)
    } else {
        try writer.flush()
    }
    return writer.analysisID
}

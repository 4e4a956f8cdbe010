import Foundation
import GRDB
import PilotTraceTestSupport
import Testing

@testable import PilotTraceStore

/// A database the existing SQLite code wrote, with a row in every table: ``writeSmallAnalysis(_:key:t0:)`` plus a
/// replay of its session (a second analysis with a replayed session and two replay steps).
func writeEveryTable(_ database: PilotTraceDatabase) throws -> SmallAnalysis {
    let small = try writeSmallAnalysis(database)
    let writer = try database.beginAnalysis(
        key: "replay:1", captures: [], toolVersion: "0.1.0-test", createdAt: Date(timeIntervalSince1970: 60), source: "replay")
    var replayed = SessionRow(id: 0, state: "failed", startTime: 1_700_000_100.5, aircraftSNs: [])
    try writer.storeSession(key: 1, replayed, timeline: [])
    try writer.finish(frames: 0, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)
    replayed.id = try #require(writer.sessionID(key: 1))
    try database.recordReplay(
        analysisID: writer.analysisID, sessionID: replayed.id, originalSessionID: small.session.id,
        steps: [
            ReplayStepRow(
                ordinal: 0, kind: "http", name: "POST /api/v1/login", outcome: "matched", regression: false,
                recordedLatency: 0.25, replayedLatency: 0.125, differencesJSON: "[]"),
            ReplayStepRow(
                ordinal: 1, kind: "mqtt", name: "PUBLISH sys/product/GW1/status", outcome: "missing", regression: true,
                recordedLatency: 0.2, replayedLatency: nil,
                differencesJSON: #"[{"path":"/tid","recorded":"t1","regression":true,"replayed":null,"what":"missing"}]"#),
        ])
    return small
}

/// One table's rows as GRDB reads them (`T.fetchAll`), beside the raw values SQLite holds (`Row`, as ``SQLValue``s).
struct StoredTable<T: Codable & Hashable & FetchableRecord> {
    var records: [T]
    var raw: [[String: SQLValue]]
}

extension PilotTraceDatabase {
    /// Every row of `table`, by id: the records GRDB decodes and the raw values.
    func stored<T: Codable & Hashable & FetchableRecord>(_ type: T.Type, table: String) throws -> StoredTable<T> {
        try sqlite!.read { db in
            let sql = "SELECT * FROM \(table) ORDER BY id"
            return StoredTable(records: try T.fetchAll(db, sql: sql), raw: try Row.fetchAll(db, sql: sql).map(sqlValues))
        }
    }
}

/// A GRDB row as column → ``SQLValue``.
func sqlValues(_ row: Row) -> [String: SQLValue] {
    var values: [String: SQLValue] = [:]
    for (column, value) in row {
        switch value.storage {
        case .null: values[column] = .null
        case .int64(let v): values[column] = .integer(v)
        case .double(let v): values[column] = .real(v)
        case .string(let v): values[column] = .text(v)
        case .blob(let v): values[column] = .blob(v)
        }
    }
    return values
}

/// The record types and their tables, in foreign-key order, for tests that go over every table. Each case runs `body`
/// with its record type.
enum StoreTable: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case analyses, captures, flows, httpExchanges = "http_exchanges", webSocketMessages = "websocket_messages"
    case mqttPackets = "mqtt_packets", sessions, timelineEvents = "timeline_events", deviations
    case replaySteps = "replay_steps"

    var testDescription: String { rawValue }

    /// The table's record type, for generic helpers (Swift opens the existential when it is passed to one).
    var recordType: any (Codable & Hashable & FetchableRecord).Type {
        switch self {
        case .analyses: AnalysisRow.self
        case .captures: CaptureRow.self
        case .flows: FlowRow.self
        case .httpExchanges: HTTPExchangeRow.self
        case .webSocketMessages: WebSocketMessageRow.self
        case .mqttPackets: MQTTPacketRow.self
        case .sessions: SessionRow.self
        case .timelineEvents: TimelineEventRow.self
        case .deviations: DeviationRow.self
        case .replaySteps: ReplayStepRow.self
        }
    }
}

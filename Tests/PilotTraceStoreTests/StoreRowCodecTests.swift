import Foundation
import GRDB
import PilotTraceTestSupport
import Testing

@testable import PilotTraceStore

@Suite("Rows as SQL values (StoreRowEncoder, StoreRowDecoder)")
struct StoreRowCodecTests {
    /// Decodes the raw SQLite rows with ``StoreRowDecoder`` and encodes GRDB's records with ``StoreRowEncoder``.
    static func check<T: Codable & Hashable & FetchableRecord>(_ type: T.Type, table: String, in database: PilotTraceDatabase) throws {
        let stored = try database.stored(T.self, table: table)
        #expect(!stored.records.isEmpty, "the fixture has no \(table) row")
        // Decoding what SQLite holds gives what GRDB reads from it.
        let decoded = try stored.raw.map { try StoreRowDecoder().decode(T.self, from: $0) }
        #expect(decoded == stored.records, "\(table)")
        for (record, raw) in zip(stored.records, stored.raw) {
            // Encoding a record gives the columns SQLite holds, with the same values (JSON texts included).
            let encoded = try StoreRowEncoder().encode(record)
            #expect(Set(encoded.map(\.column)).count == encoded.count, "\(table): a column twice")
            for (column, value) in encoded {
                #expect(raw[column] == value, "\(table).\(column): encoded \(value), SQLite holds \(raw[column]?.description ?? "no such column")")
            }
            // And back.
            let row = Dictionary(uniqueKeysWithValues: encoded.map { ($0.column, $0.value) })
            #expect(try StoreRowDecoder().decode(T.self, from: row) == record, "\(table): round trip")
        }
    }

    @Test(
        "Every row type: decoding SQLite's row gives GRDB's record, encoding gives SQLite's values, and back",
        arguments: StoreTable.allCases)
    func everyTable(_ table: StoreTable) throws {
        try withDatabase { database, _ in
            _ = try writeEveryTable(database)
            try Self.check(table.recordType, table: table.rawValue, in: database)
        }
    }

    @Test("Column order is the type's, NULLs are present, nested values are compact JSON")
    func encoding() throws {
        let capture = CaptureRow(
            ordinal: 2, path: "/a/b.pcap", sha256: "ff", format: "pcap", compressed: true,
            warnings: ["one \"quoted\"", "a/b"])
        let columns = try StoreRowEncoder().encode(capture)
        #expect(
            columns.map(\.column) == [
                "id", "analysis_id", "ordinal", "path", "sha256", "format", "compressed",
                "link_types", "records", "first_time", "last_time", "warnings_json",
            ])
        #expect(columns[0].value == .null)
        #expect(columns[6].value == .integer(1))
        #expect(columns[9].value == .null)
        #expect(columns[11].value == .text(#"["one \"quoted\"","a/b"]"#))

        let exchange = HTTPExchangeRow(
            id: 1, flowID: 2, sequence: 0, method: "GET",
            requestHeaders: [HTTPHeaderField("Host", "x/y")], requestBody: Data())
        let values = Dictionary(uniqueKeysWithValues: try StoreRowEncoder().encode(exchange).map { ($0.column, $0.value) })
        #expect(values["request_headers_json"] == .text(#"[["Host","x/y"]]"#))
        #expect(values["response_headers_json"] == .null)
        #expect(values["request_body"] == .blob(Data()))
        #expect(values["status"] == .null)
    }

    @Test("GRDB's conversions: booleans from integers, integers from reals, texts from blobs, missing optionals")
    func conversions() throws {
        let decoder = StoreRowDecoder()
        var row: [String: SQLValue] = [
            "id": .real(7.9), "analysis_id": .integer(1), "session_id": .integer(2), "ordinal": .integer(0),
            "time": .integer(5), "phase": .blob(Data("login".utf8)), "step": .text("s"), "ok": .integer(2),
            "detail_json": .text("{}"), "unknown_column": .text("ignored"),
        ]
        let event = try decoder.decode(TimelineEventRow.self, from: row)
        #expect(event.id == 7)  // truncated, as GRDB's Int64.fromDatabaseValue
        #expect(event.time == 5.0)
        #expect(event.phase == "login")
        #expect(event.ok)  // nonzero
        #expect(event.latency == nil && event.flowID == nil && event.captureOrdinal == nil)  // absent columns

        row["ok"] = .integer(0)
        #expect(try decoder.decode(TimelineEventRow.self, from: row).ok == false)
        row["ok"] = .null
        #expect(throws: DecodingError.self) { try decoder.decode(TimelineEventRow.self, from: row) }
        row["ok"] = .text("1")
        #expect(throws: DecodingError.self) { try decoder.decode(TimelineEventRow.self, from: row) }
        row["ok"] = .integer(1)
        row["phase"] = nil
        #expect(throws: DecodingError.self) { try decoder.decode(TimelineEventRow.self, from: row) }
        row["phase"] = .text("p")
        row["ordinal"] = .integer(Int64.max)
        #expect(try decoder.decode(TimelineEventRow.self, from: row).ordinal == Int.max)

        // Data from a text (its UTF-8), JSON from a blob, broken JSON refused.
        let session: [String: SQLValue] = [
            "id": .integer(1), "analysis_id": .integer(1), "state": .text("online"), "start_time": .real(1),
            "aircraft_sns_json": .blob(Data(#"["A","B"]"#.utf8)),
        ]
        #expect(try decoder.decode(SessionRow.self, from: session).aircraftSNs == ["A", "B"])
        var broken = session
        broken["aircraft_sns_json"] = .text("[1,")
        #expect(throws: DecodingError.self) { try decoder.decode(SessionRow.self, from: broken) }
        let socket: [String: SQLValue] = [
            "id": .integer(1), "analysis_id": .integer(1), "flow_id": .integer(1), "direction": .text("to-server"),
            "time": .real(1), "kind": .text("text"), "length": .integer(2), "payload": .text("hi"),
        ]
        #expect(try decoder.decode(WebSocketMessageRow.self, from: socket).payload == Data("hi".utf8))
    }

    @Test("Values the store has no SQL form for are refused")
    func refused() {
        struct Dated: Encodable { var at = Date(timeIntervalSince1970: 0) }
        #expect(throws: EncodingError.self) { try StoreRowEncoder().encode(Dated()) }
        struct Infinite: Encodable { var values = [Double.infinity] }  // StoreJSON refuses non-conforming floats
        #expect(throws: EncodingError.self) { try StoreRowEncoder().encode(Infinite()) }
    }
}

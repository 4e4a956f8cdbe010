import Foundation
import GRDB
import Testing

@testable import PilotTraceStore

@Suite("Analysis writer and queries")
struct AnalysisWriterTests {
    @Test("A small analysis reads back field by field, BLOBs and NULLs included")
    func roundTrip() throws {
        try withDatabase { database, _ in
            // Given an analysis with a bit of everything
            let written = try writeSmallAnalysis(database)
            let a = written.analysisID

            // Then every row reads back exactly as given (with the analysis id stamped)
            let analysis = try #require(try database.latestAnalysis())
            #expect(
                analysis
                    == AnalysisRow(
                        id: a, key: "aaaa,bbbb", createdAt: "1970-01-01T00:00:00Z", frames: 127, frameBytes: 99_000,
                        firstTime: 1_700_000_000.25, lastTime: 1_700_000_012.75, toolVersion: "0.1.0-test",
                        countersJSON: #"{"dropped":0}"#, state: "complete", finishedAt: analysis.finishedAt, site: PilotTraceDatabase.defaultSite))
            #expect(analysis.finishedAt?.hasSuffix("Z") == true)
            #expect(try database.analyses() == [analysis])

            let captures = try database.captures(analysisID: a)
            #expect(captures.map(\.ordinal) == [0, 1])
            #expect(
                captures.map { row -> CaptureRow in
                    var r = row; r.id = nil; return r
                } == written.captures)
            #expect(captures[1].warnings == ["truncated last record", "snaplen 96 < frame 1514"])

            let flows = try database.flows(analysisID: a)
            #expect(flows == written.flows)
            #expect(flows[2].closeReason == "rst" && flows[2].upPackets == 3)  // the later upsert won
            #expect(flows[0].tlsServerName == nil && flows[0].mqttRole == nil)
            #expect(flows[0].downGapBytes == 120 && flows[0].upRetransmissions == 1)

            let http = try database.httpExchanges(analysisID: a)
            #expect(http == written.http)
            #expect(http[0].responseBody == Data([0x00, 0xff, 0x10, 0x80]))
            #expect(http[1].requestBody == Data() && http[1].requestHeaders == [])  // empty, not NULL
            #expect(http[2].method == nil && http[2].requestHeaders == nil && http[2].requestBody == nil)
            #expect(http[2].status == 500)

            #expect(try database.webSocketMessages(analysisID: a) == written.webSocket)
            let mqtt = try database.mqttPackets(analysisID: a)
            #expect(mqtt == written.mqtt)
            #expect(mqtt[0].password == Data([0x70, 0x00, 0x77]))
            #expect(mqtt[0].maskedPassword == "<3 bytes hidden>")
            #expect(mqtt[3].packetID == nil && mqtt[1].payload == nil && mqtt[1].topic == nil)
            #expect(
                try database.mqttPackets(analysisID: a, topic: "sys/product/GW1/status").map(\.id)
                    == [written.mqtt[2].id])

            let sessions = try database.sessions(analysisID: a)
            #expect(sessions == [written.session])
            #expect(try database.sessions() == sessions)
            #expect(try database.session(id: written.session.id) == written.session)
            #expect(try database.session(id: written.session.id + 1) == nil)

            let timeline = try database.timeline(sessionID: written.session.id)
            #expect(timeline.allSatisfy { $0.id != nil })
            #expect(
                timeline.map { row -> TimelineEventRow in
                    var r = row; r.id = nil; return r
                } == written.timeline)

            let deviations = try database.deviations(sessionID: written.session.id)
            #expect(deviations.count == 1)
            var deviation = try #require(deviations.first)
            #expect(deviation.id != nil)
            deviation.id = nil
            #expect(deviation == written.deviation)
            #expect(try database.deviations(analysisID: a).count == 1)

            #expect(
                try database.counts(analysisID: a)
                    == AnalysisCounts(
                        captures: 2, flows: 3, http: 3, websocket: 3, mqtt: 4, sessions: 1, timeline: 3, deviations: 1))
        }
    }

    @Test("Columns hold what docs/schema.md says: snake_case, BLOBs, JSON text, NULLs, 0/1")
    func rawStorage() throws {
        try withDatabase { database, _ in
            let written = try writeSmallAnalysis(database)
            let firstHTTP = written.http[0].id
            #expect(
                try database.scalar("SELECT typeof(response_body) FROM http_exchanges WHERE id = ?", [firstHTTP])
                    == "blob")
            #expect(
                try database.scalar("SELECT request_headers_json FROM http_exchanges WHERE id = ?", [firstHTTP])
                    == #"[["Host","10.0.0.5"],["Content-Type","application/json"]]"#)
            #expect(
                try database.scalar(
                    "SELECT typeof(request_body) FROM http_exchanges WHERE id = ?",
                    [written.http[2].id]) == "null")
            #expect(
                try database.scalar(
                    "SELECT json_extract(request_json, '$.user') FROM http_exchanges WHERE id = ?",
                    [firstHTTP]) == "pilot")
            #expect(try database.scalar("SELECT aircraft_sns_json FROM sessions") == #"["AC1","AC2"]"#)
            #expect(try database.scalar("SELECT warnings_json FROM captures WHERE ordinal = 0") == "[]")
            #expect(try database.scalar("SELECT typeof(password) FROM mqtt_packets WHERE type = 'CONNECT'") == "blob")
            #expect(try database.scalar("SELECT over_websocket FROM mqtt_packets WHERE type = 'CONNECT'") == 1)
            #expect(try database.scalar("SELECT typeof(first_time) FROM flows LIMIT 1") == "real")
            #expect(
                try database.scalar(
                    "SELECT count(*) FROM timeline_events WHERE latency IS NULL AND flow_id IS NULL") == 1)
        }
    }

    @Test("Analysing the same input again replaces its rows; another input adds")
    func replaceOnReanalysis() throws {
        try withDatabase { database, _ in
            // Given one analysis
            let first = try writeSmallAnalysis(database, key: "k1")
            let once = try database.totalRows()
            #expect(once["mqtt_packets"] == 4 && once["analyses"] == 1)

            // When the same input is analysed again
            let second = try writeSmallAnalysis(database, key: "k1")

            // Then its rows are replaced, not duplicated
            #expect(try database.totalRows() == once)
            #expect(try database.analyses().map(\.id) == [second.analysisID])
            #expect(second.analysisID != first.analysisID)
            #expect(try database.counts(analysisID: first.analysisID) == AnalysisCounts())
            // and ids are not handed out again
            #expect(second.flows[0].id > first.flows[2].id)
            #expect(second.mqtt[0].id > first.mqtt[3].id)

            // When another input is analysed, it adds
            let third = try writeSmallAnalysis(database, key: "k2")
            let twice = try database.totalRows()
            for (table, count) in once { #expect(twice[table] == 2 * count, "\(table)") }
            #expect(try database.analyses().map(\.key) == ["k1", "k2"])
            #expect(try database.latestAnalysis()?.id == third.analysisID)
            #expect(try database.sessions().count == 2)
        }
    }

    @Test("10,000 MQTT rows in batches: all present with the ids assigned; a flush is visible to another connection")
    func batching() throws {
        try withDatabase { database, folder in
            let writer = try database.beginAnalysis(key: "big", captures: [], toolVersion: "t", batchSize: 2_000)
            let flow = FlowRow(
                id: try writer.nextFlowID(), connectionNumber: 1, client: "1.2.3.4:5", server: "5.6.7.8:1883",
                roleEvidence: "syn", protocol: "mqtt", classificationEvidence: "first-bytes", firstTime: 0,
                lastTime: 0, closeReason: "open", handshakeComplete: true)
            try writer.upsertFlow(flow)
            let other = try PilotTraceDatabase.open(path: database.path)  // a second pool: other connections

            var ids: [Int64] = []
            func insert(_ n: Int) throws {
                for _ in 0..<n {
                    let id = try writer.nextMQTTID()
                    ids.append(id)
                    try writer.insertMQTTPacket(
                        MQTTPacketRow(
                            id: id, flowID: flow.id, direction: "to-server", time: Double(ids.count), version: "3.1.1",
                            type: "PUBLISH", qos: 0, topic: "t/\(ids.count % 10)", payload: Data([UInt8(ids.count % 256)]),
                            payloadLength: 1, summary: "PUBLISH"))
                    #expect(writer.pendingRowCount < 2_000)
                }
            }

            // 1,500 rows (plus the flow) stay buffered: the other connection sees none
            try insert(1_500)
            #expect(try other.counts(analysisID: writer.analysisID).mqtt == 0)
            // An explicit flush makes them visible at once
            try writer.flush()
            #expect(writer.pendingRowCount == 0)
            #expect(try other.counts(analysisID: writer.analysisID) == AnalysisCounts(flows: 1, mqtt: 1_500))

            // Batches of 2,000 are written as the buffer fills, before finish
            try insert(4_000)
            #expect(try other.counts(analysisID: writer.analysisID).mqtt == 5_000 + 500)
            try insert(4_500)
            try writer.finish(frames: 10_000, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)

            let stored = try other.mqttPackets(analysisID: writer.analysisID)
            #expect(stored.count == 10_000)
            #expect(stored.map(\.id) == ids)
            #expect(Set(ids).count == 10_000)
            #expect(stored.last?.payload == Data([UInt8(10_000 % 256)]))
            #expect(writer.writtenRowCount == 10_001)
            _ = folder
        }
    }

    @Test("In the background: batches are written while rows keep coming, in order; flush and finish wait")
    func backgroundBatches() throws {
        try withDatabase { database, _ in
            let writer = try database.beginAnalysis(
                key: "bg", captures: [], toolVersion: "t", batchSize: 100,
                background: true)
            let flow = FlowRow(
                id: try writer.nextFlowID(), connectionNumber: 1, client: "1.2.3.4:5", server: "5.6.7.8:1883",
                roleEvidence: "syn", protocol: "mqtt", classificationEvidence: "first-bytes", firstTime: 0,
                lastTime: 0, closeReason: "open", handshakeComplete: true)
            try writer.upsertFlow(flow)
            var ids: [Int64] = []
            for i in 0..<1_050 {
                let id = try writer.nextMQTTID()
                ids.append(id)
                try writer.insertMQTTPacket(
                    MQTTPacketRow(
                        id: id, flowID: flow.id, direction: "to-client", time: Double(i), version: "3.1.1", type: "PUBLISH",
                        topic: "t", payload: Data(#"{"n":\#(i)}"#.utf8), payloadLength: 8, payloadJSON: #"{"n":\#(i)}"#,
                        summary: "PUBLISH"))
                #expect(writer.pendingRowCount < 100)
            }
            // The flow's final version, given after its messages: still written last, in place.
            var closed = flow
            closed.closeReason = "fin"
            try writer.upsertFlow(closed)
            try writer.finish(frames: 1, frameBytes: 1, firstTime: nil, lastTime: nil, countersJSON: nil)

            let stored = try database.mqttPackets(analysisID: writer.analysisID)
            #expect(stored.map(\.id) == ids)
            #expect(stored.last?.payloadJSON == #"{"n":1049}"#)
            #expect(try database.flows(analysisID: writer.analysisID).map(\.closeReason) == ["fin"])
            #expect(writer.writtenRowCount == 1_052)
        }
    }

    @Test("In the background, a batch that fails is reported by the next call; the batches before it stay")
    func backgroundFailure() throws {
        try withDatabase { database, _ in
            let writer = try database.beginAnalysis(
                key: "bf", captures: [], toolVersion: "t", batchSize: 10,
                background: true)
            try writer.storeSession(key: 1, SessionRow(id: 0, state: "online", startTime: 1), timeline: [])
            try writer.flush()
            // A full batch of packets of a flow that does not exist: handed to the background, refused there.
            for i in 0..<10 {
                try writer.insertMQTTPacket(
                    MQTTPacketRow(
                        id: try writer.nextMQTTID(), flowID: 999, direction: "to-server", time: Double(i), version: "3.1.1",
                        type: "PINGREQ", summary: "PINGREQ"))
            }
            let error = #expect(throws: PilotTraceStoreError.self) { try writer.flush() }
            #expect(error?.kind == .writeFailed)
            #expect(error?.message.contains("FOREIGN KEY") == true)
            // Reported once; the writer goes on.
            try writer.finish(frames: 0, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)
            #expect(try database.counts(analysisID: writer.analysisID) == AnalysisCounts(mqtt: 0, sessions: 1))
        }
    }

    @Test("A session stored again under its key keeps its id, with the latest row and timeline")
    func storeSessionAgain() throws {
        try withDatabase { database, _ in
            let writer = try database.beginAnalysis(key: "s", captures: [], toolVersion: "t")
            var session = SessionRow(id: 0, state: "incomplete", startTime: 10)
            func event(_ step: String) -> TimelineEventRow {
                TimelineEventRow(sessionID: 0, ordinal: 0, time: 10, phase: "login", step: step, ok: true)
            }
            let finding = DeviationRow(ruleID: "r", severity: "warning", title: "t")
            try writer.storeSession(key: 7, session, timeline: [event("http-login")], findings: [finding])
            try writer.flush()
            let id = try #require(writer.sessionID(key: 7))

            // Stored twice in the same batch, and after its first version was written
            session.state = "failed"
            try writer.storeSession(key: 7, session, timeline: [event("a")])
            session.state = "online"
            session.endTime = 20
            session.aircraftSNs = ["AC9"]
            try writer.storeSession(key: 7, session, timeline: [event("b"), event("c")])
            #expect(writer.pendingRowCount == 3)
            try writer.finish(frames: 0, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)

            #expect(writer.sessionID(key: 7) == id)
            let sessions = try database.sessions()
            #expect(sessions.map(\.id) == [id])
            #expect(sessions.first?.state == "online")
            #expect(sessions.first?.endTime == 20)
            #expect(sessions.first?.aircraftSNs == ["AC9"])
            #expect(try database.timeline(sessionID: id).map(\.step) == ["b", "c"])
            // Findings given with nil stay as they were
            #expect(try database.deviations(sessionID: id).map(\.ruleID) == ["r"])
        }
    }

    @Test("Deleting an analysis cascades to everything it holds, and nothing else")
    func cascade() throws {
        try withDatabase { database, _ in
            let doomed = try writeSmallAnalysis(database, key: "doomed")
            let kept = try writeSmallAnalysis(database, key: "kept")
            let both = try database.totalRows()

            #expect(try database.deleteAnalysis(id: doomed.analysisID))
            #expect(try database.deleteAnalysis(id: doomed.analysisID) == false)

            #expect(try database.counts(analysisID: doomed.analysisID) == AnalysisCounts())
            let after = try database.totalRows()
            for (table, count) in both { #expect(after[table] == count / 2, "\(table)") }
            #expect(try database.timeline(sessionID: doomed.session.id).isEmpty)
            #expect(try database.timeline(sessionID: kept.session.id).count == 3)
        }
    }

    @Test("Timelines of several sessions come from one query, in order")
    func timelines() throws {
        try withDatabase { database, _ in
            let writer = try database.beginAnalysis(key: "t", captures: [], toolVersion: "t")
            func events(_ steps: [(Int, String)]) -> [TimelineEventRow] {
                steps.map { TimelineEventRow(sessionID: 0, ordinal: $0.0, time: Double($0.0), phase: "p", step: $0.1, ok: true) }
            }
            try writer.storeSession(
                key: 1, SessionRow(id: 0, state: "online", startTime: 5),
                timeline: events([(2, "s2"), (0, "s0"), (1, "s1")]))
            try writer.storeSession(key: 2, SessionRow(id: 0, state: "online", startTime: 1), timeline: events([(0, "only")]))
            try writer.storeSession(key: 3, SessionRow(id: 0, state: "online", startTime: 3), timeline: [])
            try writer.finish(frames: 0, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)
            let (s1, s2, s3) = (writer.sessionID(key: 1)!, writer.sessionID(key: 2)!, writer.sessionID(key: 3)!)
            #expect([s1, s2, s3] == [1, 2, 3])  // in the order stored

            #expect(try database.sessions().map(\.id) == [s2, s3, s1])  // by start time
            let all = try database.timelines(sessionIDs: [s1, s2, s3, 999])
            #expect(all[s1]?.map(\.step) == ["s0", "s1", "s2"])
            #expect(all[s2]?.map(\.step) == ["only"])
            #expect(all[s3] == [])
            #expect(all[999] == [])
            #expect(try database.timeline(sessionID: s1) == all[s1])
            #expect(try database.timelines(sessionIDs: []).isEmpty)
        }
    }

    @Test("Ids come from the database: they continue after the rows already there, and writers never share one")
    func idsContinue() throws {
        try withDatabase { database, _ in
            let first = try writeSmallAnalysis(database, key: "one")
            let writer = try database.beginAnalysis(key: "two", captures: [], toolVersion: "t")
            let other = try PilotTraceDatabase.open(path: database.path).beginAnalysis(key: "three", captures: [], toolVersion: "t")
            // After the block the first writer took (ids are not reused even where that writer left them unused)
            #expect(try writer.nextFlowID() == first.flows.map(\.id).min()! + 256)
            #expect(try writer.nextHTTPID() == first.http.map(\.id).min()! + 1_024)
            let mqtt = try writer.nextMQTTID()
            #expect(mqtt == first.mqtt.map(\.id).min()! + 8_192)
            #expect(try writer.nextWebSocketID() == first.webSocket.map(\.id).min()! + 1_024)
            #expect(try writer.nextMQTTID() == mqtt + 1)
            // The other writer's block starts after this one's
            var mine = Set<Int64>(), theirs = Set<Int64>()
            for _ in 0..<10_000 {
                mine.insert(try writer.nextMQTTID())
                theirs.insert(try other.nextMQTTID())
            }
            #expect(mine.count == 10_000 && theirs.count == 10_000)
            #expect(mine.isDisjoint(with: theirs))
            #expect(mine.allSatisfy { $0 > 0 } && theirs.allSatisfy { $0 > 0 })
            // Sessions: the next one inserted takes the next rowid
            try writer.storeSession(key: 1, SessionRow(id: 0, state: "online", startTime: 1), timeline: [])
            try writer.flush()
            #expect(writer.sessionID(key: 1) == first.session.id + 1)
        }
    }

    @Test("A killed analysis stays running with what was flushed; an interrupted one says why; a finished writer refuses rows")
    func interruptedAndFinished() throws {
        try withDatabase { database, _ in
            let writer = try database.beginAnalysis(
                key: "i",
                captures: [
                    CaptureRow(
                        ordinal: 0, path: "/c.pcap", sha256: "c", format: "pcap",
                        compressed: false)
                ], toolVersion: "t", site: "broker-1")
            try writer.storeSession(key: 1, SessionRow(id: 0, state: "incomplete", startTime: 1), timeline: [])
            try writer.flush()
            try writer.storeSession(key: 2, SessionRow(id: 0, state: "incomplete", startTime: 2), timeline: [])
            // The process stops here: no flush, no finish.
            let analysis = try #require(try database.analysis(key: "i"))
            #expect(analysis.frames == nil)
            #expect(analysis.state == "running" && analysis.isUnfinished)
            #expect(analysis.site == "broker-1")
            #expect(try database.counts(analysisID: analysis.id!) == AnalysisCounts(captures: 1, sessions: 1))

            // A capture file of another ordinal is added (a rotating capture's next file); the first keeps its digest
            try writer.updateCapture(CaptureRow(ordinal: 1, path: "/c2.pcap", sha256: "", format: "pcap", compressed: false, records: 3))
            try writer.updateCapture(CaptureRow(ordinal: 0, path: "/c.pcap", sha256: "", format: "pcapng", compressed: false, records: 9))
            try writer.finish(frames: 1, frameBytes: 2, firstTime: 1, lastTime: 2, countersJSON: "{}", stop: .interrupted("SIGINT while reading"))
            #expect(writer.isFinished)
            let error = #expect(throws: PilotTraceStoreError.self) {
                try writer.storeSession(key: 3, SessionRow(id: 0, state: "online", startTime: 3), timeline: [])
            }
            #expect(error?.kind == .writerFinished)
            let finished = try #require(try database.analysis(key: "i"))
            #expect(finished.frames == 1)
            #expect(finished.state == "interrupted" && finished.stopReason == "SIGINT while reading" && finished.finishedAt != nil)
            #expect(try database.sessions().count == 2)
            let captures = try database.captures(analysisID: finished.id!)
            #expect(captures.map(\.path) == ["/c.pcap", "/c2.pcap"])
            #expect(captures.map(\.sha256) == ["c", ""])
            #expect(captures.map(\.records) == [9, 3])
        }
    }

    @Test("Two captures with one ordinal are refused")
    func duplicateOrdinals() throws {
        try withDatabase { database, _ throws in
            let capture = CaptureRow(ordinal: 0, path: "/a", sha256: "a", format: "pcap", compressed: false)
            let error = #expect(throws: PilotTraceStoreError.self) {
                _ = try database.beginAnalysis(key: "d", captures: [capture, capture], toolVersion: "t")
            }
            #expect(error?.kind == .invalidRow)
            #expect(try database.analyses().isEmpty)
        }
    }

    @Test("Analysis key: digests joined in order")
    func analysisKey() {
        #expect(AnalysisRow.key(captureDigests: ["b", "a"]) == "b,a")
    }
}

import Foundation
import PilotTraceTestSupport
import Testing

@testable import PilotTraceStore

/// A telemetry window's row is written as the window opens and completed as it closes
/// (``MQTTPacketRow/WindowClose``): in place while the row still waits in the writer's batch, by an `UPDATE` once a
/// batch has written it. Both ways must leave the same row, on both engines.
@Suite("Telemetry windows in the store")
struct TelemetryWindowStoreTests {
    static func publish(_ id: Int64, flow: Int64, time: Double) -> MQTTPacketRow {
        MQTTPacketRow(
            id: id, flowID: flow, direction: "to-server", time: time, version: "3.1.1", type: "PUBLISH", packetID: 7, qos: 1,
            retain: false, dup: false, topic: "thing/product/SN1/osd", payload: Data(#"{"data":{}}"#.utf8), payloadLength: 11,
            summary: "PUBLISH thing/product/SN1/osd", captureOrdinal: 0, firstFrame: 10, lastFrame: 10)
    }

    static func close(_ id: Int64, frames: String?) -> MQTTPacketRow.WindowClose {
        MQTTPacketRow.WindowClose(
            id: id, packetCount: 5, lastTime: 1_700_000_008, lastFrame: 50, totalPayloadLength: 55, acknowledged: 4,
            frames: frames, summarySuffix: " ×5 in 8.0 s")
    }

    /// Writes two windows (one closed while buffered, one after a flush) and a window of one PUBLISH (nothing to add
    /// but its count), and checks what reads back.
    func check(_ database: PilotTraceDatabase) throws {
        let writer = try database.beginAnalysis(key: "windows", captures: [CaptureRow(ordinal: 0, path: "a.pcap", sha256: "aa", format: "pcap", compressed: false)], toolVersion: "t")
        let flow = FlowRow(
            id: try writer.nextFlowID(), connectionNumber: 1, client: "10.0.0.2:50000", server: "10.0.0.1:1883",
            roleEvidence: "syn", protocol: "mqtt", classificationEvidence: "port", firstTime: 1_700_000_000,
            lastTime: 1_700_000_020, closeReason: "fin", handshakeComplete: true)
        try writer.upsertFlow(flow)

        // Given a window closed while its row is still buffered
        let inBatch = try writer.nextMQTTID()
        try writer.insertMQTTPacket(Self.publish(inBatch, flow: flow.id, time: 1_700_000_000))
        let pending = writer.pendingRowCount
        try writer.closeTelemetryWindow(Self.close(inBatch, frames: "10,20,30,40,50"))
        #expect(writer.pendingRowCount == pending)  // completed in place: no UPDATE queued
        // and one closed after a flush wrote its row, with no frame list (frames not known)
        let written = try writer.nextMQTTID()
        try writer.insertMQTTPacket(Self.publish(written, flow: flow.id, time: 1_700_000_000))
        try writer.flush()
        #expect(try database.mqttPackets(analysisID: writer.analysisID).first { $0.id == written }?.packetCount == 1)
        try writer.closeTelemetryWindow(Self.close(written, frames: nil))
        #expect(writer.pendingRowCount == 1)  // the UPDATE
        // and a window of a single PUBLISH
        let single = try writer.nextMQTTID()
        try writer.insertMQTTPacket(Self.publish(single, flow: flow.id, time: 1_700_000_001))
        try writer.flush()
        try writer.closeTelemetryWindow(
            MQTTPacketRow.WindowClose(
                id: single, packetCount: 1, lastTime: 1_700_000_001, lastFrame: 10, totalPayloadLength: 11, acknowledged: 0,
                frames: "10", summarySuffix: ""))
        try writer.finish(frames: 50, frameBytes: 0, firstTime: nil, lastTime: nil, countersJSON: nil)

        // Then both windows read back the same, completed; the single one keeps its summary
        let rows = Dictionary(uniqueKeysWithValues: try database.mqttPackets(analysisID: writer.analysisID).map { ($0.id, $0) })
        var expected = Self.publish(inBatch, flow: flow.id, time: 1_700_000_000)
        expected.analysisID = writer.analysisID
        Self.close(inBatch, frames: "10,20,30,40,50").apply(to: &expected)
        #expect(rows[inBatch] == expected)
        #expect(expected.summary == "PUBLISH thing/product/SN1/osd ×5 in 8.0 s")
        #expect(expected.packetCount == 5 && expected.acknowledged == 4 && expected.lastFrame == 50 && expected.totalPayloadLength == 55)

        expected.id = written
        expected.frames = nil
        #expect(rows[written] == expected)

        #expect(rows[single]?.summary == "PUBLISH thing/product/SN1/osd")
        #expect(rows[single]?.packetCount == 1 && rows[single]?.frames == "10" && rows[single]?.acknowledged == 0)
        #expect(rows.count == 3)
    }

    @Test("SQLite: a window closed while buffered and one closed after its row was written read back the same")
    func sqlite() throws {
        try withDatabase { database, _ in try check(database) }
    }

    @Test(
        "PostgreSQL: the same, the written rows completed by one UPDATE … FROM (VALUES …)",
        .enabled(if: PostgresServer.isAvailable, "needs PostgreSQL's server binaries and root (scripts/bootstrap installs postgresql)"))
    func postgres() throws {
        try check(try PilotTraceDatabase.open(path: try PostgresServer.shared().createDatabase()))
    }
}

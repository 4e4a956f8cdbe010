import Foundation
import PilotTraceStore
import Testing

@testable import PilotTraceReport

@Suite struct SequenceDiagramTests {
    /// A session with an hour of osd at 0.5 Hz for the RC and the aircraft, relayed to the cloud: the diagram stays small.
    @Test func thousandsOfTelemetryMessagesCollapse() {
        let session = SessionRow(id: 1, gatewaySN: "RC1", state: "online", startTime: 0, endTime: 3600, aircraftSNs: ["AC1"])
        let device = FlowRow(
            id: 10, connectionNumber: 1, client: "10.0.0.5:40000", server: "10.0.0.1:1883", roleEvidence: "syn",
            protocol: "mqtt", classificationEvidence: "first-bytes", mqttRole: "device", firstTime: 0, lastTime: 3600,
            closeReason: "capture-end", handshakeComplete: true)
        var cloud = device
        cloud.id = 11
        cloud.mqttRole = "cloud"
        var packets: [MQTTPacketRow] = []
        var id: Int64 = 0
        func add(_ flow: Int64, _ dir: String, _ t: Double, _ topic: String) {
            id += 1
            packets.append(
                MQTTPacketRow(
                    id: id, flowID: flow, direction: dir, time: t, version: "3.1.1", type: "PUBLISH", qos: 0,
                    topic: topic, summary: "PUBLISH \(topic)"))
        }
        add(10, "to-server", 0, "sys/product/RC1/status")
        for k in 0..<1800 {
            let t = 1 + Double(k) * 2
            add(10, "to-server", t, "thing/product/RC1/osd")
            add(10, "to-server", t + 0.1, "thing/product/AC1/osd")
            add(11, "to-client", t + 0.01, "thing/product/RC1/osd")
            add(11, "to-client", t + 0.11, "thing/product/AC1/osd")
        }
        let events = [
            TimelineEventRow(
                sessionID: 1, ordinal: 0, time: 0, phase: "status", step: "update-topo", ok: true, flowID: 10,
                messageKind: "mqtt", messageID: 1)
        ]
        let s = ReportLoader.build(session, events, [], [device, cloud], [], packets, [], showSecrets: false)
        #expect(s.arrows.count == 3)  // status, then osd device → broker, osd broker → cloud
        #expect(s.arrows.map(\.count).reduce(0, +) == packets.count)
        #expect(s.arrows[1].label == "PUBLISH thing/…/osd")
        #expect(s.arrows[1].count == 3600)
        #expect(s.details.count < 10)  // one detail per arrow, not per message
        let svg = SequenceDiagram.svg(s)
        #expect(svg.contains("×3600"))
    }
}

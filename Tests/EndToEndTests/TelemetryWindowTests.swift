import Foundation
import PilotTraceTestSupport
import Testing

/// Telemetry windows (docs/schema.md, `mqtt_packets`): osd and state are stored as one row per connection, direction,
/// topic, QoS and 10-second window. Checked against tshark on generated captures: every telemetry PUBLISH is counted
/// in exactly one window, at the frame tshark shows it in; PUBACKs are folded into their window's count; nothing else
/// is folded; and the analysis (sessions, steps, findings) is the one AnalysisGoldenTests keeps.
@Suite struct TelemetryWindowTests {
    /// A login storm: 40 devices each publish 20 QoS 1 `state` messages 10 ms apart, each acknowledged except the last
    /// of every fourth device.
    static let storm = ["--shape", "login-storm", "--messages", "20", "--devices", "40", "--stagger", "0.001", "--noise", "1", "--seed", "3"]
    /// Devices online for 60 s sending QoS 0 osd every 2 s (windows of 5), coming and going.
    static let osd = ["--devices", "6", "--online", "60", "--stagger", "7", "--noise", "1", "--seed", "4"]

    struct Analyzed {
        var folder: String
        var capture: String
        var database: String

        func sql(_ query: String) throws -> [[String]] {
            let sqlite = try #require(TestPaths.which("sqlite3"), "sqlite3 is installed by scripts/bootstrap")
            let r = try runProcess(sqlite, ["-bail", "-separator", "|", database, query])
            try #require(r.status == 0, "\(query): \(r.stderr)")
            return r.stdout.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        }
    }

    func analyze(_ generate: [String]) throws -> Analyzed {
        let database = try temporaryDatabase()
        let folder = (database as NSString).deletingLastPathComponent
        let capture = folder + "/generated.pcap"
        let generated = try pilottrace(["lab", "generate"] + generate + ["--out", capture])
        try #require(generated.status == 0, "\(generated.stderr)")
        let analyzed = try pilottrace(["analyze", "--db", database, capture])
        try #require([0, 1].contains(analyzed.status), "analyze exited \(analyzed.status): \(analyzed.stderr)")
        return Analyzed(folder: folder, capture: capture, database: database)
    }

    /// The frame of each telemetry PUBLISH as tshark sees it (a frame once per PUBLISH in it), and of each other MQTT
    /// packet type.
    func tsharkPackets(_ capture: String) throws -> (telemetry: [Int], types: [Int: Int]) {
        var telemetry: [Int] = []
        var types: [Int: Int] = [:]
        for p in try JoinableOutputTests().dissect(capture, mqttPort: 1883) {
            guard let type = p.mqttType else { continue }
            types[type, default: 0] += 1
            if type == 3, p.topic.hasPrefix("thing/product/"), p.topic.hasSuffix("/osd") || p.topic.hasSuffix("/state") {
                telemetry.append(p.frame)
            }
        }
        return (telemetry.sorted(), types)
    }

    /// The stored windows' frames, one per PUBLISH they stand for.
    func storedTelemetryFrames(_ a: Analyzed) throws -> [Int] {
        let rows = try a.sql(
            """
            SELECT frames, packet_count FROM mqtt_packets
            WHERE type = 'PUBLISH' AND (topic LIKE 'thing/product/%/osd' OR topic LIKE 'thing/product/%/state')
            """)
        var frames: [Int] = []
        for r in rows {
            let list = r[0].split(separator: ",").compactMap { Int($0) }
            #expect(list.count == Int(r[1]), "a window's frames (\(r[0])) do not list its \(r[1]) PUBLISHes")
            frames += list
        }
        return frames.sorted()
    }

    @Test("A login storm's QoS 1 state messages: one row per window, every PUBLISH and PUBACK accounted for")
    func loginStorm() throws {
        let a = try analyze(Self.storm)
        defer { try? FileManager.default.removeItem(atPath: a.folder) }
        let (telemetry, types) = try tsharkPackets(a.capture)
        #expect(telemetry.count == 40 * 20)
        #expect(try storedTelemetryFrames(a) == telemetry)

        // The windows: state messages 10 ms apart fit in one or two windows per device.
        let windows = try a.sql(
            """
            SELECT count(*), sum(packet_count), sum(acknowledged), max(last_time - time),
              sum(CAST(time / 10 AS INTEGER) <> CAST(last_time / 10 AS INTEGER)), sum(total_payload_length >= payload_length * packet_count)
            FROM mqtt_packets WHERE type = 'PUBLISH' AND topic LIKE 'thing/product/%/state'
            """)[0]
        #expect(Int(windows[0])! <= 80 && Int(windows[0])! >= 40, "\(windows[0]) windows for 40 devices")
        #expect(Int(windows[1]) == 800)
        // Every PUBACK but the 10 missing ones (the last of every fourth device) is counted in its window.
        #expect(Int(windows[2]) == 790)
        #expect(Double(windows[3])! < 10)
        #expect(windows[4] == "0", "a window spans two 10-second windows")
        #expect(Int(windows[5]) == Int(windows[0]), "total_payload_length below its PUBLISHes' sizes")
        // The PUBACKs went into the windows: none has a row, and tshark saw them all.
        #expect(try a.sql("SELECT count(*) FROM mqtt_packets WHERE type = 'PUBACK'") == [["0"]])
        #expect(types[4] == 790)
        // Other packets keep a row each: as many CONNECTs, SUBSCRIBEs and DISCONNECTs as tshark saw.
        let stored = try a.sql("SELECT type, sum(packet_count), max(packet_count) FROM mqtt_packets GROUP BY type")
        let byType = Dictionary(uniqueKeysWithValues: stored.map { ($0[0], (Int($0[1])!, Int($0[2])!)) })
        for (type, name) in [(1, "CONNECT"), (2, "CONNACK"), (8, "SUBSCRIBE"), (9, "SUBACK"), (14, "DISCONNECT")] {
            #expect(byType[name]?.0 == types[type], "\(name): stored \(byType[name]?.0 ?? 0), tshark \(types[type] ?? 0)")
            #expect(byType[name]?.1 == 1, "\(name) folded")
        }
        // Findings stay: one mqtt-publish-unacknowledged per fourth device (the rules see every packet, not the windows).
        #expect(try a.sql("SELECT count(*) FROM deviations WHERE rule_id = 'mqtt-publish-unacknowledged'") == [["10"]])
    }

    @Test("osd at 0.5 Hz: windows of five, frames as tshark's, the report's arrows count every message, replay re-sends them")
    func osdWindows() throws {
        let a = try analyze(Self.osd)
        defer { try? FileManager.default.removeItem(atPath: a.folder) }
        let (telemetry, _) = try tsharkPackets(a.capture)
        #expect(telemetry.count > 100)
        #expect(try storedTelemetryFrames(a) == telemetry)
        let rows = try a.sql(
            """
            SELECT count(*), max(packet_count), sum(acknowledged IS NOT NULL), sum(CAST(time / 10 AS INTEGER) <> CAST(last_time / 10 AS INTEGER))
            FROM mqtt_packets WHERE topic LIKE 'thing/product/%/osd'
            """)[0]
        #expect(Int(rows[0])! * 4 <= telemetry.count, "\(rows[0]) rows for \(telemetry.count) osd messages")
        #expect(rows[1] == "5")
        #expect(rows[2] == "0", "QoS 0 windows have no acknowledged count")
        #expect(rows[3] == "0")

        // The report's diagram: the osd arrows of each session add up to that session's osd messages.
        let report = try pilottrace(["report", "--db", a.database, "--format", "json", "--out", "-"])
        try #require(report.status == 0, "\(report.stderr)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any])
        let sessions = try #require(document["sessions"] as? [[String: Any]])
        var drawn = 0
        for s in sessions {
            for arrow in try #require(s["messages"] as? [[String: Any]]) {
                if let label = arrow["label"] as? String, label.contains("osd"), (arrow["from"] as? String) == "pilot" {
                    drawn += (arrow["count"] as? Int) ?? 0
                }
            }
        }
        let deviceOSD = try a.sql(
            """
            SELECT sum(m.packet_count) FROM mqtt_packets m JOIN flows f ON f.id = m.flow_id
            WHERE m.topic LIKE 'thing/product/%/osd' AND f.mqtt_role = 'device' AND m.direction = 'to-server'
            """)[0][0]
        #expect(drawn == Int(deviceOSD), "the diagrams draw \(drawn) device osd messages, the store has \(deviceOSD)")
    }
}

import Foundation
import PilotTraceTestSupport
import Testing

/// Joinable output: the frames of every step, finding and message are Wireshark's (checked against tshark's
/// `frame.number`), flows carry their Community ID (checked against Wireshark's `communityid`), every JSON time is
/// RFC 3339 with an `_epoch` twin, and text listings show dates when a session crosses midnight.
@Suite struct JoinableOutputTests {
    let labLogin = TestPaths.captures.appendingPathComponent("lab-clean-login.pcapng").path

    func json(_ arguments: String...) throws -> [String: Any] {
        let r = try pilottrace(arguments)
        #expect(r.status == 0, "\(arguments): \(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    func tshark(_ arguments: [String]) throws -> [[String]] {
        let tshark = try #require(TestPaths.which("tshark"), "tshark is installed by `make test` (scripts/bootstrap)")
        let r = try runProcess(tshark, arguments + ["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"])
        #expect(r.status == 0, "tshark \(arguments): \(r.stderr)")
        return r.stdout.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
    }

    /// One message as tshark dissects it: the frame where it is shown (the last segment of a reassembled PDU), the
    /// frame of its first segment, its TCP stream and its fields.
    struct Dissected {
        var frame: Int
        var firstFrame: Int
        var stream: Int
        var method = "", uri = "", requestIn: Int?
        var mqttType: Int?, topic = "", clientID = ""
    }

    /// The HTTP messages and MQTT packets of `capture`, one entry per MQTT packet (a frame can hold several).
    func dissect(_ capture: String, mqttPort: Int) throws -> [Dissected] {
        let rows = try tshark([
            "-r", capture, "-d", "tcp.port==\(mqttPort),mqtt", "-Y", "http || mqtt",
            "-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.segment", "-e", "http.request.method",
            "-e", "http.request.uri", "-e", "http.request_in", "-e", "mqtt.msgtype", "-e", "mqtt.topic",
            "-e", "mqtt.clientid",
        ])
        var out: [Dissected] = []
        for f in rows where f.count == 9 {
            let frame = Int(f[0])!, stream = Int(f[1])!
            let first = f[2].split(separator: ",").compactMap { Int($0) }.min() ?? frame
            if !f[3].isEmpty || !f[5].isEmpty {
                out.append(Dissected(frame: frame, firstFrame: first, stream: stream, method: f[3], uri: f[4], requestIn: Int(f[5])))
            }
            let types = f[6].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let topics = f[7].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            for (i, t) in types.enumerated() where !t.isEmpty {
                // Topics are listed for the packets that have one (PUBLISH, SUBSCRIBE), in order.
                let topicIndex = types[..<i].filter { $0 == "3" || $0 == "8" }.count
                out.append(
                    Dissected(
                        frame: frame, firstFrame: first, stream: stream, mqttType: Int(t),
                        topic: (t == "3" || t == "8") && topicIndex < topics.count ? topics[topicIndex] : "", clientID: f[8]))
            }
        }
        return out
    }

    /// The broker port the session's login handed out (`mqtt_addr`), for tshark's `-d tcp.port==…,mqtt`.
    func brokerPort(_ events: [[String: Any]]) throws -> Int {
        let addrs = events.compactMap { ($0["detail"] as? [String: Any])?["mqtt_addr"] as? String }
        let addr = try #require(addrs.first)
        return try #require(Int(addr.split(separator: ":").last!))
    }

    @Test("Each step of the recorded clean login is at the frames tshark shows its message in")
    func stepsAreWhereTsharkSeesTheirMessages() throws {
        let db = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", db, labLogin).status == 0)
        let session = try #require((try json("timeline", "--db", db, "--json")["sessions"] as? [[String: Any]])?.first)
        let events = try #require(session["events"] as? [[String: Any]])
        let clientID = try #require(session["mqtt_client_id"] as? String), sn = try #require(session["gateway_sn"] as? String)
        let dissected = try dissect(labLogin, mqttPort: try brokerPort(events))
        let requests = dissected.filter { !$0.method.isEmpty }
        let connect = try #require(dissected.first { $0.mqttType == 1 && $0.clientID == clientID })
        let device = dissected.filter { $0.mqttType != nil && $0.stream == connect.stream }
        var occurrences: [String: Int] = [:]
        func next(_ type: Int, topic: String = "") throws -> Dissected {
            let key = "\(type) \(topic)"
            defer { occurrences[key, default: 0] += 1 }
            let all = device.filter { $0.mqttType == type && $0.topic == topic }
            let k = occurrences[key, default: 0]
            try #require(k < all.count, "no \(key) #\(k + 1) on the device's connection")
            return all[k]
        }
        var compared = 0
        var updateTopoFrames: [Int] = []
        for e in events {
            let step = e["step"] as! String
            let first = e["first_frame"] as? Int, last = e["last_frame"] as? Int
            #expect(e["capture_file"] as? String == labLogin, "\(step)")
            let expected: (first: Int, last: Int)
            if let detail = e["detail"] as? [String: Any], let path = detail["path"] as? String, let method = detail["method"] as? String {
                // An HTTP step: from the request's first frame to its response's last, as tshark pairs them.
                let request = try #require(requests.first { $0.method == method && $0.uri == path }, "\(method) \(path)")
                let response = try #require(dissected.first { $0.requestIn == request.frame }, "the response to frame \(request.frame)")
                expected = (request.firstFrame, response.frame)
            } else {
                let packet: Dissected
                switch step {
                case "mqtt-connect": packet = connect
                case "mqtt-connack": packet = try next(2)
                case "mqtt-subscribe": packet = try next(8, topic: device.first { $0.mqttType == 8 }?.topic ?? "")
                case "update-topo":
                    packet = try next(3, topic: "sys/product/\(sn)/status")
                    updateTopoFrames.append(packet.frame)
                case "device-offline":
                    // The update_topo without the aircraft, the step just before.
                    packet = try #require(device.first { $0.frame == updateTopoFrames.last })
                case "status-reply": packet = try next(3, topic: "sys/product/\(sn)/status_reply")
                case "mqtt-disconnect": packet = try next(14)
                default:
                    Issue.record("unexpected step \(step)")
                    continue
                }
                expected = (packet.firstFrame, packet.frame)
            }
            #expect(
                first == expected.first && last == expected.last, "\(step): frames \(String(describing: first))–\(String(describing: last)), tshark \(expected)"
            )
            compared += 1
        }
        #expect(compared == 15)
        // The text shows the same numbers.
        let text = try pilottrace("timeline", "--db", db).stdout
        let connectFrame = events.first { $0["step"] as? String == "mqtt-connect" }?["first_frame"] as? Int
        #expect(text.contains("mqtt-connect      ok     frame \(connectFrame ?? 0) "))
    }

    @Test("Every HTTP message and MQTT packet of a capture with segmented messages has tshark's first and last frames")
    func messagesAreWhereTsharkSeesThem() throws {
        let capture = TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path
        let r = try pilottrace("messages", "--json", capture)
        #expect(r.status == 0)
        let lines = try r.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let dissected = try dissect(capture, mqttPort: 11883)
        let names = [1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 8: "SUBSCRIBE", 9: "SUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT"]
        func key(_ kind: String, _ first: Int?, _ last: Int?) -> String { "\(kind) \(first ?? 0)–\(last ?? 0)" }
        let ours = lines.compactMap { l -> String? in
            guard l["protocol"] as? String == "HTTP" || l["protocol"] as? String == "MQTT" else { return nil }
            #expect(l["capture_file"] as? String == capture)
            let kind = l["protocol"] as? String == "HTTP" ? "http" : (l["kind"] as! String)
            return key(kind, l["first_frame"] as? Int, l["last_frame"] as? Int)
        }.sorted()
        let theirs = dissected.map { d in key(d.mqttType.map { names[$0] ?? "?" } ?? "http", d.firstFrame, d.frame) }.sorted()
        #expect(ours == theirs)
        #expect(theirs.contains("http 19–20"))  // the login request, in two segments
    }

    @Test("With several files, frames count from 1 in each and the listings name the file; a message across two files keeps its first")
    func severalFilesNumberTheirOwnFrames() throws {
        let editcap = try #require(TestPaths.which("editcap"), "editcap comes with tshark")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-split-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        #expect(try runProcess(editcap, ["-c", "34", labLogin, dir.appendingPathComponent("part.pcapng").path]).status == 0)
        let parts = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted().map { dir.appendingPathComponent($0).path }
        #expect(parts.count >= 2)
        let whole = try temporaryDatabase(), split = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", whole, labLogin).status == 0)
        #expect(try pilottrace(["analyze", "--db", split] + parts).status == 0)
        let one = try #require((try json("timeline", "--db", whole, "--json")["sessions"] as? [[String: Any]])?.first?["events"] as? [[String: Any]])
        let two = try #require((try json("timeline", "--db", split, "--json")["sessions"] as? [[String: Any]])?.first?["events"] as? [[String: Any]])
        #expect(one.count == two.count)
        for (a, b) in zip(one, two) {
            let first = a["first_frame"] as! Int, last = a["last_frame"] as! Int
            let file = (first - 1) / 34
            #expect(b["capture_file"] as? String == parts[file], "\(a["step"]!)")
            #expect(b["first_frame"] as? Int == first - 34 * file)
            // The topology fetch's request is the first file's last frame, its response the second's first.
            #expect(b["last_frame"] as? Int == ((last - 1) / 34 == file ? last - 34 * file : nil), "\(a["step"]!)")
        }
        let text = try pilottrace("timeline", "--db", split).stdout
        let second = URL(fileURLWithPath: parts[1]).lastPathComponent, first = URL(fileURLWithPath: parts[0]).lastPathComponent
        #expect(text.contains("mqtt-disconnect   ok     \(second) frame 31"), "\(text)")
        #expect(text.contains("topology-fetch    ok     \(first) frames 34–?"), "\(text)")
    }

    @Test("A session that crosses midnight (UTC) shows dates in the timeline and the findings")
    func datesWhenASessionCrossesMidnight() throws {
        let editcap = try #require(TestPaths.which("editcap"), "editcap comes with tshark")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-midnight-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let shifted = dir.appendingPathComponent("midnight.pcapng").path
        // The recorded login starts at 11:10:57.467055 and lasts 4 s: moved to start at 23:59:58.
        #expect(try runProcess(editcap, ["-t", "46140.532945", labLogin, shifted]).status == 0)
        let db = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", db, shifted).status == 0)
        let timeline = try pilottrace("timeline", "--db", db).stdout
        #expect(timeline.contains("  2026-11-27 23:59:58.000000  +0.000s     license      h5-page"), "\(timeline)")
        #expect(timeline.contains("  2026-11-28 00:00:02.010"), "\(timeline)")
        let deviations = try pilottrace("deviations", "--db", db).stdout
        #expect(deviations.contains("date and time (UTC)"))
        #expect(deviations.contains("2026-11-27 23:59:58.003752  frames 8–9"), "\(deviations)")
        // The same capture unshifted shows clocks only.
        let plain = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", plain, labLogin).status == 0)
        #expect(try pilottrace("timeline", "--db", plain).stdout.contains("\n  11:10:57.467055  +0.000s"))
        #expect(try pilottrace("deviations", "--db", plain).stdout.hasPrefix("severity  rule                   session  time (UTC)  "))
    }

    @Test("flows --json carries each connection's Community ID, as Wireshark computes it")
    func communityIDsAgreeWithWireshark() throws {
        for capture in ["lab-clean-login.pcapng", "pilot2-login-any.pcapng"] {
            let path = TestPaths.captures.appendingPathComponent(capture).path
            let flows = try #require(try json("flows", "--json", path)["flows"] as? [[String: Any]])
            let theirs = try tshark(["-r", path, "--enable-protocol", "communityid", "-Y", "tcp", "-e", "tcp.stream", "-e", "communityid"])
            var byStream: [Int: String] = [:]
            for row in theirs where row.count == 2 { if let s = Int(row[0]) { byStream[s] = row[1] } }
            #expect(flows.count == byStream.count)
            for f in flows {
                let id = f["id"] as! Int
                #expect(f["community_id"] as? String == byStream[id - 1], "\(capture) flow \(id)")
                #expect((f["community_id"] as? String)?.hasPrefix("1:") == true)
            }
        }
    }

    /// Every member named as a time, anywhere in a JSON document.
    static func timeMembers(_ value: Any, path: String = "$", into out: inout [(path: String, value: Any, epoch: Any?)]) {
        if let o = value as? [String: Any] {
            for (k, v) in o {
                if ["time", "start", "end", "first_seen", "last_seen"].contains(k) || k.hasSuffix("_at") {
                    out.append(("\(path).\(k)", v, o[k + "_epoch"]))
                } else {
                    timeMembers(v, path: "\(path).\(k)", into: &out)
                }
            }
        } else if let a = value as? [Any] {
            for (i, v) in a.enumerated() { timeMembers(v, path: "\(path)[\(i)]", into: &out) }
        }
    }

    @Test("Every JSON output writes its times as RFC 3339 UTC with microseconds, with an _epoch twin where it is a point in time")
    func oneTimeFormatInEveryJSONOutput() throws {
        let db = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", db, labLogin).status == 0)
        var documents: [(String, Any)] = [
            ("timeline", try json("timeline", "--db", db, "--json")), ("sessions", try json("sessions", "--db", db, "--json")),
            ("deviations", try json("deviations", "--db", db, "--json")), ("flows", try json("flows", "--json", labLogin)),
            ("report", try json("report", "--db", db, "--format", "json", "--out", "-")),
        ]
        let messages = try pilottrace("messages", "--json", labLogin).stdout.split(separator: "\n")
        #expect(messages.count > 20)
        for line in messages { documents.append(("messages", try JSONSerialization.jsonObject(with: Data(line.utf8)))) }
        let rfc3339 = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/
        var checked = 0
        for (name, doc) in documents {
            var members: [(path: String, value: Any, epoch: Any?)] = []
            Self.timeMembers(doc, into: &members)
            for m in members {
                if m.value is NSNull, name != "messages" { #expect(m.epoch is NSNull, "\(name) \(m.path)"); continue }
                let text = try #require(m.value as? String, "\(name) \(m.path) is not a string: \(m.value)")
                #expect(text.wholeMatch(of: rfc3339) != nil, "\(name) \(m.path): \(text)")
                let epoch = try #require(m.epoch as? Double, "\(name) \(m.path) has no _epoch twin")
                let f = ISO8601DateFormatter()
                f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                let parsed = try #require(f.date(from: text)).timeIntervalSince1970
                #expect(abs(parsed - epoch) < 0.001, "\(name) \(m.path): \(text) vs \(epoch)")
                checked += 1
            }
        }
        #expect(checked > 100)
    }
}

import PilotTraceProtocols
import Testing

@testable import PilotTraceReplay

/// A recorded session like the lab's: page, login (issues a token and MQTT credentials), a request with the token,
/// CONNECT with the issued credentials, SUBSCRIBE, update_topo answered, DISCONNECT.
func labSession(replyTid: String = "t1") -> RecordedSession {
    let login =
        #"{"code":0,"message":"success","data":{"access_token":"eyJ.old-token-0123456789","workspace_id":"ws-uuid-1","mqtt_username":"pilot","mqtt_password":"pilot123","mqtt_addr":"tcp://10.0.0.1:1883"}}"#
    return RecordedSession(
        id: 7, gatewaySN: "GW1", start: 100,
        exchanges: [
            RecordedExchange(
                connection: 3, method: "GET", target: "/pilot-login", headers: [("Host", "cloud")], body: [], requestTime: 100,
                status: 200, responseBody: Array("<html>".utf8), responseTime: 100.001),
            RecordedExchange(
                connection: 3, method: "POST", target: "/manage/api/v1/login", headers: [("Host", "cloud"), ("Content-Type", "application/json")],
                body: Array(#"{"username":"pilot","password":"pilot123","flag":2}"#.utf8), requestTime: 100.01,
                status: 200, responseBody: Array(login.utf8), responseTime: 100.02),
            RecordedExchange(
                connection: 3, method: "GET", target: "/manage/api/v1/workspaces/ws-uuid-1/devices/topologies?x-auth-token=eyJ.old-token-0123456789",
                headers: [("x-auth-token", "eyJ.old-token-0123456789")], body: [], requestTime: 100.5,
                status: 200, responseBody: Array(#"{"code":0,"message":"success","data":{"list":[{"sn":"GW1","online_status":true}]}}"#.utf8),
                responseTime: 100.51),
        ],
        mqtt: [
            RecordedMQTTPacket(
                connection: 4, direction: .toServer, time: 100.1, type: "CONNECT", clientID: "GW1", username: "pilot",
                password: Array("pilot123".utf8), keepAlive: 60),
            RecordedMQTTPacket(connection: 4, direction: .toClient, time: 100.101, type: "CONNACK", returnCode: 0),
            RecordedMQTTPacket(connection: 4, direction: .toServer, time: 100.2, type: "SUBSCRIBE", filters: [("sys/product/GW1/status_reply", 1)]),
            RecordedMQTTPacket(
                connection: 4, direction: .toServer, time: 100.3, type: "PUBLISH", topic: "sys/product/GW1/status",
                payload: Array(#"{"tid":"t1","bid":"b1","timestamp":1700000000000,"method":"update_topo","data":{}}"#.utf8), qos: 1),
            RecordedMQTTPacket(
                connection: 4, direction: .toClient, time: 100.34, type: "PUBLISH", topic: "sys/product/GW1/status_reply",
                payload: Array(#"{"tid":"\#(replyTid)","bid":"b1","data":{"result":0}}"#.utf8), qos: 1),
            RecordedMQTTPacket(connection: 4, direction: .toServer, time: 101, type: "DISCONNECT"),
        ],
        findings: ["cleartext-credentials"])
}

@Suite("Replay plan, variables, preparation")
struct ReplayPlanTests {
    @Test("Steps merge HTTP and MQTT in recorded order, with offsets, expectations and names")
    func steps() {
        let plan = ReplayPlan(labSession())
        #expect(
            plan.steps.map(\.name) == [
                "GET /pilot-login", "POST /manage/api/v1/login", "MQTT CONNECT GW1", "SUBSCRIBE 1 topic",
                "PUBLISH sys/product/GW1/status (update_topo)", "GET /manage/api/v1/workspaces/ws-uuid-1/devices/topologies",
                "MQTT DISCONNECT",
            ])
        #expect(plan.steps.map { ($0.at * 1000).rounded() } == [0, 10, 100, 200, 300, 500, 1000])
        guard case .reply(let reply?) = plan.steps[4].expectation else { Issue.record("no awaited reply"); return }
        #expect(abs(reply.latency - 0.04) < 1e-6)
        guard case .connack(let code, _) = plan.steps[2].expectation else { Issue.record("no connack"); return }
        #expect(code == 0)
        #expect(!plan.usesWebSocketMQTT)
    }

    @Test("A reply with another tid is not the recorded reply: the publish awaits none")
    func replyByTid() {
        let plan = ReplayPlan(labSession(replyTid: "other"))
        guard case .reply(let reply) = plan.steps[4].expectation else { Issue.record("not a publish"); return }
        #expect(reply == nil)
    }

    @Test("Issued values used later become variables: token (header, query), workspace (path), MQTT credentials (CONNECT)")
    func variables() {
        let plan = ReplayPlan(labSession())
        let byName = Dictionary(uniqueKeysWithValues: plan.variables.map { ($0.name, $0) })
        #expect(Set(byName.keys) == ["access_token", "workspace_id", "mqtt_username", "mqtt_password"])
        #expect(byName["access_token"]?.pathText == "$.data.access_token")
        #expect(byName["access_token"]?.definedBy == 1)
        #expect(byName["access_token"]?.usedBy == [5])
        #expect(byName["mqtt_username"]?.usedBy == [2])
    }

    @Test("Preparing a request substitutes the target's values everywhere the recorded one was")
    func substitution() {
        let plan = ReplayPlan(labSession())
        let bindings = plan.bindings(
            definedBy: plan.steps[1],
            response: Array(
                #"{"code":0,"data":{"access_token":"eyJ.NEW-token-9876543210","workspace_id":"ws-2","mqtt_username":"u2","mqtt_password":"p2"}}"#.utf8))
        #expect(bindings["access_token"] == "eyJ.NEW-token-9876543210")
        let p = plan.prepare(plan.steps[5], bindings: bindings, overrides: [:], fresh: nil)
        guard case let .http(_, _, target, headers, _) = p.action else { Issue.record("not http"); return }
        #expect(target == "/manage/api/v1/workspaces/ws-2/devices/topologies?x-auth-token=eyJ.NEW-token-9876543210")
        #expect(headers.first { $0.0 == "x-auth-token" }?.1 == "eyJ.NEW-token-9876543210")
        #expect(Set(p.substituted) == ["access_token", "workspace_id"])
        let c = plan.prepare(plan.steps[2], bindings: bindings, overrides: [:], fresh: nil)
        guard case let .connect(_, id, user, pass, _, _, _) = c.action else { Issue.record("not connect"); return }
        #expect(id == "GW1")
        #expect(user == "u2")
        #expect(pass == Array("p2".utf8))
    }

    @Test("--set overrides a variable and any request field of that name")
    func overrides() {
        let plan = ReplayPlan(labSession())
        let login = plan.prepare(plan.steps[1], bindings: [:], overrides: ["password": "s3cret", "flag": "1"], fresh: nil)
        guard case let .http(_, _, _, _, body) = login.action else { Issue.record("not http"); return }
        #expect(String(decoding: body, as: UTF8.self) == #"{"username":"pilot","password":"s3cret","flag":1}"#)
        let c = plan.prepare(plan.steps[2], bindings: ["mqtt_password": "from-target"], overrides: ["mqtt_password": "forced"], fresh: nil)
        guard case let .connect(_, _, _, pass, _, _, _) = c.action else { Issue.record("not connect"); return }
        #expect(pass == Array("forced".utf8))
    }

    @Test("Publishes get fresh tid, bid and timestamp; --verbatim (no fresh values) keeps the recorded bytes")
    func freshIdentifiers() {
        let plan = ReplayPlan(labSession())
        var n = 0
        let fresh = FreshValues(
            uuid: {
                n += 1; return "u\(n)"
            }, nowMilliseconds: { 1_800_000_000_000 })
        let p = plan.prepare(plan.steps[4], bindings: [:], overrides: [:], fresh: fresh)
        guard case let .publish(_, _, payload, qos, _) = p.action else { Issue.record("not publish"); return }
        #expect(String(decoding: payload, as: UTF8.self) == #"{"tid":"u1","bid":"u2","timestamp":1800000000000,"method":"update_topo","data":{}}"#)
        #expect(qos == 1)
        #expect((p.tid, p.bid) == ("u1", "u2"))
        let v = plan.prepare(plan.steps[4], bindings: [:], overrides: [:], fresh: nil)
        guard case let .publish(_, _, same, _, _) = v.action, case let .publish(_, _, recorded, _, _) = plan.steps[4].action else { return }
        #expect(same == recorded)
        #expect(v.tid == "t1")
    }

    @Test("A link that ended without DISCONNECT is replayed as a dropped link; a second CONNECT on the flow is a new connection")
    func droppedLinkAndReconnect() {
        var s = labSession()
        s.mqtt.removeLast()
        s.mqtt.append(
            RecordedMQTTPacket(
                connection: 4, direction: .toServer, time: 102, type: "CONNECT", clientID: "GW1", username: "pilot",
                password: Array("pilot123".utf8), keepAlive: 60))
        let plan = ReplayPlan(s)
        let ends = plan.steps.compactMap { step -> (Int, Bool)? in if case let .end(c, d) = step.action { (c, d) } else { nil } }
        #expect(ends.count == 2)
        #expect(ends.allSatisfy { !$0.1 })
        #expect(Set(ends.map(\.0)) == [0, 1])
    }

    @Test("SUBSCRIBE filters come back from the stored summary, escapes and QoS included")
    func filtersFromSummary() {
        let f = RecordedMQTTPacket.filters(fromSummary: #"SUBSCRIBE id=1 filters=["sys/product/GW1/status_reply" qos=1, "a\"b" qos=0]"#)
        #expect(f.map(\.0) == ["sys/product/GW1/status_reply", "a\"b"])
        #expect(f.map(\.1) == [1, 0])
    }

    @Test("Pacing: original, N×, max")
    func pacing() {
        #expect(Pacing("original")?.due(4) == 4)
        #expect(Pacing("2x")?.due(4) == 2)
        #expect(Pacing("0.5×")?.due(4) == 8)
        #expect(Pacing("max")?.due(4) == nil)
        #expect(Pacing("fast-ish") == nil)
        #expect(Pacing("0x") == nil)
    }

    @Test("Percent-encoding round-trips")
    func percent() {
        #expect(ReplayPlan.percentEncoded("a b&c=d") == "a%20b%26c%3Dd")
        #expect(ReplayPlan.percentDecoded("a%20b%26c%3Dd") == "a b&c=d")
        #expect(ReplayPlan.percentDecoded("%zz") == nil)
    }
}

@Suite("Replay comparison and verdict")
struct ReplayComparisonTests {
    let plan = ReplayPlan(labSession())

    @Test("Same status, code and shape: matched; volatile members and ignored paths do not count")
    func matched() {
        let login = Array(
            #"{"code":0,"message":"ok","data":{"access_token":null,"workspace_id":"other","mqtt_username":"a","mqtt_password":"b","mqtt_addr":"tcp://x:1"}}"#
                .utf8)
        let r = StepComparison().compare(plan.steps[1], .http(status: 200, body: login, latency: 0.002))
        #expect(r.outcome == .matched, "\(r.differences)")
        #expect(r.replayedLatency == 0.002)
    }

    @Test("Status, code, a missing key and a changed type are regressions; an added key is a change only")
    func changed() {
        let body = Array(#"{"code":401,"message":"x","data":{"workspace_id":1,"mqtt_username":"a","mqtt_password":"b","mqtt_addr":"x","extra":true}}"#.utf8)
        let r = StepComparison().compare(plan.steps[1], .http(status: 200, body: body, latency: 0.001))
        #expect(r.outcome == .changed)
        #expect(r.regression)
        #expect(r.differences.map(\.what) == ["code", "shape", "shape"])
        #expect(r.differences.map { $0.path ?? "" } == ["$.code", "$.data.workspace_id", "$.data.extra"])
        #expect(r.differences.map(\.regression) == [true, true, false])
        let ignored = StepComparison(ignore: [JSONPathPattern("$.data.workspace_id")!, JSONPathPattern("data.extra")!])
            .compare(
                plan.steps[1],
                .http(
                    status: 200,
                    body: Array(
                        #"{"code":0,"message":"x","data":{"workspace_id":1,"mqtt_username":"a","mqtt_password":"b","mqtt_addr":"x","extra":true}}"#.utf8),
                    latency: 0))
        #expect(ignored.outcome == .matched, "\(ignored.differences)")
        let status = StepComparison().compare(plan.steps[5], .http(status: 401, body: [], latency: 0))
        #expect(status.differences.first?.what == "status")
    }

    @Test("A reply the recording had and the replay did not get: missing; wrong tid, non-zero result: regressions")
    func replies() {
        let step = plan.steps[4]
        let none = StepComparison().compare(step, .published(tid: "n1", bid: "n2", reply: nil, latency: nil))
        #expect(none.outcome == .missing)
        let ok = StepComparison().compare(
            step, .published(tid: "n1", bid: "n2", reply: Array(#"{"tid":"n1","bid":"n2","data":{"result":0}}"#.utf8), latency: 0.01))
        #expect(ok.outcome == .matched, "\(ok.differences)")
        let bad = StepComparison().compare(
            step, .published(tid: "n1", bid: "n2", reply: Array(#"{"tid":"zz","bid":"n2","data":{"result":1}}"#.utf8), latency: 0.01))
        #expect(bad.differences.map(\.what) == ["tid", "result"])
        #expect(bad.regression)
        let connack = StepComparison().compare(plan.steps[2], .connack(code: 5, latency: 0.001))
        #expect(connack.differences.first?.what == "connack")
        #expect(connack.regression)
    }

    @Test("A finding the original lacked is a regression; the JUnit has a case per step and one for the findings")
    func verdict() {
        let steps =
            plan.steps.map { StepComparison().compare($0, .notRun("x")) }.prefix(0) + [
                StepResult(ordinal: 0, kind: "http", name: "GET <a>", outcome: .matched, differences: [])
            ]
        var v = SessionVerdict(
            original: 7, gatewaySN: "GW1", steps: Array(steps), originalFindings: ["cleartext-credentials"],
            replayFindings: ["cleartext-credentials"])
        #expect(!v.regressed)
        v.replayFindings.append("status-reply-missing")
        #expect(v.newFindings == ["status-reply-missing"])
        #expect(v.regressed)
        let xml = ReplayOutput.junit([v])
        #expect(xml.contains(#"<testsuite name="session 7 (GW1)" tests="2" failures="1""#))
        #expect(xml.contains(#"name="01 GET &lt;a&gt;""#))
        #expect(xml.contains(#"message="new findings: status-reply-missing""#))
        let text = ReplayOutput.text([v], showSecrets: false)
        #expect(text.contains("REGRESSED"))
        #expect(text.contains("new findings: status-reply-missing"))
    }

    @Test("JSON paths: keys, any key, any index, any depth; a path covers its subtree")
    func paths() {
        #expect(JSONPathPattern("$.data.list[*].sn")!.covers(["data", "list", "[]", "sn"]))
        #expect(JSONPathPattern("data.*.sn")!.covers(["data", "x", "sn"]))
        #expect(JSONPathPattern("$..timestamp")!.covers(["a", "b", "timestamp"]))
        #expect(JSONPathPattern("$.data")!.covers(["data", "deep", "er"]))
        #expect(!JSONPathPattern("$.data.a")!.covers(["data", "b"]))
        #expect(JSONPathPattern("") == nil)
    }
}

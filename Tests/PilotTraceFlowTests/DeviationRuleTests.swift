import Foundation
import PilotTraceProtocols
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceFlow

/// One minimal positive and one minimal negative sequence per rule.
@Suite struct DeviationRuleTests {
    func ids(_ d: [Deviation]) -> [String] { d.map(\.rule.id) }
    func warningsAndErrors(_ d: [Deviation]) -> [String] { d.filter { $0.rule.severity >= .warning }.map(\.rule.id) }

    /// A device that connects and does what `build` says (after CONNACK).
    func device(username: String? = "pilot", connackCode: UInt8 = 0, _ build: (inout Scenario, ConnectionID) -> Void) -> [Deviation] {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883)
        s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: username, password: username == nil ? nil : "pilot123"))
        s.send(m, .toClient, MQTTWire.connAck(connackCode))
        build(&s, m)
        return s.findings(after: 10)
    }

    func status(_ s: inout Scenario, _ m: ConnectionID, tid: String, topic: String? = nil, payload: [UInt8]? = nil) {
        s.send(m, .toServer, MQTTWire.publish(topic ?? "sys/product/\(Scenario.rc)/status", payload ?? Scenario.updateTopo(tid: tid, aircraft: [])))
    }

    func reply(_ s: inout Scenario, _ m: ConnectionID, tid: String, result: Int = 0, after: Double = 0.05) {
        s.send(m, .toClient, MQTTWire.publish("sys/product/\(Scenario.rc)/status_reply", Scenario.statusReply(tid: tid, result: result)), after: after)
    }

    @Test func theCleanPathRaisesNoWarningOrError() {
        var s = Scenario()
        _ = s.cloudBackend()
        s.h5Login(from: "10.0.0.5")
        let m = s.deviceOnline(from: "10.0.0.5")
        s.send(m, .toServer, MQTTWire.disconnect)
        s.close(m)
        let found = s.findings()
        #expect(warningsAndErrors(found) == [])
        #expect(ids(found) == ["cleartext-credentials"])
    }

    @Test func statusNotSent() {
        #expect(ids(device { _, _ in }).contains("status-not-sent"))
        #expect(
            !ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("status-not-sent"))
    }

    @Test func statusReplyMissing() {
        let missing = device { s, m in status(&s, m, tid: "a") }
        #expect(ids(missing).contains("status-reply-missing"))
        let late = device { s, m in
            status(&s, m, tid: "a"); reply(&s, m, tid: "a", after: 6)
        }
        #expect(late.first { $0.rule.id == "status-reply-missing" }?.text.contains("came after") == true)
        #expect(
            !ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("status-reply-missing"))
    }

    @Test func statusReplyMismatch() {
        #expect(
            ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "zzz")
                }
            ).contains("status-reply-mismatch"))
        #expect(
            ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a", result: 1)
                }
            ).contains("status-reply-mismatch"))
        #expect(
            !ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("status-reply-mismatch"))
    }

    @Test func statusRetransmitted() {
        let found = device { s, m in
            status(&s, m, tid: "a"); s.wait(3); status(&s, m, tid: "b"); reply(&s, m, tid: "b")
        }
        #expect(ids(found).contains("status-retransmitted"))
        let fine = device { s, m in
            status(&s, m, tid: "a"); reply(&s, m, tid: "a"); status(&s, m, tid: "b"); reply(&s, m, tid: "b")
        }
        #expect(!ids(fine).contains("status-retransmitted"))
    }

    @Test func statusTopicWrong() {
        let found = device { s, m in status(&s, m, tid: "a", topic: "thing/product/\(Scenario.rc)/status") }
        #expect(ids(found).contains("status-topic-wrong"))
        #expect(
            !ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("status-topic-wrong"))
    }

    @Test func updateTopoInvalid() {
        let broken = device { s, m in status(&s, m, tid: "a", payload: Array(#"{"tid":"a","bid":"b","method":"update_topo","data":{"type":119}}"#.utf8)) }
        let d = broken.first { $0.rule.id == "update-topo-invalid" }
        #expect(d?.text.contains("data.sub_type") == true)
        #expect(
            !ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("update-topo-invalid"))
    }

    @Test func mqttAnonymousLogin() {
        #expect(
            ids(
                device(username: nil) { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("mqtt-anonymous-login"))
        #expect(
            !ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("mqtt-anonymous-login"))
    }

    @Test func mqttConnectRefused() {
        #expect(ids(device(connackCode: 5) { _, _ in }).contains("mqtt-connect-refused"))
        #expect(
            !ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("mqtt-connect-refused"))
    }

    @Test func mqttCredentialsMismatch() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5", mqttUser: "issued-user")
        _ = s.deviceOnline(from: "10.0.0.5", username: "other-user")
        #expect(ids(s.findings()).contains("mqtt-credentials-mismatch"))
        var ok = Scenario()
        ok.h5Login(from: "10.0.0.5")
        _ = ok.deviceOnline(from: "10.0.0.5")
        #expect(!ids(ok.findings()).contains("mqtt-credentials-mismatch"))
    }

    func http(_ method: String, _ path: String, token: String?, status: Int = 200, json: String = #"{"code":0,"message":"success","data":{}}"#) -> [Deviation] {
        var s = Scenario()
        let h = s.open("10.0.0.5", server: 6789)
        s.send(h, .toServer, Scenario.request(method, path, token: token, json: method == "POST" ? "{}" : nil))
        s.send(h, .toClient, status == 401 ? Array("HTTP/1.1 401 X\r\nContent-Length: 0\r\n\r\n".utf8) : Scenario.response(status, json: json))
        return s.findings()
    }

    @Test func tokenMissing() {
        #expect(ids(http("GET", "/manage/api/v1/workspaces/current", token: nil)).contains("token-missing"))
        #expect(!ids(http("GET", "/manage/api/v1/workspaces/current", token: "t")).contains("token-missing"))
        #expect(!ids(http("POST", "/manage/api/v1/login", token: nil)).contains("token-missing"))
    }

    static func jwt(exp: Double) -> String {
        func b64(_ s: String) -> String {
            Data(s.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(
                of: "/", with: "_")
        }
        return b64(#"{"alg":"HS256"}"#) + "." + b64(#"{"username":"pilot","exp":\#(Int(exp))}"#) + ".c2ln"
    }

    @Test func expiredTokenAccepted() {
        let expired = Self.jwt(exp: 1_600_000_000), valid = Self.jwt(exp: 1_900_000_000)
        #expect(ids(http("GET", "/manage/api/v1/users/current", token: expired)).contains("expired-token-accepted"))
        #expect(!ids(http("GET", "/manage/api/v1/users/current", token: valid)).contains("expired-token-accepted"))
        #expect(!ids(http("GET", "/manage/api/v1/users/current", token: expired, status: 401)).contains("expired-token-accepted"))
        #expect(!ids(http("POST", "/manage/api/v1/token/refresh", token: expired)).contains("expired-token-accepted"))
    }

    @Test func cleartextCredentials() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5")
        _ = s.deviceOnline(from: "10.0.0.5")
        #expect(ids(s.findings()).filter { $0 == "cleartext-credentials" }.count == 1)  // once per session
        #expect(!ids(http("GET", "/manage/api/v1/users/current", token: "t")).contains("cleartext-credentials"))
    }

    @Test func captureIncomplete() {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883, midstream: true)
        s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/osd", Array("{}".utf8)))
        status(&s, m, tid: "a")
        reply(&s, m, tid: "a")
        s.close(m)
        let d = s.findings().first { $0.rule.id == "capture-incomplete" }
        #expect(d?.text.contains("starts after the session began") == true)
        #expect(
            !ids(
                device { s, m in
                    status(&s, m, tid: "a"); reply(&s, m, tid: "a")
                }
            ).contains("capture-incomplete"))
    }

    @Test func mqttConformance() {
        let unacked = device { s, m in
            status(&s, m, tid: "a"); reply(&s, m, tid: "a")
            s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/events", Array("{}".utf8), qos: 1, id: 7))
            s.close(m)
        }
        #expect(ids(unacked).contains("mqtt-publish-unacknowledged"))
        let acked = device { s, m in
            s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "a", aircraft: []), qos: 1, id: 7))
            s.send(m, .toClient, MQTTWire.pubAck(id: 7))
            reply(&s, m, tid: "a")
            s.close(m)
        }
        #expect(warningsAndErrors(acked) == [])
        let unknownAck = device { s, m in s.send(m, .toClient, MQTTWire.pubAck(id: 99)) }
        #expect(ids(unknownAck).contains("mqtt-ack-unknown-id"))
        let reused = device { s, m in
            s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/events", Array("{}".utf8), qos: 1, id: 3))
            s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/events", Array("{}".utf8), qos: 1, id: 3))
        }
        #expect(ids(reused).contains("mqtt-packet-id-reused"))
        let second = device { s, m in s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "pilot123")) }
        #expect(ids(second).contains("mqtt-second-connect"))
        var early = Scenario()
        let e = early.open("10.0.0.5", server: 1883)
        early.send(e, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "p"))
        early.send(e, .toClient, MQTTWire.pingResp)
        #expect(ids(early.findings()).contains("mqtt-traffic-before-connack"))
    }

    @Test func keepAliveExceeded() {
        var s = Scenario()
        _ = s.deviceOnline(from: "10.0.0.5", keepAlive: 10)
        s.wait(20)
        #expect(ids(s.findings()).contains("mqtt-keepalive-exceeded"))
    }

    @Test func httpConformance() {
        #expect(ids(http("GET", "/manage/api/v1/users/current", token: "t", json: #"{"user":"x"}"#)).contains("http-envelope-missing"))
        #expect(!ids(http("GET", "/manage/api/v1/users/current", token: "t")).contains("http-envelope-missing"))
        #expect(ids(http("GET", "/manage/api/v1/token/refresh", token: "t")).contains("token-refresh-not-post"))
        #expect(!ids(http("POST", "/manage/api/v1/token/refresh", token: "t")).contains("token-refresh-not-post"))
        #expect(
            ids(http("POST", "/manage/api/v1/login", token: nil, json: #"{"code":401,"message":"invalid password","data":""}"#)).contains(
                "login-error-with-200"))
    }

    @Test func theCatalogueHasTheRequiredIdsAndSeverities() {
        let required: [(String, Severity)] = [
            ("status-not-sent", .error), ("status-reply-missing", .error), ("status-reply-mismatch", .error),
            ("status-retransmitted", .warning), ("status-topic-wrong", .error), ("update-topo-invalid", .error),
            ("mqtt-anonymous-login", .warning), ("mqtt-connect-refused", .error), ("mqtt-credentials-mismatch", .warning),
            ("mqtt-client-id-takeover", .warning),
            ("token-missing", .error), ("expired-token-accepted", .warning), ("cleartext-credentials", .info), ("capture-incomplete", .info),
        ]
        for (id, severity) in required { #expect(Rules.rule(id)?.severity == severity, "\(id)") }
        #expect(Set(Rules.all.map(\.id)).count == Rules.all.count)
        #expect(Rules.all.allSatisfy { !$0.basis.isEmpty && !$0.explanation.isEmpty })
    }
}

@Suite struct MoreDeviationRuleTests {
    func ids(_ d: [Deviation]) -> [String] { d.map(\.rule.id) }

    @Test func servicesAndEventsReplies() {
        var s = Scenario()
        let cloud = s.cloudBackend()
        let m = s.deviceOnline(from: "10.0.0.5")
        s.send(
            cloud, .toServer,
            MQTTWire.publish("thing/product/\(Scenario.rc)/services", Array(#"{"tid":"s1","bid":"b1","method":"live_start_push","data":{}}"#.utf8)))
        s.send(
            m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/events", Array(#"{"tid":"e1","bid":"b2","method":"x","need_reply":1,"data":{}}"#.utf8))
        )
        let found = ids(s.findings(after: 10))
        #expect(found.contains("services-reply-missing"))
        #expect(found.contains("events-reply-missing"))

        var ok = Scenario()
        let c2 = ok.cloudBackend()
        let m2 = ok.deviceOnline(from: "10.0.0.5")
        ok.send(
            c2, .toServer,
            MQTTWire.publish("thing/product/\(Scenario.rc)/services", Array(#"{"tid":"s1","bid":"b1","method":"live_start_push","data":{}}"#.utf8)))
        ok.send(
            m2, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/services_reply", Array(#"{"tid":"s1","bid":"b1","data":{"result":0}}"#.utf8)),
            after: 0.2)
        ok.send(
            m2, .toServer,
            MQTTWire.publish("thing/product/\(Scenario.rc)/events", Array(#"{"tid":"e1","bid":"b2","method":"x","need_reply":0,"data":{}}"#.utf8)))
        let none = ids(ok.findings(after: 10))
        #expect(!none.contains("services-reply-missing") && !none.contains("events-reply-missing"))
    }

    func topo(gateway: (Int, Int), aircraft: (Int, Int)?, timestamp: String = "1700000000000") -> [UInt8] {
        let sub = aircraft.map { #"{"sn":"AC","domain":"0","type":\#($0.0),"sub_type":\#($0.1),"index":"A","device_secret":"s","nonce":"n"}"# } ?? ""
        return Array(
            #"{"tid":"t","bid":"b","method":"update_topo","timestamp":\#(timestamp),"data":{"domain":"2","type":\#(gateway.0),"sub_type":\#(gateway.1),"device_secret":"s","nonce":"n","thing_version":"1","sub_devices":[\#(sub)]}}"#
                .utf8)
    }

    func run(_ payload: [UInt8], osd: [String] = []) -> [String] {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883)
        s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "p"))
        s.send(m, .toClient, MQTTWire.connAck())
        s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", payload))
        s.send(m, .toClient, MQTTWire.publish("sys/product/\(Scenario.rc)/status_reply", Scenario.statusReply(tid: "t")))
        for sn in osd { s.send(m, .toServer, MQTTWire.publish("thing/product/\(sn)/osd", Array("{}".utf8))) }
        return ids(s.findings())
    }

    @Test func gatewayAndAircraftModels() {
        #expect(!run(topo(gateway: (119, 0), aircraft: (89, 0))).contains("gateway-model-unexpected"))
        #expect(run(topo(gateway: (98, 0), aircraft: nil)).contains("gateway-model-unexpected"))  // the docs' placeholder
        #expect(run(topo(gateway: (174, 0), aircraft: (77, 0))).contains("gateway-model-unexpected"))  // Mavic 3E under RC Plus 2
    }

    @Test func osdForAnUnknownDevice() {
        #expect(!run(topo(gateway: (119, 0), aircraft: (89, 0)), osd: [Scenario.rc, "AC"]).contains("osd-unknown-device"))
        #expect(run(topo(gateway: (119, 0), aircraft: (89, 0)), osd: ["STRANGER"]).contains("osd-unknown-device"))
    }

    @Test func timestamps() {
        #expect(!run(topo(gateway: (119, 0), aircraft: nil)).contains("timestamp-suspicious"))
        #expect(run(topo(gateway: (119, 0), aircraft: nil, timestamp: "1700000000")).contains("timestamp-suspicious"))  // seconds
        #expect(run(topo(gateway: (119, 0), aircraft: nil, timestamp: "1600000000000")).contains("timestamp-suspicious"))  // years off
    }
}

import PilotTraceProtocols
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceFlow

@Suite struct SessionTrackerTests {
    @Test func theDocumentedLoginComesOnlineThenGoesOfflineCleanly() {
        var s = Scenario()
        let cloud = s.cloudBackend()
        s.h5Login(from: "10.0.0.5")
        let m = s.deviceOnline(from: "10.0.0.5")
        s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/osd", Array(#"{"data":{}}"#.utf8)))
        s.send(m, .toServer, MQTTWire.disconnect, after: 1)
        s.close(m)
        s.close(cloud)
        let sessions = s.finish()
        #expect(sessions.count == 1)
        let session = sessions[0]
        #expect(
            session.steps == [
                "h5-page", "login", "mqtt-credentials", "workspace-info", "mqtt-connect", "mqtt-connack",
                "mqtt-subscribe", "update-topo", "status-reply", "mqtt-disconnect",
            ])
        #expect(session.state == .offline)
        #expect(session.gatewaySN == Scenario.rc)
        #expect(session.gatewayModel?.key == "2-119-0")
        #expect(session.gatewayModel?.name == "DJI RC Plus")
        #expect(session.aircraft == [Scenario.aircraft])
        #expect(session.client == "10.0.0.5")
        #expect(session.mqttClientID == Scenario.rc)
        #expect(session.mqttUsername == "pilot")
        let reply = session.first(.statusReply)!
        #expect(reply.ok)
        #expect(abs(reply.latency! - 0.05) < 1e-6)
        #expect(session.first(.mqttConnack)!.latency != nil)
        #expect(
            session.events.map(\.phase.rawValue) == [
                "license", "token", "cloud-module", "cloud-module", "connect", "connect",
                "connect", "status", "status", "offline",
            ])
        #expect(s.tracker.roles[cloud] == .cloud)
        #expect(s.tracker.roles[m] == .device)
    }

    @Test func theSessionCarriesItsRequestReplyExchanges() {
        var s = Scenario()
        let cloud = s.cloudBackend()
        let m = s.deviceOnline(from: "10.0.0.5")
        // The cloud asks a service; the device answers, once late.
        s.send(
            cloud, .toServer,
            MQTTWire.publish("thing/product/\(Scenario.rc)/services", Array(#"{"tid":"s1","bid":"sb1","method":"live_start_push","data":{}}"#.utf8)))
        s.send(
            m, .toClient,
            MQTTWire.publish("thing/product/\(Scenario.rc)/services", Array(#"{"tid":"s1","bid":"sb1","method":"live_start_push","data":{}}"#.utf8)))
        s.send(
            m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/services_reply", Array(#"{"tid":"s1","bid":"sb1","data":{"result":613006}}"#.utf8)),
            after: 0.5)
        let session = s.finish()[0]
        #expect(session.exchanges.map(\.kind) == [.status, .services])
        #expect(session.exchanges[1].result == 613_006)
        let summary = session.exchangeSummary()
        #expect(summary["services"]?["failed_results"]?.int64Value == 1)
        #expect(summary["status"]?["answered"]?.int64Value == 1)
    }

    @Test func stillConnectedAtTheEndIsOnline() {
        var s = Scenario()
        _ = s.deviceOnline(from: "10.0.0.5")
        let sessions = s.finish()
        #expect(sessions.map(\.state) == [.online])
        #expect(sessions[0].steps.first == "mqtt-connect")  // no H5 traffic captured: the session starts at the CONNECT
    }

    @Test func loginOnOtherPathsIsRecognisedByContent() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5", loginPath: "/api/auth/sign-in")
        _ = s.deviceOnline(from: "10.0.0.5")
        let session = s.finish()[0]
        #expect(session.steps.prefix(3) == ["h5-page", "login", "mqtt-credentials"])
    }

    @Test func failedLoginThenNoDeviceIsAFailedSession() {
        var s = Scenario()
        let h = s.open("10.0.0.5", server: 6789)
        s.send(h, .toServer, Scenario.request("POST", "/manage/api/v1/login", json: #"{"username":"pilot","password":"nope","flag":2}"#))
        s.send(h, .toClient, Scenario.response(200, json: #"{"code":401,"message":"invalid password","data":""}"#))
        s.close(h)
        let sessions = s.finish()
        #expect(sessions.count == 1)
        #expect(sessions[0].steps == ["login-failed"])
        #expect(sessions[0].state == .failed)
        #expect(sessions[0].gatewaySN == nil)
        #expect(sessions[0].first(.loginFailed)?.detail["message"]?.stringValue == "invalid password")
    }

    @Test func anExpiredTokenIsRejectedThenRefreshed() {
        var s = Scenario()
        let h = s.open("10.0.0.5", server: 6789)
        s.send(h, .toServer, Scenario.request("GET", "/manage/api/v1/workspaces/current", token: "old-token"))
        s.send(h, .toClient, Array("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".utf8))
        s.send(h, .toServer, Scenario.request("POST", "/manage/api/v1/token/refresh", token: "old-token", json: "{}"))
        s.send(h, .toClient, Scenario.response(200, json: Scenario.loginResponse(token: "new-token")))
        s.close(h)
        _ = s.deviceOnline(from: "10.0.0.5")
        let session = s.finish()
        #expect(session.count == 1)
        #expect(session[0].steps.prefix(3) == ["token-rejected", "token-refresh", "mqtt-credentials"])
        #expect(session[0].state == .online)
    }

    @Test func aRefusedConnectIsAFailedSessionWithoutGateway() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5")
        let m = s.open("10.0.0.5", server: 1883)
        s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "wrong"))
        s.send(m, .toClient, MQTTWire.connAck(5))
        s.close(m)
        let sessions = s.finish()
        #expect(sessions.count == 1)
        #expect(sessions[0].state == .failed)
        #expect(sessions[0].gatewaySN == nil)
        // The connection was never up: its close loses no link (a link-lost here would contradict the refusal).
        #expect(sessions[0].steps.suffix(2) == ["mqtt-connect", "mqtt-connack"])
        #expect(sessions[0].first(.mqttConnack)?.ok == false)
        #expect(sessions[0].first(.login) != nil)  // the H5 context joined by credentials username
    }

    @Test func aRefusedConnectWithNothingPilotAboutItIsNoSession() {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883)
        s.send(m, .toServer, MQTTWire.connect(clientID: "myvoiceismypassport", username: "guest", password: "x"))
        s.send(m, .toClient, MQTTWire.connAck(5))
        s.close(m)
        #expect(s.finish().isEmpty)
        #expect(s.tracker.roles[m] == .other)
    }

    @Test func anAnonymousConnectSaysSo() {
        var s = Scenario()
        _ = s.deviceOnline(from: "10.0.0.5", username: nil, password: nil)
        let session = s.finish()[0]
        #expect(session.first(.mqttConnect)?.detail["anonymous"]?.boolValue == true)
        #expect(session.mqttUsername == nil)
    }

    @Test func aReconnectWithinTheGraceContinuesTheSession() {
        var s = Scenario()
        let m = s.deviceOnline(from: "10.0.0.5")
        s.close(m, after: 1, reason: .rst)
        s.wait(10)
        _ = s.deviceOnline(from: "10.0.0.5")
        let sessions = s.finish()
        #expect(sessions.count == 1)
        #expect(sessions[0].steps.contains("link-lost"))
        let reconnect = sessions[0].first(.reconnect)
        #expect(reconnect != nil)
        #expect((reconnect?.detail["after_seconds"]?.doubleValue ?? 0) > 9.9)
        #expect(sessions[0].state == .online)
        #expect(sessions[0].connections.count == 2)
    }

    @Test func aReconnectAfterTheGraceStartsANewSession() {
        var s = Scenario()
        let m = s.deviceOnline(from: "10.0.0.5")
        s.close(m, after: 1, reason: .rst)
        s.wait(40)
        _ = s.deviceOnline(from: "10.0.0.5")
        let sessions = s.finish()
        #expect(sessions.count == 2)
        #expect(sessions[0].steps.suffix(2) == ["link-lost", "offline-confirmed"])
        #expect(sessions[0].state == .offline)
        #expect(sessions[1].state == .online)
        #expect(sessions[1].first(.reconnect) == nil)
    }

    @Test func aLinkLostAtTheEndOfTheCaptureIsIncomplete() {
        var s = Scenario()
        let m = s.deviceOnline(from: "10.0.0.5")
        s.close(m, after: 1, reason: .rst)
        let sessions = s.finish(after: 5)
        #expect(sessions[0].state == .incomplete)
        #expect(sessions[0].first(.linkLost)?.detail["reason"]?.stringValue == "rst")
    }

    @Test func silencePastOneAndAHalfKeepAlivesIsALostLink() {
        var s = Scenario()
        _ = s.deviceOnline(from: "10.0.0.5", keepAlive: 10)
        s.wait(14)
        #expect(s.tracker.sessions[0]!.session.events.contains { $0.step == .linkLost } == false)
        s.wait(2)
        let sessions = s.finish(after: 40)
        let lost = sessions[0].first(.linkLost)
        #expect(lost?.detail["reason"]?.stringValue == "keep-alive")
        #expect(sessions[0].steps.last == "offline-confirmed")
    }

    @Test func twoDevicesInterleavedStayApart() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5", token: "token-a")
        s.h5Login(from: "10.0.0.6", token: "token-b")
        let a = s.deviceOnline(from: "10.0.0.5", sn: "RC-A")
        let b = s.deviceOnline(from: "10.0.0.6", sn: "RC-B")
        s.send(a, .toServer, MQTTWire.disconnect)
        s.close(a)
        let sessions = s.finish()
        #expect(sessions.count == 2)
        let byGateway = Dictionary(uniqueKeysWithValues: sessions.map { ($0.gatewaySN ?? "?", $0) })
        #expect(byGateway["RC-A"]?.client == "10.0.0.5")
        #expect(byGateway["RC-B"]?.client == "10.0.0.6")
        #expect(byGateway["RC-A"]?.first(.login)?.connection != byGateway["RC-B"]?.first(.login)?.connection)
        #expect(byGateway["RC-A"]?.state == .offline)
        #expect(byGateway["RC-B"]?.state == .online)
    }

    @Test func twoDevicesBehindOneAddressAreJoinedByCredentials() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5", mqttUser: "rc-a", mqttPassword: "pa", token: "token-a")
        s.h5Login(from: "10.0.0.5", mqttUser: "rc-b", mqttPassword: "pb", token: "token-b")
        _ = s.deviceOnline(from: "10.0.0.5", sn: "RC-B", username: "rc-b", password: "pb")
        _ = s.deviceOnline(from: "10.0.0.5", sn: "RC-A", username: "rc-a", password: "pa")
        let sessions = s.finish()
        #expect(sessions.count == 2)
        for session in sessions {
            let issued = session.first(.mqttCredentials)?.detail["mqtt_username"]?.stringValue
            #expect(issued == session.mqttUsername)
        }
    }

    @Test func aCaptureStartingMidSessionStillMakesTheSession() {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883, midstream: true)
        s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/osd", Array("{}".utf8)))
        s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.aircraft)/osd", Array("{}".utf8)))
        s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "x", aircraft: [])))
        s.send(m, .toClient, MQTTWire.publish("sys/product/\(Scenario.rc)/status_reply", Scenario.statusReply(tid: "x")))
        let sessions = s.finish()
        #expect(sessions.count == 1)
        #expect(sessions[0].steps == ["already-connected", "update-topo", "status-reply"])
        #expect(sessions[0].gatewaySN == Scenario.rc)
        #expect(sessions[0].state == .online)
    }

    @Test func theAircraftLeavingIsDeviceOffline() {
        var s = Scenario()
        let m = s.deviceOnline(from: "10.0.0.5")
        s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "t2", aircraft: [])))
        s.send(m, .toClient, MQTTWire.publish("sys/product/\(Scenario.rc)/status_reply", Scenario.statusReply(tid: "t2")))
        let session = s.finish()[0]
        #expect(session.steps.suffix(3) == ["update-topo", "device-offline", "status-reply"])
        #expect(session.first(.deviceOffline)?.detail["removed"] == .array([.string(Scenario.aircraft)]))
        #expect(session.state == .online)  // the RC stays online
    }

    @Test func anUnansweredStatusFails() {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883)
        s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "pilot123"))
        s.send(m, .toClient, MQTTWire.connAck())
        s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "t1", aircraft: [])))
        s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "t2", aircraft: [])), after: 3)
        let sessions = s.finish(after: 10)
        #expect(sessions[0].state == .failed)
        #expect(sessions[0].steps.filter { $0 == "update-topo" }.count == 2)
    }

    @Test func aWrongReplyIsNotOnline() {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883)
        s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "pilot123"))
        s.send(m, .toClient, MQTTWire.connAck())
        s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "t1", aircraft: [])))
        s.send(m, .toClient, MQTTWire.publish("sys/product/\(Scenario.rc)/status_reply", Scenario.statusReply(tid: "other")))
        let session = s.finish(after: 10)[0]
        #expect(session.first(.statusReply)?.ok == false)
        #expect(session.first(.statusReply)?.detail["matched"]?.boolValue == false)
        #expect(session.state == .failed)
    }

    @Test func theTopologyFetchJoinsByToken() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5")
        _ = s.deviceOnline(from: "10.0.0.5")
        let h = s.open("10.0.0.5", port: 43_000, server: 6789)
        s.send(h, .toServer, Scenario.request("GET", "/manage/api/v1/workspaces/w1/devices/topologies", token: Scenario.token))
        s.send(h, .toClient, Scenario.response(200, json: #"{"code":0,"message":"success","data":{"list":[{"hosts":[]}]}}"#))
        let session = s.finish()[0]
        #expect(session.steps.last == "topology-fetch")
        #expect(session.first(.topologyFetch)?.ok == true)
    }

    @Test func plainWebTrafficMakesNoSession() {
        var s = Scenario()
        let h = s.open("10.0.0.5", server: 80)
        s.send(h, .toServer, Scenario.request("GET", "/index.html"))
        s.send(h, .toClient, Scenario.response(200, html: "<html></html>"))
        s.send(h, .toServer, Scenario.request("GET", "/api/data"))
        s.send(h, .toClient, Scenario.response(200, json: #"{"code":0,"data":{"x":1}}"#))
        s.close(h)
        #expect(s.finish().isEmpty)
    }
}

import PilotTraceProtocols
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceFlow

/// Where sessions begin and end as real captures have them: mid-session starts, restarts, retries, shared client ids.
@Suite struct SessionBoundaryTests {
    static func osd(_ sn: String) -> [UInt8] { MQTTWire.publish("thing/product/\(sn)/osd", Array(#"{"data":{}}"#.utf8)) }

    @Test func aDeviceAlreadyConnectedWhenTheCaptureStartsGetsASessionFromWhatIsVisible() {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883, midstream: true)
        s.send(m, .toServer, Self.osd(Scenario.rc))
        s.send(m, .toServer, Self.osd(Scenario.aircraft))
        s.send(m, .toServer, Self.osd(Scenario.rc), after: 2)
        let findings = s.findings()
        let sessions = s.tracker.finish(at: s.now)
        #expect(sessions.count == 1)
        #expect(sessions[0].gatewaySN == Scenario.rc)
        #expect(sessions[0].steps == ["already-connected"])
        #expect(sessions[0].state == .online)  // connected and publishing when the capture ended
        let incomplete = findings.first { $0.rule == Rules.captureIncomplete }
        #expect(incomplete?.text.contains("already-connected") == true)
    }

    @Test func aMidstreamDeviceThatDisconnectsIsOffline() {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883, midstream: true)
        s.send(m, .toServer, Self.osd(Scenario.rc))
        s.send(m, .toServer, Self.osd(Scenario.rc))
        s.send(m, .toServer, Self.osd(Scenario.rc))
        s.send(m, .toServer, MQTTWire.disconnect)
        s.close(m)
        let sessions = s.finish()
        #expect(sessions.map(\.state) == [.offline])
        #expect(sessions[0].steps == ["already-connected", "mqtt-disconnect"])
    }

    @Test func aMidstreamDeviceWhoseStatusGoesUnansweredFails() {
        var s = Scenario()
        let m = s.open("10.0.0.5", server: 1883, midstream: true)
        s.send(m, .toServer, Self.osd(Scenario.rc))
        s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "u", aircraft: [])))
        s.send(m, .toServer, Self.osd(Scenario.rc))
        s.send(m, .toServer, MQTTWire.disconnect, after: 6)
        s.close(m)
        #expect(s.finish().map(\.state) == [.failed])
    }

    @Test func aBackendThatOnlyReceivesTheDevicesStatusIsTheCloud() {
        var s = Scenario()
        // Picked up mid-stream, never subscribes or publishes in the capture: it only receives.
        let backend = s.open("10.1.1.9", server: 1883, midstream: true)
        s.send(backend, .toClient, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "a", aircraft: [])))
        s.send(backend, .toClient, Self.osd(Scenario.rc))
        s.send(backend, .toClient, Self.osd(Scenario.rc))
        s.close(backend)
        _ = s.finish()
        #expect(s.tracker.roles[backend] == .cloud)
    }

    @Test func aDisconnectEndsTheSessionAndTheAppReopenedStartsANewOne() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5")
        let first = s.deviceOnline(from: "10.0.0.5")
        s.send(first, .toServer, MQTTWire.disconnect, after: 1)
        // The app is opened again 3 s later, before the first connection's close is released.
        s.t += 3
        s.h5Login(from: "10.0.0.5", token: Scenario.token + "2")
        let second = s.deviceOnline(from: "10.0.0.5")
        s.close(first)
        s.send(second, .toServer, MQTTWire.disconnect, after: 1)
        s.close(second)
        let sessions = s.finish()
        #expect(sessions.count == 2)
        for session in sessions {
            #expect(session.state == .offline)
            #expect(session.steps.first == "h5-page")
            #expect(session.steps.last == "mqtt-disconnect")
            #expect(!session.steps.contains("link-lost"))
            #expect(!session.steps.contains("reconnect"))
        }
        #expect(sessions[0].connections.contains(first) && sessions[1].connections.contains(second))
    }

    @Test func theStoredTokenPresentedAgainAfterADisconnectBelongsToTheNextSession() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5")
        let first = s.deviceOnline(from: "10.0.0.5")
        s.send(first, .toServer, MQTTWire.disconnect, after: 1)
        s.close(first)
        s.t += 3
        let h = s.open("10.0.0.5", server: 6789)
        s.send(h, .toServer, Scenario.request("GET", "/pilot-login"))
        s.send(h, .toClient, Scenario.response(200, html: "<html></html>"))
        s.send(h, .toServer, Scenario.request("POST", "/manage/api/v1/token/refresh", token: Scenario.token, json: "{}"))
        s.send(h, .toClient, Scenario.response(200, json: Scenario.loginResponse(token: Scenario.token + "R")))
        s.close(h)
        _ = s.deviceOnline(from: "10.0.0.5")
        let sessions = s.finish()
        #expect(sessions.count == 2)
        #expect(sessions[1].steps.prefix(2) == ["h5-page", "token-refresh"])
        #expect(!sessions[0].steps.contains("token-refresh"))
    }

    @Test("A page load waits for its login up to the horizon, then is forgotten (memory: one page per address ever seen)")
    func aPageLoadIsClaimedWithinTheHorizonOnly() {
        func login(after seconds: Double) -> [String] {
            var s = Scenario()
            let page = s.open("10.0.0.7", server: 6789)
            s.send(page, .toServer, Scenario.request("GET", "/pilot-login"))
            s.send(page, .toClient, Scenario.response(200, html: "<html></html>"))
            s.close(page)
            // Other web traffic keeps the capture clock going while the user types.
            var waited = 0.0
            while waited < seconds {
                s.wait(min(10, seconds - waited))
                waited += 10
            }
            let h = s.open("10.0.0.7", server: 6789)
            s.send(h, .toServer, Scenario.request("POST", "/manage/api/v1/login", json: #"{"username":"pilot","password":"pilot123","flag":2}"#))
            s.send(h, .toClient, Scenario.response(200, json: Scenario.loginResponse()))
            s.close(h)
            _ = s.deviceOnline(from: "10.0.0.7")
            return s.finish().first?.steps ?? []
        }
        #expect(login(after: SessionTracker.pageClaimHorizon - 20).first == "h5-page")
        let late = login(after: SessionTracker.pageClaimHorizon + 20)
        #expect(!late.contains("h5-page") && late.first == "login", "\(late)")
    }

    @Test func aReconnectOnlyFollowsALostLinkWithinTheGrace() {
        var s = Scenario()
        let first = s.deviceOnline(from: "10.0.0.5")
        s.close(first, reason: .rst)
        s.t += 5
        let second = s.deviceOnline(from: "10.0.0.5")
        s.send(second, .toServer, MQTTWire.disconnect)
        s.close(second)
        let sessions = s.finish()
        #expect(sessions.count == 1)
        let steps = sessions[0].steps
        #expect(steps.filter { $0 == "link-lost" }.count == 1)
        #expect(steps.firstIndex(of: "reconnect")! > steps.firstIndex(of: "link-lost")!)
        #expect(sessions[0].state == .offline)
    }

    @Test func connectsRefusedAgainAndAgainAreOneAttempt() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5")
        for attempt in 0..<4 {
            let m = s.open("10.0.0.5", port: UInt16(41_000 + attempt), server: 1883)
            s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "wrong"), after: attempt == 0 ? 0.01 : 1)
            s.send(m, .toClient, MQTTWire.connAck(5))
            s.close(m, after: 0.05)
        }
        let findings = s.findings(after: 40)
        let sessions = s.tracker.finish(at: s.now)
        #expect(sessions.count == 1)
        #expect(sessions[0].state == .failed)
        #expect(sessions[0].connections.count == 4)
        #expect(sessions[0].steps.filter { $0 == "mqtt-connack" }.count == 1)
        let connack = sessions[0].first(.mqttConnack)!
        #expect(connack.detail["attempts"]?.int64Value == 4)
        #expect((connack.detail["over_seconds"]?.doubleValue ?? 0) > 3)
        let refused = findings.filter { $0.rule == Rules.mqttConnectRefused }
        #expect(refused.count == 1)
        #expect(refused.first?.text.contains("refused 4 times in 3.") == true)
    }

    @Test func refusalsFurtherApartThanTheGraceAreSeparateAttempts() {
        var s = Scenario()
        for attempt in 0..<2 {
            let m = s.open("10.0.0.5", port: UInt16(41_000 + attempt), server: 1883)
            s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "wrong"), after: attempt == 0 ? 0.01 : 45)
            s.send(m, .toClient, MQTTWire.connAck(5))
            s.close(m, after: 0.05)
        }
        #expect(s.finish().count == 2)
    }

    @Test func aWrongPasswordIsNamedWithoutShowingAnyPassword() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5", mqttPassword: "issued-s3cret")
        let m = s.open("10.0.0.5", server: 1883)
        s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "typed-wr0ng"))
        s.send(m, .toClient, MQTTWire.connAck(5))
        s.close(m)
        let findings = s.findings()
        let mismatch = findings.filter { $0.rule == Rules.mqttCredentialsMismatch }
        #expect(mismatch.count == 1)
        #expect(mismatch.first?.text == "the CONNECT's password differs from the one issued by POST /manage/api/v1/login (CONNECT as pilot)")
        #expect(mismatch.first?.evidence["differs"] == .array([.string("password")]))
        let sessions = s.tracker.finish(at: s.now)
        let everything = "\(findings) \(sessions.map(\.events))"
        #expect(!everything.contains("issued-s3cret") && !everything.contains("typed-wr0ng"))
    }

    @Test func theRightCredentialsRaiseNoMismatch() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5")
        _ = s.deviceOnline(from: "10.0.0.5")
        let findings = s.findings()
        #expect(!findings.contains { $0.rule == Rules.mqttCredentialsMismatch })
    }

    @Test func usernameAndPasswordBothWrongAreNamedTogether() {
        var s = Scenario()
        s.h5Login(from: "10.0.0.5")
        let m = s.open("10.0.0.5", server: 1883)
        s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "admin", password: "admin"))
        s.send(m, .toClient, MQTTWire.connAck(5))
        let mismatch = s.findings().filter { $0.rule == Rules.mqttCredentialsMismatch }
        #expect(mismatch.first?.evidence["differs"] == .array([.string("username"), .string("password")]))
    }

    @Test func twoDevicesSharingAClientIDKeepTheirOwnSessionsAndMakeOneFinding() {
        var s = Scenario()
        let other = "5YSZL260020001"
        // Both use the first RC's serial as client id; each subscribes to its own topics.
        func connect(_ from: String, _ sn: String, port: UInt16) -> ConnectionID {
            let m = s.open(from, port: port, server: 1883)
            s.send(m, .toServer, MQTTWire.connect(clientID: Scenario.rc, username: "pilot", password: "pilot123"))
            s.send(m, .toClient, MQTTWire.connAck())
            s.send(m, .toServer, MQTTWire.subscribe(id: 1, ["sys/product/\(sn)/status_reply"]))
            s.send(m, .toClient, MQTTWire.subAck(id: 1, count: 1))
            return m
        }
        var open = connect("10.0.0.5", Scenario.rc, port: 41_000)
        for round in 1...4 {
            let (from, sn) = round % 2 == 1 ? ("10.0.0.6", other) : ("10.0.0.5", Scenario.rc)
            let next = connect(from, sn, port: UInt16(41_000 + round))
            s.close(open, reason: .rst)  // the broker closes the older connection
            open = next
            s.t += 1
        }
        let findings = s.findings()
        let sessions = s.tracker.finish(at: s.now)
        #expect(sessions.count == 2)
        #expect(Set(sessions.compactMap(\.gatewaySN)) == [Scenario.rc, other])
        for session in sessions {
            let losses = session.events.filter { $0.step == .linkLost }
            #expect(!losses.isEmpty)
            #expect(losses.allSatisfy { $0.detail["reason"]?.stringValue == "client-id-takeover" })
        }
        let takeover = findings.filter { $0.rule == Rules.mqttClientIDTakeover }
        #expect(takeover.count == 1)
        #expect(takeover.first?.evidence["takeovers"]?.int64Value == 4)
        #expect(takeover.first?.evidence["devices"] == .array([.string(Scenario.rc), .string(other)]))
    }

    @Test func oneDeviceReconnectingWithItsOwnClientIDIsNoTakeover() {
        var s = Scenario()
        let first = s.deviceOnline(from: "10.0.0.5")
        let second = s.deviceOnline(from: "10.0.0.5")
        s.close(first, reason: .rst)
        s.close(second)
        #expect(!s.findings().contains { $0.rule == Rules.mqttClientIDTakeover })
    }
}

/// The lifecycle's transitions, one input at a time.
@Suite struct SessionLifecycleTests {
    func at(_ s: Double) -> Timestamp { Timestamp(nanoseconds: Int64(s * 1e9)) }
    func event(_ step: Step, ok: Bool = true, _ t: Double) -> TimelineEvent { TimelineEvent(time: at(t), step: step, ok: ok) }

    @Test func anAcceptedConnectIsConnectedAndADisconnectEndsIt() {
        var l = SessionLifecycle(grace: 30)
        #expect(l.admission(at: at(0)) == .join)
        l.apply(event(.mqttConnack, 1))
        #expect(l.state == .connected)
        l.apply(event(.mqttDisconnect, 2))
        #expect(l.state == .disconnected && l.isOver)
        #expect(l.admission(at: at(3)) == .startNew)
    }

    @Test func aLostLinkWaitsTheGrace() {
        var l = SessionLifecycle(grace: 30)
        l.apply(event(.mqttConnack, 1))
        l.apply(event(.linkLost, ok: false, 10))
        #expect(l.admission(at: at(20)) == .reconnect(afterSeconds: 10))
        #expect(l.admission(at: at(41)) == .startNew)
        #expect(l.expiry(now: at(39)) == nil)
        #expect(l.expiry(now: at(41)) == at(40))
        l.apply(event(.reconnect, 20))
        #expect(l.state == .connected)
    }

    @Test func theGraceEndsInOfflineConfirmed() {
        var l = SessionLifecycle(grace: 30)
        l.apply(event(.mqttConnack, 1))
        l.apply(event(.linkLost, ok: false, 10))
        l.apply(event(.offlineConfirmed, 40))
        #expect(l.state == .offlineConfirmed && l.isOver)
    }

    @Test func refusalsWithinTheGraceAreRetries() {
        var l = SessionLifecycle(grace: 30)
        l.apply(event(.mqttConnack, ok: false, 1))
        #expect(l.admission(at: at(2)) == .retry)
        l.refusedAgain(at: at(2))
        #expect(l.state == .connecting(refusals: 2, lastRefusal: at(2)))
        #expect(l.admission(at: at(40)) == .startNew)
    }

    @Test func aReconnectWithoutALostLinkChangesNothing() {
        var l = SessionLifecycle(grace: 30)
        l.apply(event(.mqttConnack, 1))
        l.apply(event(.reconnect, 2))
        #expect(l.state == .connected)
        l.apply(event(.mqttDisconnect, 3))
        l.apply(event(.linkLost, ok: false, 4))  // after DISCONNECT nothing reopens it
        #expect(l.state == .disconnected)
    }
}

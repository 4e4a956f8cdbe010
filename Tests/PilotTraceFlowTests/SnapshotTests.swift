import PilotTraceProtocols
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceFlow

/// The tracker and the rule engine are classes updated in place; a live view finishes their `snapshot()` while they go
/// on. These tests read every stored property by reflection, so a property added and forgotten in `snapshot()` (or in
/// the `copy()` of the objects they hold per connection and per session) fails here rather than diverging silently.
@Suite struct SnapshotTests {
    /// A capture in progress: a login, a request waiting for its response, a cloud backend, one device online with a
    /// QoS 1 PUBLISH in flight, a second whose link went silent, a third retired after its DISCONNECT, a fourth just
    /// gone.
    static func busy() -> Scenario {
        var configuration = SessionTracker.Configuration()
        configuration.retireSessions = true
        var s = Scenario(configuration: configuration)
        s.h5Login(from: "10.0.0.5")
        let page = s.open("10.0.0.5", port: 40_001, server: 6789)
        s.send(page, .toServer, Scenario.request("GET", "/manage/api/v1/workspaces/current", token: Scenario.token))
        _ = s.cloudBackend()
        let m = s.deviceOnline(from: "10.0.0.5")
        s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/osd", Array(#"{"data":{}}"#.utf8)))
        s.send(m, .toServer, MQTTWire.publish("thing/product/\(Scenario.rc)/events", Array(#"{"tid":"e1","method":"x"}"#.utf8), qos: 1, id: 7))
        s.send(m, .toServer, MQTTWire.publish("sys/product/\(Scenario.rc)/status", Scenario.updateTopo(tid: "t2", aircraft: [Scenario.aircraft])))
        let quiet = s.deviceOnline(from: "10.0.0.6", sn: "5YSZL260021E9B", keepAlive: 50)
        s.send(quiet, .toServer, MQTTWire.packet(0xC0, []))
        let gone = s.deviceOnline(from: "10.0.0.7", sn: "5YSZL260021E9C")
        s.send(gone, .toServer, MQTTWire.disconnect)
        s.close(gone)
        s.wait(50)
        s.send(m, .toServer, MQTTWire.packet(0xC0, []))
        s.wait(45)
        _ = s.tracker.takeRetired()
        let late = s.deviceOnline(from: "10.0.0.9", sn: "5YSZL260021E9E")
        s.send(late, .toServer, MQTTWire.disconnect)
        s.close(late)
        return s
    }

    @Test func theTrackerSnapshotCopiesEveryPropertyAndSharesNoObject() throws {
        let s = Self.busy()
        let copy = s.tracker.snapshot()
        try expectIndependentCopy(s.tracker, copy)
        // Properties this capture leaves at their initial value; any other one must differ, so that forgetting it in
        // `snapshot()` shows.
        expectExercised(
            s.tracker, SessionTracker(configuration: s.tracker.configuration),
            unexercised: ["configuration", "finishing", "retiredNumbers", "retiredOut", "lastPage"])
        let connection = try #require(s.tracker.connections.values.first { $0.sn == Scenario.rc })
        expectExercised(
            connection, SessionTracker.Connection(info: connection.info, lastClientPacket: .zero),
            unexercised: ["info", "refused", "linkLostReported", "disconnected", "takenOverBy", "pendingSubscribe", "closed", "pending"])
        let working = try #require(s.tracker.sessions.compactMap { $0 }.first { $0.session.gatewaySN == Scenario.rc })
        expectExercised(
            working, SessionTracker.Working(session: working.session, grace: working.lifecycle.grace),
            unexercised: ["session", "assumedOnline", "failedStep", "refusalEvent", "releasedAt", "over"])
    }

    @Test func theEngineSnapshotCopiesEveryPropertyAndSharesNoObject() throws {
        let s = Self.busy()
        // What the scenario's clear-text MQTT and HTTP cannot reach: a gap, TLS connections decrypted and not, a
        // bridge's license reports, a session retired early.
        let tls = ConnectionID(rawValue: 900)
        s.engine.gaps.insert(tls)
        s.engine.decrypted.insert(tls)
        s.engine.encrypted.append((s.infos.values.first!, "no key for this client random"))
        s.engine.licenseVerified.insert("10.0.0.5")
        s.engine.licenseReported.insert("10.0.0.6")
        s.engine.retired.append(.init(serial: 9, start: s.now, connections: [tls], eventConnections: [tls], findings: [], partial: []))
        let copy = s.engine.snapshot()
        try expectIndependentCopy(s.engine, copy)
        expectExercised(s.engine, DeviationEngine(configuration: s.engine.configuration), unexercised: ["configuration"])
        let state = try #require(s.engine.mqtt.values.first { $0.inFlight[0].isEmpty == false })
        expectExercised(state, DeviationEngine.MQTTState(), unexercised: ["releasing"])
    }

    /// What a live view relies on: after the snapshot, the original goes on and the snapshot does not move.
    @Test func theOriginalGoesOnWithoutMovingTheSnapshot() {
        var s = Self.busy()
        let tracker = s.tracker.snapshot(), engine = s.engine.snapshot()
        let (before, ruleState) = (dumped(tracker), dumped(engine))
        let m = s.deviceOnline(from: "10.0.0.8", sn: "5YSZL260021E9D")
        s.send(m, .toServer, MQTTWire.publish("thing/product/5YSZL260021E9D/osd", Array(#"{"data":{}}"#.utf8), qos: 1, id: 3))
        s.wait(40)
        #expect(dumped(tracker) == before)
        #expect(dumped(engine) == ruleState)
        // And the snapshot finishes on its own: the sessions it knew, not the one that came after.
        let sessions = tracker.finish(at: s.now)
        #expect(!sessions.contains { $0.gatewaySN == "5YSZL260021E9D" })
        #expect(sessions.contains { $0.gatewaySN == Scenario.rc })
    }
}

/// The whole value as `dump` prints it: every stored property, recursively (objects numbered in order met, not by
/// address, so two equal graphs print alike).
func dumped(_ value: Any) -> String {
    var out = ""
    dump(value, to: &out, maxDepth: .max, maxItems: .max)
    return out
}

/// `copy` prints like `original` and shares none of its objects.
func expectIndependentCopy(_ original: AnyObject, _ copy: AnyObject, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(dumped(original) == dumped(copy), "the snapshot differs from the original", sourceLocation: sourceLocation)
    var a = Set<ObjectIdentifier>(), b = Set<ObjectIdentifier>()
    objects(in: original, into: &a)
    objects(in: copy, into: &b)
    try #require(a.count > 1, "the original holds no objects: nothing to check", sourceLocation: sourceLocation)
    #expect(a.count == b.count, "the snapshot holds \(b.count) objects, the original \(a.count)", sourceLocation: sourceLocation)
    #expect(a.isDisjoint(with: b), "the snapshot shares \(a.intersection(b).count) objects with the original", sourceLocation: sourceLocation)
}

/// Every class instance reachable from `value` through stored properties.
func objects(in value: Any, into found: inout Set<ObjectIdentifier>) {
    let mirror = Mirror(reflecting: value)
    if mirror.displayStyle == .class {
        guard found.insert(ObjectIdentifier(value as AnyObject)).inserted else { return }
    }
    for child in mirror.children { objects(in: child.value, into: &found) }
}

/// Every stored property of `value` differs from the same property of `initial`, but those named `unexercised`
/// (which must exist and be equal): a property the test scenario never sets could be forgotten in a copy unseen.
func expectExercised(_ value: Any, _ initial: Any, unexercised: Set<String>, sourceLocation: SourceLocation = #_sourceLocation) {
    let fresh = Dictionary(uniqueKeysWithValues: Mirror(reflecting: initial).children.map { ($0.label ?? "?", dumped($0.value)) })
    var seen = Set<String>()
    for child in Mirror(reflecting: value).children {
        let label = child.label ?? "?"
        seen.insert(label)
        let same = dumped(child.value) == fresh[label]
        if unexercised.contains(label) {
            #expect(same, "\(type(of: value)).\(label) is set by the scenario now: take it off the unexercised list", sourceLocation: sourceLocation)
        } else {
            #expect(!same, "\(type(of: value)).\(label) keeps its initial value: set it in the scenario, or list it as unexercised", sourceLocation: sourceLocation)
        }
    }
    #expect(unexercised.isSubset(of: seen), "no such properties: \(unexercised.subtracting(seen).sorted())", sourceLocation: sourceLocation)
}

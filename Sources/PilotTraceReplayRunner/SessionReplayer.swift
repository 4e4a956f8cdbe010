import Foundation
import NIOCore
import NIOHTTP1
import PilotTraceClients
import PilotTraceProtocols
import PilotTraceRelay
import PilotTraceReplay

/// Where a replay sends its traffic.
public struct ReplayTarget: Sendable {
    public var httpHost: String
    public var httpPort: Int
    /// The broker; nil: the one the target's own login hands out (`mqtt_addr`).
    public var mqtt: (host: String, port: Int)?

    public init(httpHost: String, httpPort: Int, mqtt: (host: String, port: Int)?) {
        self.httpHost = httpHost
        self.httpPort = httpPort
        self.mqtt = mqtt
    }

    /// The `Host` header for the target.
    var hostHeader: String { httpHost.contains(":") ? "[\(httpHost)]:\(httpPort)" : "\(httpHost):\(httpPort)" }
}

/// How a replay runs.
public struct ReplayOptions: Sendable {
    public var pacing: Pacing = .original
    /// `--set NAME=VALUE`.
    public var overrides: [String: String] = [:]
    public var ignore: [JSONPathPattern] = []
    /// Keep the recorded tid, bid and timestamps.
    public var verbatim = false
    /// Seconds to wait for a reply the recording had (and for a CONNACK): the rules' reply deadline.
    public var replyTimeout: Double = 5
    public var httpTimeout: Double = 10
    public init() {}
}

/// Re-drives one plan against the target, step by step, on the calling thread; returns what the target did.
///
/// HTTP goes out on keep-alive connections grouped as recorded (``HTTPClientConnection``), MQTT through libmosquitto
/// (``MQTTClient``) via a loopback ``MQTTRelay`` that lets the replay see its bytes. Every connection reports its
/// bytes to `recorder`.
final class SessionReplayer: @unchecked Sendable {
    struct Run {
        var observations: [Observation]
        var bindings: [String: String]
        var duration: Double
    }

    struct MQTTConnection {
        var client: MQTTClient
        var relay: MQTTRelay
        /// Publishes that did not wait for their reply: ordinal, tid, bid.
        var unawaited: [(Int, String?, String?)] = []
        var topics: [Int: String] = [:]
        /// Message ids of QoS 1/2 publishes: their acknowledgments are awaited before the connection ends (a recorded
        /// drop came after them; dropping before the PUBACK would be a deviation the recording did not have).
        var inflight: [Int32] = []
    }

    let plan: ReplayPlan
    let target: ReplayTarget
    let options: ReplayOptions
    let group: EventLoopGroup
    let recorder: (any TrafficRecording)?
    let fresh: FreshValues

    init(plan: ReplayPlan, target: ReplayTarget, options: ReplayOptions, group: EventLoopGroup, recorder: (any TrafficRecording)?) {
        self.plan = plan
        self.target = target
        self.options = options
        self.group = group
        self.recorder = recorder
        fresh = FreshValues(uuid: { UUID().uuidString.lowercased() }, nowMilliseconds: { Int64(Date().timeIntervalSince1970 * 1000) })
    }

    func run() -> Run {
        let started = Date()
        var observations = [Observation](repeating: .notRun("not reached"), count: plan.steps.count)
        var bindings: [String: String] = [:]
        var http: [Int: HTTPClientConnection] = [:]
        var mqtt: [Int: MQTTConnection] = [:]
        var refused: Set<Int> = []
        var broker = target.mqtt
        let recorder = self.recorder

        func settle(_ c: inout MQTTConnection, into observations: inout [Observation]) {
            // Replies to publishes that did not wait: whatever is in the inbox now.
            while let m = c.client.waitForMessage(timeout: 0) {
                let json = try? JSONValue.parse(m.payload)
                let tid = json?["tid"].flatMap { if case .string(let s) = $0 { s } else { nil } }
                if let i = c.unawaited.firstIndex(where: { u in c.topics[u.0].map { $0 + "_reply" } == m.topic && (u.1 == nil || u.1 == tid) }) {
                    let u = c.unawaited.remove(at: i)
                    observations[u.0] = .published(tid: u.1, bid: u.2, reply: m.payload, latency: nil)
                }
            }
        }

        for step in plan.steps {
            if let due = options.pacing.due(step.at) {
                let wait = started.addingTimeInterval(due).timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
            let prepared = plan.prepare(step, bindings: bindings, overrides: options.overrides, fresh: options.verbatim ? nil : fresh)
            switch prepared.action {
            case let .http(c, method, requestTarget, headers, body):
                do {
                    let connection: HTTPClientConnection
                    if let open = http[c] {
                        connection = open
                    } else {
                        var tap: (@Sendable () -> any ChannelHandler)?
                        if let recorder { tap = { RecordingHandler(recorder: recorder, side: .initiated, closeOnInputClosed: true) } }
                        connection = try HTTPClientConnection(
                            host: self.target.httpHost, port: self.target.httpPort, group: group, timeout: options.httpTimeout, defaultHeaders: false,
                            bytes: tap)
                        http[c] = connection
                    }
                    var sent: [(String, String)] = []
                    var hasBody = !body.isEmpty
                    for (k, v) in headers {
                        switch k.lowercased() {
                        case "host": sent.append((k, self.target.hostHeader))
                        case "content-length": hasBody = true
                        case "transfer-encoding": hasBody = true
                        default: sent.append((k, v))
                        }
                    }
                    if !sent.contains(where: { $0.0.lowercased() == "host" }) { sent.insert(("Host", self.target.hostHeader), at: 0) }
                    let t0 = Date()
                    let response: HTTPClientConnection.Response
                    do {
                        response = try connection.send(HTTPMethod(rawValue: method), requestTarget, headers: sent, body: hasBody ? body : nil)
                    } catch {
                        // The server may have closed a kept-alive connection: one new connection, once.
                        http[c]?.close()
                        http[c] = nil
                        throw error
                    }
                    observations[step.ordinal] = .http(status: response.status, body: response.body, latency: Date().timeIntervalSince(t0))
                    bindings.merge(plan.bindings(definedBy: step, response: response.body)) { _, new in new }
                    if target.mqtt == nil, broker == nil, let addr = Self.mqttAddress(response.body) { broker = addr }
                } catch {
                    observations[step.ordinal] = .httpFailed("\(error)")
                }
            case let .connect(c, clientID, username, password, keepAlive, version, _):
                guard let (host, port) = broker ?? target.mqtt else {
                    observations[step.ordinal] = .connectFailed("no broker: give --target-mqtt (the target's login issued no mqtt_addr)")
                    refused.insert(c)
                    continue
                }
                do {
                    let relay = try MQTTRelay(group: group, targetHost: host, targetPort: port, recorder: recorder)
                    let client = try MQTTClient(
                        clientID: clientID, version: version == "5.0" ? .v5 : .v311, username: username,
                        password: password.map { String(decoding: $0, as: UTF8.self) })
                    let t0 = Date()
                    do {
                        let code = try client.connect(host: "127.0.0.1", port: relay.port, keepAlive: keepAlive, timeout: options.replyTimeout)
                        observations[step.ordinal] = .connack(code: Int(code), latency: Date().timeIntervalSince(t0))
                        if code != 0 { refused.insert(c) }
                        mqtt[c] = MQTTConnection(client: client, relay: relay)
                    } catch {
                        observations[step.ordinal] = .connectFailed("\(error)")
                        refused.insert(c)
                        client.close(dropLink: true)
                        relay.finish(timeout: 1)
                    }
                } catch {
                    observations[step.ordinal] = .connectFailed("\(error)")
                    refused.insert(c)
                }
            case let .subscribe(c, filters):
                guard let connection = mqtt[c], !refused.contains(c) else { observations[step.ordinal] = .notRun("no MQTT connection"); continue }
                var ok = true
                for qos in Set(filters.map(\.1)).sorted() {
                    do { try connection.client.subscribe(filters.filter { $0.1 == qos }.map(\.0), qos: qos, timeout: options.replyTimeout) } catch {
                        ok = false
                    }
                }
                observations[step.ordinal] = .subscribed(ok: ok)
            case let .publish(c, topic, payload, qos, _):
                guard var connection = mqtt[c], !refused.contains(c) else { observations[step.ordinal] = .notRun("no MQTT connection"); continue }
                do {
                    let t0 = Date()
                    let mid = try connection.client.publish(topic, payload, qos: qos)
                    if qos > 0 { connection.inflight.append(mid) }
                    if case .reply(let expected) = step.expectation, expected != nil {
                        let tid = prepared.tid
                        let reply = connection.client.waitForMessage(timeout: options.replyTimeout) { m in
                            guard m.topic == topic + "_reply" else { return false }
                            guard let tid else { return true }
                            let json = try? JSONValue.parse(m.payload)
                            return json?["tid"] == .string(tid)
                        }
                        observations[step.ordinal] = .published(
                            tid: prepared.tid, bid: prepared.bid, reply: reply?.payload,
                            latency: reply.map { _ in Date().timeIntervalSince(t0) })
                    } else {
                        observations[step.ordinal] = .published(tid: prepared.tid, bid: prepared.bid, reply: nil, latency: nil)
                        connection.unawaited.append((step.ordinal, prepared.tid, prepared.bid))
                        connection.topics[step.ordinal] = topic
                    }
                } catch {
                    observations[step.ordinal] = .publishFailed("\(error)")
                }
                mqtt[c] = connection
            case let .end(c, disconnect):
                guard var connection = mqtt.removeValue(forKey: c) else { observations[step.ordinal] = .notRun("no MQTT connection"); continue }
                for mid in connection.inflight { _ = connection.client.waitAcknowledged(mid, timeout: 1) }
                settle(&connection, into: &observations)
                // libmosquitto acknowledges the last QoS 1 messages it received on its own thread: give it a moment
                // before the socket goes without a word (the recorded drop came later than that, too).
                if !disconnect { Thread.sleep(forTimeInterval: 0.1) }
                connection.client.close(dropLink: !disconnect)
                connection.relay.finish(timeout: 1)
                observations[step.ordinal] = .ended
            }
        }
        for (_, var connection) in mqtt {
            settle(&connection, into: &observations)
            connection.client.close(dropLink: false)
            connection.relay.finish(timeout: 1)
        }
        for (_, connection) in http { connection.close() }
        return Run(observations: observations, bindings: bindings, duration: Date().timeIntervalSince(started))
    }

    /// `mqtt_addr` (`tcp://host:port`) anywhere in a JSON response.
    static func mqttAddress(_ body: [UInt8]) -> (String, Int)? {
        guard let json = try? JSONValue.parse(body) else { return nil }
        var found: String?
        func walk(_ v: JSONValue) {
            switch v {
            case .object(let m): for (k, x) in m { if k == "mqtt_addr", case .string(let s) = x { found = s } else { walk(x) } }
            case .array(let a): a.forEach(walk)
            default: break
            }
        }
        walk(json)
        guard let found, let url = URL(string: found), let host = url.host, let port = url.port else { return nil }
        return (host, port)
    }
}

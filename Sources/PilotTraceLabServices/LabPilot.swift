import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PilotTraceClients

/// Acts as Pilot 2 and its H5 page, per the documented sequence (protocol reference §1.1–1.3): fetch the login page,
/// use a stored token or log in, fetch the workspace and the MQTT credentials, connect (libmosquitto), subscribe,
/// publish `update_topo` with an aircraft and re-send it while unanswered, fetch the topology, send osd, then take the
/// aircraft offline and exit cleanly or drop the link; after a clean end it can run the whole script again (the app
/// re-opened). Fault switches make it deviate the way the rules name.
public struct LabPilot: Sendable {
    public enum Fault: String, CaseIterable, Sendable {
        /// CONNECT without username/password (`mqtt-anonymous-login`).
        case anonymous
        /// CONNECT with a wrong password (`mqtt-connect-refused`).
        case wrongPassword = "wrong-password"
        /// `update_topo` on `thing/product/{sn}/status` (`status-topic-wrong`).
        case wrongStatusTopic = "wrong-status-topic"
        /// The topology request without `x-auth-token` (`token-missing`).
        case missingToken = "missing-token"
        /// A stored token that expired is tried first (401 → log in again; `expired-token-accepted` if the cloud takes it).
        case expiredToken = "expired-token"
        /// Connects and subscribes but never publishes `update_topo` (`status-not-sent`).
        case noStatus = "no-status"
        /// `update_topo` without `thing_version`/`device_secret` (`update-topo-invalid`).
        case invalidTopo = "invalid-topo"
        /// Every device connects with the first device's client id (RC 5YSZL260021E9A), keeping its own serials in
        /// topics and payloads: the broker closes the older connection at each CONNECT (session takeover) and the
        /// device it closed reconnects about 1 s later while online (`mqtt-client-id-takeover`).
        case sharedClientID = "shared-client-id"
    }

    public enum Offline: String, CaseIterable, Sendable {
        /// `update_topo` with empty `sub_devices`, answered, then DISCONNECT (the aircraft goes offline, Pilot exits).
        case active
        /// DISCONNECT without the aircraft going offline first (the user exits the platform).
        case exit
        /// The TCP connection closes without DISCONNECT (app killed, link lost): the cloud waits 30 s.
        case passive
    }

    public struct Configuration: Sendable {
        public var cloud = "http://127.0.0.1:6789"
        public var username = "pilot"
        public var password = "pilot123"
        public var devices = 1
        public var version: MQTTClient.Version = .v311
        /// Seconds online, sending osd.
        public var online: Double = 3
        /// Seconds between osd rounds (0.5 Hz per the docs).
        public var osdInterval: Double = 2
        /// Seconds to wait for `status_reply` before re-sending `status`.
        public var statusRetry: Double = 2
        /// How many times `status` is sent before Pilot gives up (it keeps trying in reality).
        public var statusTries = 3
        public var offline: Offline = .active
        public var faults: Set<Fault> = []
        /// Fly with an aircraft linked (`sub_devices` holds it) or without.
        public var aircraft = true
        public var keepAlive = 60
        /// The secret the lab cloud signs with (to mint the stored, expired token of `expired-token`).
        public var jwtSecret = "CloudApiSample"
        /// Seconds over which the devices' starts are spread.
        public var rampUp: Double = 0
        /// How many more times the whole script runs after it ended with a clean DISCONNECT (the app opened again:
        /// new HTTP connection, login, new MQTT connection with the same client id).
        public var restarts = 0
        /// Seconds between a run's DISCONNECT and the next run.
        public var restartDelay: Double = 2
        /// How many more times a refused CONNECT is tried (new TCP connection, same client id and credentials).
        public var connectRetries = 0
        /// Seconds between a refused CONNECT and the next try.
        public var retryInterval: Double = 1
        /// Seconds before a device whose connection the broker closed connects again (shared-client-id fault).
        public var reconnectDelay: Double = 1
        public init() {}
    }

    public struct Outcome: Sendable {
        public var gateway: String
        public var online: Bool
        public var failure: String?
        public var messages: (published: Int, received: Int)
        /// Runs of the script that completed (1 + restarts when all did).
        public var runs = 0
        /// CONNECTs the broker refused (CONNACK ≠ 0).
        public var refusals = 0
        /// Times the broker closed the device's connection while it was online and the device reconnected
        /// (shared-client-id fault: another connection took the client id over).
        public var takeovers = 0
    }

    public let configuration: Configuration
    let log: @Sendable (String) -> Void

    public init(configuration: Configuration, log: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.log = log
    }

    /// The serials of device `index`: the first is the reference's RC Plus and M30; the others count up.
    public static func serials(_ index: Int) -> (rc: String, aircraft: String) {
        if index == 0 { return ("5YSZL260021E9A", "1581F5FHD232600D3B4E") }
        return ("5YSZL26002" + String(format: "%04X", index), "1581F5FHD23260" + String(format: "%06d", index))
    }

    /// The local address device `index` binds to: with several devices against a loopback cloud each gets its own
    /// loopback address (127.0.1.1, 127.0.1.2, …), as real remote controllers have their own IPs; otherwise none.
    func sourceAddress(_ index: Int) -> String? {
        guard configuration.devices > 1, let host = URL(string: configuration.cloud)?.host, host.hasPrefix("127.") else { return nil }
        return "127.0.\(1 + index / 250).\(1 + index % 250)"
    }

    /// Runs every device on its own thread and returns their outcomes, in device order.
    public func run() -> [Outcome] {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let results = Results(count: configuration.devices)
        let done = DispatchGroup()
        for i in 0..<configuration.devices {
            done.enter()
            let delay = configuration.devices > 1 ? configuration.rampUp * Double(i) / Double(configuration.devices) : 0
            let thread = Thread { [self] in
                if delay > 0 { Thread.sleep(forTimeInterval: delay) }
                results.set(i, device(i, group: group))
                done.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        done.wait()
        return results.all
    }

    final class Results: @unchecked Sendable {
        let lock = NSLock()
        var values: [Outcome?]
        init(count: Int) { values = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ o: Outcome) { lock.withLock { values[i] = o } }
        var all: [Outcome] { lock.withLock { values.compactMap { $0 } } }
    }

    struct Stop: Error { var reason: String }

    /// The broker (or the network) closed the device's MQTT connection under it; with the shared-client-id fault,
    /// another connection took its client id over.
    struct LinkLost: Error {}

    /// One remote controller: its whole script, run again for each restart.
    func device(_ index: Int, group: EventLoopGroup) -> Outcome {
        let device = Device(pilot: self, index: index)
        return device.run(group: group)
    }

    /// One simulated remote controller (Pilot 2 and its H5 page) and what it did so far.
    final class Device {
        let pilot: LabPilot
        let rc: String, aircraft: String
        /// The MQTT client id: the RC serial, or with the shared-client-id fault the first device's for every device.
        let clientID: String
        /// The local address it binds to (several devices on loopback), if any.
        let source: String?
        var outcome: Outcome
        var client: MQTTClient?
        var http: HTTPClientConnection?
        /// Where and as whom to connect, from users/current.
        var broker: (host: String, port: Int, username: String?, password: String?) = ("", 0, nil, nil)
        var configuration: Configuration { pilot.configuration }
        var shared: Bool { configuration.faults.contains(.sharedClientID) }
        /// `sub_devices` while online: the aircraft (if flying with one).
        var topology: [[String: Any]] {
            configuration.aircraft
                ? [
                    [
                        "sn": aircraft, "domain": "0", "type": 67, "sub_type": 0, "index": "A",
                        "device_secret": "a1rcr4ft-s3cr3t", "nonce": "n0nc3", "thing_version": "1.1.2",
                    ]
                ] : []
        }

        init(pilot: LabPilot, index: Int) {
            self.pilot = pilot
            (rc, aircraft) = LabPilot.serials(index)
            clientID = pilot.configuration.faults.contains(.sharedClientID) ? LabPilot.serials(0).rc : rc
            source = pilot.sourceAddress(index)
            outcome = Outcome(gateway: rc, online: false, failure: nil, messages: (0, 0))
        }

        func say(_ line: String) { pilot.log("[\(rc)] \(line)") }

        /// The script, then (`restarts`) the app opened again after each clean end: a new H5 connection, login, MQTT
        /// connection; stops at the first run that fails.
        func run(group: EventLoopGroup) -> Outcome {
            let runs = 1 + max(0, configuration.restarts)
            for run in 1...runs {
                if run > 1 {
                    say("restart \(run - 1) of \(runs - 1): the app is opened again in \(configuration.restartDelay) s")
                    Thread.sleep(forTimeInterval: configuration.restartDelay)
                }
                do {
                    try script(group: group)
                    outcome.runs += 1
                } catch let stop as Stop {
                    outcome.failure = stop.reason
                } catch is LinkLost {
                    outcome.failure = "the broker closed the connection"
                } catch {
                    outcome.failure = "\(error)"
                }
                client?.close(dropLink: false)
                client = nil
                http?.close()
                http = nil
                if let failure = outcome.failure {
                    if runs > 1 { outcome.failure = "run \(run) of \(runs): \(failure)" }
                    say("failed: \(outcome.failure!)")
                    break
                }
            }
            if outcome.takeovers > 0 {
                say("the broker closed this device's connection \(outcome.takeovers) time(s): client id \(clientID) taken over by another connection")
            }
            return outcome
        }

        /// One run of the whole script, from the H5 page to the offline.
        func script(group: EventLoopGroup) throws {
            guard let url = URL(string: configuration.cloud), let host = url.host, let port = url.port ?? (url.scheme == "https" ? 443 : 80) as Int? else {
                throw Stop(reason: "not an http URL: \(configuration.cloud)")
            }
            guard url.scheme == "http" else { throw Stop(reason: "the lab pilot speaks plain http (got \(configuration.cloud))") }
            let h5 = try HTTPClientConnection(host: host, port: port, group: group, bindTo: source)
            http = h5
            func call(_ method: HTTPMethod, _ path: String, token: String? = nil, json: [String: Any]? = nil) throws -> HTTPClientConnection.Response {
                var headers: [(String, String)] = []
                if let token { headers.append(("x-auth-token", token)) }
                var body: [UInt8]?
                if let json {
                    headers.append(("Content-Type", "application/json"))
                    body = Array(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]))
                }
                let started = Date()
                let r = try h5.send(method, path, headers: headers, body: body)
                say("HTTP \(method.rawValue) \(path) → \(r.status) (\(Int(Date().timeIntervalSince(started) * 1000)) ms)")
                return r
            }

            // 1–2: the webview loads the H5 page.
            let page = try call(.GET, "/pilot-login")
            guard page.status == 200 else { throw Stop(reason: "login page answered \(page.status)") }

            // 5–6: a stored token (expired on purpose with the fault), otherwise log in.
            var token: String?
            if configuration.faults.contains(.expiredToken) {
                let now = Date().timeIntervalSince1970
                let stale = JWT(secret: configuration.jwtSecret).token(
                    claims: [
                        ("id", "be7c6c3d-afe9-4be4-b9eb-c55066c0914e"), ("username", configuration.username), ("user_type", "2"),
                        ("workspace_id", "e3dea0f5-37f2-4d79-ae58-490af3228069"),
                    ],
                    issuedAt: now - 86_400 - 3_600, age: 86_400)
                let r = try call(.GET, "/manage/api/v1/workspaces/current", token: stale)
                if r.status == 401 {
                    say("stored token expired (401): logging in again")
                } else {
                    say("stored token expired an hour ago, but the cloud accepted it (\(r.status))")
                    token = stale
                }
            }
            if token == nil {
                let login = try call(.POST, "/manage/api/v1/login", json: ["username": configuration.username, "password": configuration.password, "flag": 2])
                let data = login.json?["data"] as? [String: Any]
                guard login.status == 200, (login.json?["code"] as? NSNumber)?.intValue == 0, let t = data?["access_token"] as? String else {
                    throw Stop(reason: "login refused: HTTP \(login.status) \(login.json?["message"] ?? "")")
                }
                token = t
            }
            // 11, 13: workspace, then the user with the MQTT credentials.
            let ws = try call(.GET, "/manage/api/v1/workspaces/current", token: token)
            guard ws.status == 200, let workspace = (ws.json?["data"] as? [String: Any])?["workspace_id"] as? String else {
                throw Stop(reason: "workspaces/current answered \(ws.status)")
            }
            let me = try call(.GET, "/manage/api/v1/users/current", token: token)
            guard me.status == 200, let user = me.json?["data"] as? [String: Any], let addr = user["mqtt_addr"] as? String else {
                throw Stop(reason: "users/current answered \(me.status)")
            }
            guard let mqttURL = URL(string: addr), let brokerHost = mqttURL.host, let brokerPort = mqttURL.port else {
                throw Stop(reason: "mqtt_addr \(addr) is not scheme://host:port")
            }
            guard mqttURL.scheme == "tcp" || mqttURL.scheme == "mqtt" else {
                throw Stop(reason: "mqtt_addr \(addr): the lab pilot connects over TCP only (libmosquitto has no WebSocket client transport)")
            }

            // 14–18: the thing module connects and subscribes.
            var username = user["mqtt_username"] as? String, password = user["mqtt_password"] as? String
            if configuration.faults.contains(.anonymous) { (username, password) = (nil, nil) }
            if configuration.faults.contains(.wrongPassword) { password = (password ?? "") + "-wrong" }
            broker = (brokerHost, brokerPort, username, password)
            do {
                try connect()
            } catch is LinkLost where shared {
                try reconnect(resend: false)
            }

            // 19–20: update_topo, re-sent while unanswered.
            let noStatus = configuration.faults.contains(.noStatus)
            if noStatus {
                say("fault no-status: not publishing update_topo")
            } else {
                try withLink(resend: false) { try publishStatus($0, subDevices: topology) }
            }
            outcome.online = true

            // 25: Pilot-native topology request.
            let topo = try call(
                .GET, "/manage/api/v1/workspaces/\(workspace)/devices/topologies",
                token: configuration.faults.contains(.missingToken) ? nil : token)
            if topo.status != 200 { say("topology answered \(topo.status)") }

            // 21: osd while online.
            let until = Date().addingTimeInterval(configuration.online)
            var round = 0
            while Date() < until {
                try withLink(resend: !noStatus) { c in
                    for (sn, data) in [
                        (rc, ["capacity_percent": 87, "latitude": 22.579, "longitude": 113.937, "height": 34.1] as [String: Any]),
                        (
                            aircraft,
                            [
                                "mode_code": 0, "latitude": 22.5791, "longitude": 113.9372, "height": 120.5 + Double(round),
                                "battery": ["capacity_percent": 92 - round % 50],
                            ] as [String: Any]
                        ),
                    ]
                    where sn == rc || configuration.aircraft {
                        try publish(c, "thing/product/\(sn)/osd", LabPilot.envelope(gateway: rc, method: nil, data: data).payload, qos: 0)
                    }
                }
                round += 1
                let next = min(until, Date().addingTimeInterval(configuration.osdInterval))
                try withLink(resend: !noStatus) { c in if c.waitForLinkLoss(until: next) { throw LinkLost() } }
            }

            // 1.3: offline.
            switch configuration.offline {
            case .active:
                try withLink(resend: false) { c in
                    guard c.isConnected else { throw LinkLost() }
                    if !noStatus { try publishStatus(c, subDevices: []) }
                }
                client?.close(dropLink: false)
                say("DISCONNECT (aircraft offline, then exit)")
            case .exit:
                try withLink(resend: false) { c in guard c.isConnected else { throw LinkLost() } }
                client?.close(dropLink: false)
                say("DISCONNECT (exit platform)")
            case .passive:
                client?.close(dropLink: true)
                say("link dropped without DISCONNECT (passive offline)")
            }
            client = nil
            h5.close()
            http = nil
        }

        /// A new MQTT connection (new client, new TCP connection) as `clientID`, then the SUBSCRIBE. A refused
        /// CONNECT is retried `connectRetries` times every `retryInterval` seconds, each on a new TCP connection
        /// with the same client id and credentials, as client libraries do.
        func connect() throws {
            let attempts = 1 + max(0, configuration.connectRetries)
            for attempt in 1...attempts {
                let c = try MQTTClient(
                    clientID: clientID, version: configuration.version, username: broker.username, password: broker.password,
                    reconnect: false)
                client = c
                let code = try c.connect(host: broker.host, port: broker.port, keepAlive: configuration.keepAlive, bindTo: source)
                if code == 0 {
                    say(
                        "MQTT connected to \(broker.host):\(broker.port)\(source.map { " from \($0)" } ?? "") as \(clientID) (MQTT \(configuration.version.rawValue)\(broker.username.map { ", user \($0)" } ?? ", anonymous"))"
                    )
                    do {
                        try c.subscribe(
                            [
                                "sys/product/\(rc)/status_reply", "thing/product/\(rc)/services", "thing/product/\(rc)/events_reply",
                                "thing/product/\(rc)/requests_reply", "thing/product/\(rc)/property/set", "thing/product/\(rc)/drc/down",
                            ], qos: 1)
                    } catch  where !c.isConnected {
                        throw LinkLost()
                    }
                    return
                }
                outcome.refusals += 1
                c.close(dropLink: false)
                client = nil
                if attempt == attempts {
                    say(
                        "MQTT CONNECT to \(broker.host):\(broker.port) refused (CONNACK \(code))\(attempts > 1 ? ", attempt \(attempt) of \(attempts): giving up" : "")"
                    )
                    throw Stop(reason: attempts > 1 ? "MQTT CONNECT refused \(attempts) times (\(code))" : "MQTT CONNECT refused (\(code))")
                }
                say(
                    "MQTT CONNECT to \(broker.host):\(broker.port) refused (CONNACK \(code)), attempt \(attempt) of \(attempts): retrying in \(configuration.retryInterval) s"
                )
                Thread.sleep(forTimeInterval: configuration.retryInterval)
            }
        }

        /// Runs `body` on the MQTT connection. With the shared-client-id fault a connection the broker closed
        /// (another connection took the client id over) does not end the script: about a second later the device
        /// connects again (new TCP connection, same client id), subscribes, re-sends update_topo (`resend`) and runs
        /// `body` again, as MQTT clients and Pilot do. Otherwise the lost connection fails the run.
        func withLink(resend: Bool, _ body: (MQTTClient) throws -> Void) throws {
            while true {
                guard let c = client else { throw LinkLost() }
                do {
                    try body(c)
                    return
                } catch is LinkLost where shared {
                    try reconnect(resend: resend)
                }
            }
        }

        /// Counts the takeover, waits `reconnectDelay`, and connects again until a connection holds long enough to
        /// subscribe (and to get update_topo answered with `resend`).
        func reconnect(resend: Bool) throws {
            while true {
                outcome.takeovers += 1
                say(
                    "the broker closed the connection (takeover \(outcome.takeovers): another connection uses client id \(clientID)); reconnecting in \(configuration.reconnectDelay) s"
                )
                client?.close(dropLink: false)  // the socket is closed already: nothing is sent
                client = nil
                Thread.sleep(forTimeInterval: configuration.reconnectDelay)
                do {
                    try connect()
                    if resend, let c = client { try publishStatus(c, subDevices: topology) }
                    return
                } catch is LinkLost {
                    continue
                }
            }
        }

        /// Publishes (counted); a connection found closed throws ``LinkLost``.
        @discardableResult
        func publish(_ c: MQTTClient, _ topic: String, _ payload: [UInt8], qos: Int) throws -> Int32 {
            guard c.isConnected else { throw LinkLost() }
            do {
                let mid = try c.publish(topic, payload, qos: qos)
                outcome.messages.published += 1
                return mid
            } catch  where !c.isConnected {
                throw LinkLost()
            }
        }

        func publishStatus(_ client: MQTTClient, subDevices: [[String: Any]]) throws {
            let topic = configuration.faults.contains(.wrongStatusTopic) ? "thing/product/\(rc)/status" : "sys/product/\(rc)/status"
            for attempt in 1...max(1, configuration.statusTries) {
                var data: [String: Any] = [
                    "domain": "2", "type": 119, "sub_type": 0, "device_secret": "d3v1c3-s3cr3t", "nonce": "n0nc3",
                    "thing_version": "1.1.2", "sub_devices": subDevices,
                ]
                if configuration.faults.contains(.invalidTopo) { data["thing_version"] = nil; data["device_secret"] = nil }
                let (payload, tid) = LabPilot.envelope(gateway: rc, method: "update_topo", data: data)
                try publish(client, topic, payload, qos: 1)
                say(
                    "update_topo on \(topic) (\(subDevices.isEmpty ? "no aircraft" : "aircraft \(subDevices.compactMap { $0["sn"] as? String }.joined(separator: ","))")), try \(attempt)"
                )
                let reply = client.waitForMessage(timeout: configuration.statusRetry) { m in
                    m.topic == "sys/product/\(rc)/status_reply"
                        && ((try? JSONSerialization.jsonObject(with: Data(m.payload))) as? [String: Any])?["tid"] as? String == tid
                }
                if let reply {
                    outcome.messages.received += 1
                    let result = (((try? JSONSerialization.jsonObject(with: Data(reply.payload))) as? [String: Any])?["data"] as? [String: Any])?["result"]
                    say("status_reply (result \(result ?? "none"))")
                    return
                }
                if !client.isConnected { throw LinkLost() }
            }
            throw Stop(reason: "no status_reply after \(configuration.statusTries) tries")
        }
    }

    /// A Cloud API message with a fresh tid and bid, and its tid.
    static func envelope(gateway: String, method: String?, data: [String: Any]) -> (payload: [UInt8], tid: String) {
        let tid = UUID().uuidString.lowercased()
        var m: [String: Any] = [
            "tid": tid, "bid": UUID().uuidString.lowercased(),
            "timestamp": Int64(Date().timeIntervalSince1970 * 1000), "gateway": gateway, "data": data,
        ]
        if let method { m["method"] = method }
        return (Array((try? JSONSerialization.data(withJSONObject: m, options: [.sortedKeys])) ?? Data()), tid)
    }
}

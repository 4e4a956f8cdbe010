import PilotTraceProtocols
import PilotTraceTestSupport
import PilotTraceWire

@testable import PilotTraceFlow

/// Builds a capture's worth of stream events by hand (connections, bytes, closes) and runs them through the
/// real StreamAnalyzer and SessionTracker: message sequences without I/O.
struct Scenario: ~Copyable {
    var analyzer = StreamAnalyzer()
    let tracker: SessionTracker
    let engine = DeviationEngine()
    var t = 1_700_000_000.0
    var next: UInt64 = 1
    var refs: Int64 = 0
    var infos: [ConnectionID: ConnectionInfo] = [:]
    var decoded: [MessageEvent] = []

    init(configuration: SessionTracker.Configuration = .init()) {
        tracker = SessionTracker(configuration: configuration)
    }

    var now: Timestamp { Timestamp(nanoseconds: Int64(t * 1e9)) }

    mutating func open(_ client: String, port: UInt16 = 40_000, server: UInt16, midstream: Bool = false) -> ConnectionID {
        let id = ConnectionID(rawValue: next)
        next += 1
        let info = ConnectionInfo(
            id: id, client: Endpoint(address: IPAddress(client)!, port: port),
            server: Endpoint(address: IPAddress("10.1.1.1")!, port: server),
            roleEvidence: midstream ? .portHeuristic : .syn, firstSeen: now)
        infos[id] = info
        feed(.opened(info))
        return id
    }

    mutating func send(_ id: ConnectionID, _ dir: Direction, _ bytes: [UInt8], after seconds: Double = 0.01) {
        t += seconds
        feed(.data(id, dir, bytes, now))
    }

    mutating func close(_ id: ConnectionID, after seconds: Double = 0.01, reason: CloseReason = .fin) {
        t += seconds
        let info = infos[id]!
        feed(.end(id, .toServer, now))
        feed(.end(id, .toClient, now))
        feed(
            .closed(
                ConnectionSummary(
                    info: info, lastSeen: now, synSeen: true, synAckSeen: true, handshakeAckSeen: true,
                    toServer: DirectionStats(), toClient: DirectionStats(), closeReason: reason)))
    }

    mutating func wait(_ seconds: Double) {
        t += seconds
        tracker.advance(to: now)
    }

    mutating func feed(_ e: StreamEvent) {
        var out: [MessageEvent] = []
        analyzer.consume(e, into: &out)
        for m in out {
            refs += 1
            let kind: MessageRef.Kind
            switch m {
            case .mqtt: kind = .mqtt
            case .http(_, .webSocket): kind = .websocket
            default: kind = .http
            }
            tracker.consume(m, ref: MessageRef(kind, refs))
            engine.consume(m, ref: MessageRef(kind, refs))
            decoded.append(m)
        }
    }

    mutating func finish(after seconds: Double = 0.5) -> [Session] {
        t += seconds
        return tracker.finish(at: now)
    }

    /// Finishes and returns the rule ids found, in time order.
    mutating func findings(after seconds: Double = 0.5) -> [Deviation] {
        let sessions = finish(after: seconds)
        return engine.finish(sessions: sessions, captureEnd: now)
    }

    // MARK: - Building blocks of the documented sequence

    static let rc = "5YSZL260021E9A"
    static let aircraft = "1581F5FHD232600D3B4E"
    static let token = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VybmFtZSI6InBpbG90In0.c2ln"

    static func request(_ method: String, _ path: String, token: String? = nil, json: String? = nil) -> [UInt8] {
        var s = "\(method) \(path) HTTP/1.1\r\nHost: cloud\r\n"
        if let token { s += "x-auth-token: \(token)\r\n" }
        if let json { s += "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)" } else { s += "\r\n" }
        return Array(s.utf8)
    }

    static func response(_ status: Int, json: String? = nil, html: String? = nil) -> [UInt8] {
        let body = json ?? html ?? ""
        let type = json != nil ? "application/json" : "text/html"
        return Array("HTTP/1.1 \(status) X\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
    }

    static func loginResponse(mqttUser: String = "pilot", mqttPassword: String = "pilot123", token: String = Scenario.token) -> String {
        #"{"code":0,"message":"success","data":{"user_id":"u1","username":"pilot","workspace_id":"w1","mqtt_username":"\#(mqttUser)","mqtt_password":"\#(mqttPassword)","mqtt_addr":"tcp://10.1.1.1:1883","access_token":"\#(token)"}}"#
    }

    /// The H5 login on one keep-alive connection: page, login, workspace, user.
    mutating func h5Login(
        from client: String, mqttUser: String = "pilot", mqttPassword: String = "pilot123", token: String = Scenario.token,
        loginPath: String = "/manage/api/v1/login"
    ) {
        let h = open(client, server: 6789)
        send(h, .toServer, Self.request("GET", "/pilot-login"))
        send(h, .toClient, Self.response(200, html: "<html></html>"))
        send(h, .toServer, Self.request("POST", loginPath, json: #"{"username":"pilot","password":"pilot123","flag":2}"#))
        send(h, .toClient, Self.response(200, json: Self.loginResponse(mqttUser: mqttUser, mqttPassword: mqttPassword, token: token)))
        send(h, .toServer, Self.request("GET", "/manage/api/v1/workspaces/current", token: token))
        send(
            h, .toClient,
            Self.response(
                200,
                json: #"{"code":0,"message":"success","data":{"workspace_id":"w1","workspace_name":"Test Group One","platform_name":"Cloud Api Platform"}}"#))
        close(h)
    }

    static func updateTopo(tid: String, aircraft: [String]) -> [UInt8] {
        let subs = aircraft.map { #"{"sn":"\#($0)","domain":"0","type":89,"sub_type":0,"index":"A","device_secret":"s","nonce":"n","thing_version":"1.1.2"}"# }
        return Array(
            #"{"tid":"\#(tid)","bid":"b-\#(tid)","method":"update_topo","timestamp":1700000000000,"data":{"domain":"2","type":119,"sub_type":0,"device_secret":"s","nonce":"n","thing_version":"1.1.2","sub_devices":[\#(subs.joined(separator: ","))]}}"#
                .utf8)
    }

    static func statusReply(tid: String, result: Int = 0) -> [UInt8] {
        Array(#"{"tid":"\#(tid)","bid":"b-\#(tid)","timestamp":1700000000100,"data":{"result":\#(result)}}"#.utf8)
    }

    /// Pilot 2's MQTT connection up to the first status exchange; returns the connection.
    mutating func deviceOnline(
        from client: String, sn: String = Scenario.rc, username: String? = "pilot", password: String? = "pilot123",
        keepAlive: UInt16 = 60, aircraft: [String] = [Scenario.aircraft], replyDelay: Double = 0.05
    ) -> ConnectionID {
        let m = open(client, port: 41_000, server: 1883)
        send(m, .toServer, MQTTWire.connect(clientID: sn, username: username, password: password, keepAlive: keepAlive))
        send(m, .toClient, MQTTWire.connAck())
        send(m, .toServer, MQTTWire.subscribe(id: 1, ["sys/product/\(sn)/status_reply", "thing/product/\(sn)/services"]))
        send(m, .toClient, MQTTWire.subAck(id: 1, count: 2))
        send(m, .toServer, MQTTWire.publish("sys/product/\(sn)/status", Self.updateTopo(tid: "t1-\(sn)", aircraft: aircraft)))
        send(m, .toClient, MQTTWire.publish("sys/product/\(sn)/status_reply", Self.statusReply(tid: "t1-\(sn)")), after: replyDelay)
        return m
    }

    /// The cloud backend's own connection: wildcard subscription, replies.
    mutating func cloudBackend() -> ConnectionID {
        let c = open("10.1.1.9", port: 42_000, server: 1883)
        send(c, .toServer, MQTTWire.connect(clientID: "cloud-backend", username: "cloud", password: "secret", keepAlive: 10))
        send(c, .toClient, MQTTWire.connAck())
        send(c, .toServer, MQTTWire.subscribe(id: 1, ["sys/product/+/status"]))
        send(c, .toClient, MQTTWire.subAck(id: 1, count: 1))
        return c
    }
}

extension Session {
    var steps: [String] { events.map(\.step.rawValue) }
    func first(_ step: Step) -> TimelineEvent? { events.first { $0.step == step } }
}

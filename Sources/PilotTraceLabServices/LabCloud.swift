import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PilotTraceClients
import PilotTraceWire

/// A reference cloud for Pilot 2: the demo's HTTP routes (protocol reference §2.2–2.3) with HS256 tokens and the
/// documented 401 behaviour, a mosquitto broker with a password file, and the cloud backend's MQTT client that
/// answers `update_topo` with `status_reply`. Fault switches break it in the ways the deviation rules name.
public final class LabCloud: @unchecked Sendable {
    public enum Fault: String, CaseIterable, Sendable {
        /// The backend ignores `update_topo` (Pilot 2 re-sends status; `status-reply-missing`).
        case noStatusReply = "no-status-reply"
        /// Replies carry a fresh tid instead of the request's (`status-reply-mismatch`).
        case wrongTid = "wrong-tid"
        /// Replies carry `data.result` 1.
        case nonzeroResult = "nonzero-result"
        /// Expired tokens are accepted on authenticated routes (`expired-token-accepted`).
        case acceptExpiredTokens = "accept-expired-tokens"
        /// The broker accepts a CONNECT without username (`mqtt-anonymous-login` becomes possible).
        case allowAnonymous = "allow-anonymous"
    }

    public struct Configuration: Sendable {
        public var httpHost = "127.0.0.1"
        /// 0: an ephemeral port.
        public var httpPort = 0
        /// An existing broker (host, port) instead of starting mosquitto; the backend then logs in with
        /// `backendUsername`/`backendPassword`.
        public var broker: (host: String, port: Int)?
        /// The address and port of the broker the cloud starts (port 0: ephemeral).
        public var brokerHost = "127.0.0.1"
        public var brokerPort = 0
        public var username = "pilot"
        public var password = "pilot123"
        public var mqttUsername = "pilot"
        public var mqttPassword = "pilot123"
        public var backendUsername = "cloud-backend"
        public var backendPassword = "cloud-\(UUID().uuidString.prefix(8).lowercased())"
        public var workspaceID = "e3dea0f5-37f2-4d79-ae58-490af3228069"
        public var workspaceName = "Test Group One"
        public var platformName = "Cloud Api Platform"
        public var userID = "be7c6c3d-afe9-4be4-b9eb-c55066c0914e"
        public var jwtSecret = "CloudApiSample"
        /// Token lifetime in seconds (the demo's `jwt.age`).
        public var tokenAge: Double = 86_400
        public var faults: Set<Fault> = []
        /// Seconds the backend waits before each `status_reply`.
        public var replyDelay: Double = 0
        /// Seconds without a message from a gateway before the cloud counts it offline (§1.3).
        public var offlineGrace: Double = 30
        /// A file to append one JSON line per HTTP request to: method, path, status, and the SHA-256 fingerprints
        /// (first 16 hex digits) of the token it carried and of the token it issued — never the tokens.
        public var requestLog: String?
        public init() {}
    }

    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: String?
        public var headers: [(String, String)]
        public var body: [UInt8]
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name }?.1 }
    }

    public struct Response: Sendable {
        public var status: Int
        public var contentType: String?
        public var body: [UInt8]
        static func json(_ status: Int = 200, _ object: Any) -> Response {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return Response(status: status, contentType: "application/json;charset=UTF-8", body: Array(data))
        }
        static func envelope(_ data: Any, code: Int = 0, message: String = "success") -> Response {
            json(200, ["code": code, "message": message, "data": data])
        }
    }

    public let configuration: Configuration
    public private(set) var httpPort = 0
    public private(set) var mqttHost = "127.0.0.1"
    public private(set) var mqttPort = 0
    public var mqttAddress: String { "tcp://\(mqttHost):\(mqttPort)" }
    public var httpURL: String { "http://\(configuration.httpHost.contains(":") ? "[\(configuration.httpHost)]" : configuration.httpHost):\(httpPort)" }
    let log: @Sendable (String) -> Void
    let jwt: JWT
    private var broker: MosquittoBroker?
    private var backend: MQTTClient?
    private var group: MultiThreadedEventLoopGroup?
    private var channel: Channel?
    private let lock = NSLock()
    private var gateways: [String: Gateway] = [:]
    private var sweeper: DispatchSourceTimer?
    private var requestLogHandle: FileHandle?

    struct Gateway {
        var model: (domain: String, type: Int, subType: Int)
        var aircraft: [(sn: String, type: Int, subType: Int)]
        var lastSeen: Date
        var online: Bool
    }

    public init(configuration: Configuration, log: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.log = log
        jwt = JWT(secret: configuration.jwtSecret)
    }

    deinit { stop() }

    /// Starts the broker (unless one is given), the backend MQTT client, and the HTTP server.
    public func start() throws {
        if let path = configuration.requestLog {
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                throw MQTTClient.Failure(description: "cannot write the request log \(path)")
            }
            requestLogHandle = handle
        }
        if let external = configuration.broker {
            (mqttHost, mqttPort) = external
        } else {
            for pid in MosquittoBroker.reapOrphans() { log("broker: stopped mosquitto \(pid), left running by a lab cloud that was killed") }
            let b = try MosquittoBroker(
                host: configuration.brokerHost, port: configuration.brokerPort,
                users: [
                    (configuration.mqttUsername, configuration.mqttPassword),
                    (configuration.backendUsername, configuration.backendPassword),
                ],
                allowAnonymous: configuration.faults.contains(.allowAnonymous))
            broker = b
            (mqttHost, mqttPort) = (b.host, b.port)
            log("broker: mosquitto on \(b.host):\(b.port) (password file; anonymous \(configuration.faults.contains(.allowAnonymous) ? "allowed" : "refused"))")
        }
        let client = try MQTTClient(
            clientID: "cloud-backend-\(UUID().uuidString.prefix(4).lowercased())",
            username: configuration.backendUsername, password: configuration.backendPassword
        ) { [weak self] client, m in
            self?.backendReceived(client, m)
        }
        let code = try client.connect(host: mqttHost, port: mqttPort, keepAlive: 30)
        guard code == 0 else { throw MQTTClient.Failure(description: "the broker refused the cloud backend (CONNACK \(code))") }
        try client.subscribe(["sys/product/+/status", "thing/product/+/osd", "thing/product/+/state"], qos: 1)
        backend = client
        log("backend: MQTT client \(client.clientID) subscribed to sys/product/+/status, thing/product/+/osd, thing/product/+/state")

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(LabHTTPHandler(cloud: self))
                }
            }
        let channel = try bootstrap.bind(host: configuration.httpHost, port: configuration.httpPort).wait()
        self.channel = channel
        httpPort = channel.localAddress?.port ?? configuration.httpPort
        log(
            "http: \(httpURL)/pilot-login (login \(configuration.username)/\(String(repeating: "*", count: configuration.password.count)), tokens HS256, \(Int(configuration.tokenAge)) s)"
        )
        if !configuration.faults.isEmpty {
            log(
                "faults: \(configuration.faults.map(\.rawValue).sorted().joined(separator: ", "))\(configuration.replyDelay > 0 ? ", reply delay \(configuration.replyDelay) s" : "")"
            )
        } else if configuration.replyDelay > 0 {
            log("faults: reply delay \(configuration.replyDelay) s")
        }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [weak self] in self?.sweep() }
        timer.resume()
        sweeper = timer
    }

    /// Stops the HTTP server, the backend client and the broker it started; safe to call twice.
    public func stop() {
        sweeper?.cancel()
        sweeper = nil
        try? channel?.close().wait()
        channel = nil
        try? group?.syncShutdownGracefully()
        group = nil
        backend?.close(dropLink: false)
        backend = nil
        broker?.stop()
        broker = nil
        try? requestLogHandle?.close()
        requestLogHandle = nil
    }

    /// What the broker logged (empty for an external broker).
    public var brokerLog: String { broker?.logText ?? "" }

    // MARK: - MQTT backend

    func backendReceived(_ client: MQTTClient, _ m: MQTTClient.Message) {
        let parts = m.topic.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4 else { return }
        let sn = parts[2]
        let json = (try? JSONSerialization.jsonObject(with: Data(m.payload))) as? [String: Any]
        if parts[3] != "status" {
            lock.withLock {
                for (gw, g) in gateways where gw == sn || g.aircraft.contains(where: { $0.sn == sn }) { gateways[gw]?.lastSeen = Date() }
            }
            return
        }
        guard let json, json["method"] as? String == "update_topo", let data = json["data"] as? [String: Any] else {
            log("mqtt: \(sn): status without update_topo, ignored")
            return
        }
        let subDevices = (data["sub_devices"] as? [[String: Any]]) ?? []
        let aircraft = subDevices.compactMap { d -> (String, Int, Int)? in
            guard let s = d["sn"] as? String else { return nil }
            return (s, (d["type"] as? NSNumber)?.intValue ?? 0, (d["sub_type"] as? NSNumber)?.intValue ?? 0)
        }
        let model = ("\(data["domain"] ?? "2")", (data["type"] as? NSNumber)?.intValue ?? 0, (data["sub_type"] as? NSNumber)?.intValue ?? 0)
        let wasOnline = lock.withLock { () -> Bool in
            let was = gateways[sn]?.online ?? false
            gateways[sn] = Gateway(model: model, aircraft: aircraft, lastSeen: Date(), online: true)
            return was
        }
        log(
            "mqtt: \(sn): update_topo, \(aircraft.isEmpty ? "no aircraft" : "aircraft \(aircraft.map(\.0).joined(separator: ", "))")\(wasOnline ? "" : " (gateway online)")"
        )
        if configuration.faults.contains(.noStatusReply) {
            log("mqtt: \(sn): fault no-status-reply: not answering")
            return
        }
        let tid = configuration.faults.contains(.wrongTid) ? UUID().uuidString.lowercased() : (json["tid"] as? String ?? "")
        let reply: [String: Any] = [
            "tid": tid, "bid": json["bid"] as? String ?? "", "method": "update_topo",
            "timestamp": Int64(Date().timeIntervalSince1970 * 1000),
            "data": ["result": configuration.faults.contains(.nonzeroResult) ? 1 : 0],
        ]
        let payload = Array((try? JSONSerialization.data(withJSONObject: reply, options: [.sortedKeys])) ?? Data())
        let send: @Sendable () -> Void = { [log] in
            do {
                try client.publish(m.topic + "_reply", payload, qos: 1)
                log("mqtt: \(sn): status_reply sent")
            } catch {
                log("mqtt: \(sn): status_reply failed: \(error)")
            }
        }
        if configuration.replyDelay > 0 {
            DispatchQueue.global().asyncAfter(deadline: .now() + configuration.replyDelay, execute: send)
        } else {
            send()
        }
    }

    /// The demo's freshness rule: no message for the grace period → offline.
    func sweep() {
        let now = Date()
        let expired = lock.withLock { () -> [String] in
            let gone = gateways.filter { $0.value.online && now.timeIntervalSince($0.value.lastSeen) > configuration.offlineGrace }.map(\.key)
            for sn in gone { gateways[sn]?.online = false }
            return gone.sorted()
        }
        for sn in expired { log("mqtt: \(sn): nothing for \(Int(configuration.offlineGrace)) s, gateway offline") }
    }

    // MARK: - HTTP routes

    /// The first 16 hex digits of a token's SHA-256: enough to tell tokens apart, useless to replay one.
    public static func fingerprint(_ token: String) -> String {
        var h = SHA256()
        h.update(Array(token.utf8))
        return h.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Answers a request and, with `requestLog`, logs it with its tokens' fingerprints.
    func respondLogging(to r: Request) -> Response {
        let response = respond(to: r)
        if let handle = requestLogHandle {
            var line: [String: Any] = ["method": r.method, "path": r.path, "status": response.status]
            if let token = r.header("x-auth-token"), !token.isEmpty { line["token"] = Self.fingerprint(token) }
            if let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any],
                let issued = (json["data"] as? [String: Any])?["access_token"] as? String
            {
                line["issued"] = Self.fingerprint(issued)
            }
            if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes]) {
                lock.withLock { handle.write(data + Data("\n".utf8)) }
            }
        }
        return response
    }

    func respond(to r: Request) -> Response {
        let now = Date().timeIntervalSince1970
        switch (r.method, r.path) {
        case ("GET", "/pilot-login"), ("GET", "/"):
            return Response(status: 200, contentType: "text/html;charset=UTF-8", body: Array(Self.loginPage.utf8))
        case ("POST", "/manage/api/v1/login"):
            let body = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:]
            guard body["username"] as? String == configuration.username else {
                return .envelope("", code: 401, message: "invalid username")
            }
            guard body["password"] as? String == configuration.password else {
                return .envelope("", code: 401, message: "invalid password")
            }
            return .envelope(user(token: issueToken(now: now)))
        case ("POST", "/manage/api/v1/token/refresh"):
            // The refresh endpoint accepts expired tokens by design (§2.2).
            guard let token = r.header("x-auth-token"), !token.isEmpty else { return .json(401, ["code": -1, "message": "token is null"]) }
            switch jwt.check(token, now: now) {
            case .valid, .expired: return .envelope(user(token: issueToken(now: now)))
            case .invalid: return .json(401, ["code": -1, "message": "token is null"])
            }
        case (_, "/manage/api/v1/token/refresh"):
            return .json(405, ["code": -1, "message": "Request method '\(r.method)' not supported"])
        default:
            break
        }
        // Every other route needs a valid token: missing, invalid or expired → 401 with an empty body.
        guard let token = r.header("x-auth-token"), !token.isEmpty else { return Response(status: 401, contentType: nil, body: []) }
        switch jwt.check(token, now: now) {
        case .valid: break
        case .expired where configuration.faults.contains(.acceptExpiredTokens): break
        case .expired, .invalid: return Response(status: 401, contentType: nil, body: [])
        }
        let ws = configuration.workspaceID
        switch (r.method, r.path) {
        case ("GET", "/manage/api/v1/workspaces/current"):
            return .envelope([
                "id": 1, "workspace_id": ws, "workspace_name": configuration.workspaceName,
                "workspace_desc": "pilottrace lab cloud", "platform_name": configuration.platformName, "bind_code": "qwe",
            ])
        case ("GET", "/manage/api/v1/users/current"):
            return .envelope(user(token: nil))
        case ("GET", "/manage/api/v1/workspaces/\(ws)/devices/topologies"):
            return .envelope(["list": topologies()])
        case ("GET", _) where r.path.hasPrefix("/manage/api/v1/devices/\(ws)/devices/"):
            let sn = String(r.path.dropFirst("/manage/api/v1/devices/\(ws)/devices/".count))
            let online = lock.withLock { gateways[sn]?.online ?? gateways.values.contains { $0.online && $0.aircraft.contains { $0.sn == sn } } }
            return .envelope(["device_sn": sn, "device_name": sn, "nickname": sn, "workspace_id": ws, "status": online, "bound_status": true])
        default:
            return .json(404, ["code": -1, "message": "not found", "data": ""])
        }
    }

    func issueToken(now: Double) -> String {
        jwt.token(
            claims: [("id", configuration.userID), ("username", configuration.username), ("user_type", "2"), ("workspace_id", configuration.workspaceID)],
            issuedAt: now, age: configuration.tokenAge)
    }

    func user(token: String?) -> [String: Any] {
        var u: [String: Any] = [
            "user_id": configuration.userID, "username": configuration.username, "user_type": 2,
            "workspace_id": configuration.workspaceID, "mqtt_username": configuration.mqttUsername,
            "mqtt_password": configuration.mqttPassword, "mqtt_addr": mqttAddress,
        ]
        if let token { u["access_token"] = token }
        return u
    }

    func topologies() -> [[String: Any]] {
        lock.withLock {
            gateways.sorted { $0.key < $1.key }.map { sn, g in
                let parent: [String: Any] = [
                    "sn": sn, "device_callsign": "RC \(sn.suffix(4))", "online_status": g.online, "user_id": configuration.userID,
                    "user_callsign": configuration.username,
                    "icon_urls": [
                        "normal_icon_url": "resource://pilot/drawable/tsa_rc_normal", "selected_icon_url": "resource://pilot/drawable/tsa_rc_select",
                    ],
                    "device_model": [
                        "key": "\(g.model.domain)-\(g.model.type)-\(g.model.subType)", "domain": g.model.domain,
                        "type": "\(g.model.type)", "sub_type": "\(g.model.subType)",
                    ],
                ]
                let hosts: [[String: Any]] =
                    g.online
                    ? g.aircraft.map { a in
                        [
                            "sn": a.sn, "device_callsign": "Aircraft \(a.sn.suffix(4))", "online_status": true, "user_id": configuration.userID,
                            "user_callsign": configuration.username,
                            "icon_urls": [
                                "normal_icon_url": "resource://pilot/drawable/tsa_aircraft_others_normal",
                                "selected_icon_url": "resource://pilot/drawable/tsa_aircraft_others_select",
                            ],
                            "device_model": ["key": "0-\(a.type)-\(a.subType)", "domain": "0", "type": "\(a.type)", "sub_type": "\(a.subType)"],
                        ]
                    } : []
                return ["hosts": hosts, "parents": [parent]]
            }
        }
    }

    /// The H5 login page (a stand-in for the demo's Vue app: the lab pilot fetches it as Pilot 2's webview does).
    static let loginPage = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Cloud Api Platform</title></head>
        <body><div id="app">pilottrace lab cloud: Pilot 2 login</div>
        <script>
        // Like the demo H5: verify the license before any other JSBridge call, then log in.
        if (window.djiBridge) {
          window.djiBridge.platformVerifyLicense("lab-app-id", "lab-app-key", "lab-license");
          window.djiBridge.platformSetInformation("Cloud Api Platform", "", "");
        }
        </script></body></html>
        """
}

/// One HTTP/1.1 connection of the lab cloud: requests in, the route's response out (keep-alive as asked).
final class LabHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let cloud: LabCloud
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var tooLarge = false

    init(cloud: LabCloud) { self.cloud = cloud }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.removeAll(keepingCapacity: true)
            tooLarge = false
        case .body(let b):
            if body.count + b.readableBytes > 1 << 20 { tooLarge = true } else { body += b.readableBytesView }
        case .end:
            guard let head else { return }
            self.head = nil
            let (path, query) = Self.split(head.uri)
            let response =
                tooLarge
                ? LabCloud.Response.json(413, ["code": -1, "message": "request body over 1 MiB"])
                : cloud.respondLogging(
                    to: .init(
                        method: head.method.rawValue, path: path, query: query,
                        headers: head.headers.map { ($0.name, $0.value) }, body: body))
            var headers = HTTPHeaders()
            if let type = response.contentType { headers.add(name: "Content-Type", value: type) }
            headers.add(name: "Content-Length", value: String(response.body.count))
            let keepAlive = head.isKeepAlive
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            cloud.log("http: \(head.method.rawValue) \(path) → \(response.status)")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .init(statusCode: response.status), headers: headers))),
                promise: nil)
            if !response.body.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            if !keepAlive { context.close(promise: nil) }
        }
    }

    static func split(_ uri: String) -> (String, String?) {
        guard let q = uri.firstIndex(of: "?") else { return (uri, nil) }
        return (String(uri[..<q]), String(uri[uri.index(after: q)...]))
    }
}

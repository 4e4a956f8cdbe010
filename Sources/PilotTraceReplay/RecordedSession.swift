/// A stored Pilot 2 session as the replay needs it: the HTTP exchanges and the device's MQTT packets, in capture
/// order, with what the cloud answered. Built from the store by the I/O shell; the replay core only reads it.
public struct RecordedSession: Sendable {
    public var id: Int64
    public var gatewaySN: String?
    /// The session's first event (capture time, seconds since the epoch): step offsets count from here.
    public var start: Double
    public var exchanges: [RecordedExchange]
    public var mqtt: [RecordedMQTTPacket]
    /// The rule ids of the original's findings (a replay's finding not among them is a regression).
    public var findings: [String]

    public init(
        id: Int64, gatewaySN: String?, start: Double, exchanges: [RecordedExchange], mqtt: [RecordedMQTTPacket],
        findings: [String]
    ) {
        self.id = id
        self.gatewaySN = gatewaySN
        self.start = start
        self.exchanges = exchanges
        self.mqtt = mqtt
        self.findings = findings
    }
}

/// One recorded HTTP request and its response (either may be missing from the capture).
public struct RecordedExchange: Sendable {
    /// The connection it travelled on (the stored flow id): the replay keeps the same grouping on keep-alive
    /// connections.
    public var connection: Int64
    public var method: String
    /// The request target as sent (path and query, secrets included).
    public var target: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var requestTime: Double
    public var status: Int?
    public var responseBody: [UInt8]
    public var responseTime: Double?

    public init(
        connection: Int64, method: String, target: String, headers: [(String, String)], body: [UInt8], requestTime: Double,
        status: Int?, responseBody: [UInt8], responseTime: Double?
    ) {
        self.connection = connection
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.requestTime = requestTime
        self.status = status
        self.responseBody = responseBody
        self.responseTime = responseTime
    }

    /// The recorded response time, when both ends were captured.
    public var latency: Double? { responseTime.map { $0 - requestTime } }
}

/// One recorded MQTT control packet of the device's connection(s).
public struct RecordedMQTTPacket: Sendable {
    public enum Direction: String, Sendable { case toServer = "to-server", toClient = "to-client" }

    public var connection: Int64
    public var direction: Direction
    public var time: Double
    /// `CONNECT`, `CONNACK`, `SUBSCRIBE`, `PUBLISH`, `DISCONNECT`, …
    public var type: String
    public var version: String
    public var overWebSocket: Bool
    public var topic: String?
    public var payload: [UInt8]?
    public var qos: Int?
    public var retain: Bool
    public var clientID: String?
    public var username: String?
    public var password: [UInt8]?
    public var keepAlive: Int?
    public var returnCode: Int?
    /// SUBSCRIBE: the topic filters and their QoS.
    public var filters: [(String, Int)]

    public init(
        connection: Int64, direction: Direction, time: Double, type: String, version: String = "3.1.1", overWebSocket: Bool = false,
        topic: String? = nil, payload: [UInt8]? = nil, qos: Int? = nil, retain: Bool = false, clientID: String? = nil,
        username: String? = nil, password: [UInt8]? = nil, keepAlive: Int? = nil, returnCode: Int? = nil,
        filters: [(String, Int)] = []
    ) {
        self.connection = connection
        self.direction = direction
        self.time = time
        self.type = type
        self.version = version
        self.overWebSocket = overWebSocket
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.clientID = clientID
        self.username = username
        self.password = password
        self.keepAlive = keepAlive
        self.returnCode = returnCode
        self.filters = filters
    }

    /// The topic filters of a stored SUBSCRIBE summary (`filters=["a/b" qos=1, …]`): the store keeps no raw packet.
    public static func filters(fromSummary summary: String) -> [(String, Int)] {
        guard let start = summary.firstRange(of: "filters=[") else { return [] }
        var out: [(String, Int)] = []
        var rest = Substring(summary[start.upperBound...])
        while let q = rest.firstIndex(of: "\"") {
            var i = rest.index(after: q)
            var topic = ""
            var escaped = false
            while i < rest.endIndex {
                let c = rest[i]
                if escaped { topic.append(c); escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { break } else { topic.append(c) }
                i = rest.index(after: i)
            }
            guard i < rest.endIndex else { break }
            rest = rest[rest.index(after: i)...]
            var qos = 0
            if rest.hasPrefix(" qos=") {
                let digits = rest.dropFirst(5).prefix { $0.isNumber }
                qos = Int(digits) ?? 0
            }
            out.append((topic, qos))
        }
        return out
    }
}

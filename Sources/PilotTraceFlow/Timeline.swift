import PilotTraceProtocols
import PilotTraceWire

/// The six phases of the documented sequence (protocol reference §1).
public enum Phase: String, Hashable, Sendable, CaseIterable, Codable {
    case license, token
    case cloudModule = "cloud-module"
    case connect, status, offline
}

/// The step names of the timeline; these names are a contract (scripts depend on them).
public enum Step: String, Hashable, Sendable, CaseIterable, Codable {
    // license
    case h5Page = "h5-page", licenseVerified = "license-verified"
    // token
    case tokenRefresh = "token-refresh", tokenRejected = "token-rejected", login, loginFailed = "login-failed"
    // cloud-module
    case mqttCredentials = "mqtt-credentials", workspaceInfo = "workspace-info"
    // connect
    case mqttConnect = "mqtt-connect", mqttConnack = "mqtt-connack", mqttSubscribe = "mqtt-subscribe"
    /// The device's MQTT connection was already open when the capture started (its CONNECT was not captured).
    case alreadyConnected = "already-connected"
    // status
    case updateTopo = "update-topo", statusReply = "status-reply", topologyFetch = "topology-fetch"
    // offline
    case deviceOffline = "device-offline", mqttDisconnect = "mqtt-disconnect", linkLost = "link-lost", reconnect
    case offlineConfirmed = "offline-confirmed"
    // JSBridge calls the proxy's injected script reported (proxy mode only): license-verified above, and
    case tokenRead = "token-read", tokenSet = "token-set"
    case moduleLoad = "module-load", workspaceSet = "workspace-set", platformInfoSet = "platform-info-set"
    case connectCallback = "connect-callback", connectState = "connect-state"
    case platformStop = "platform-stop"

    public var phase: Phase {
        switch self {
        case .h5Page, .licenseVerified: .license
        case .tokenRefresh, .tokenRejected, .login, .loginFailed, .tokenRead, .tokenSet: .token
        case .mqttCredentials, .workspaceInfo, .moduleLoad, .workspaceSet, .platformInfoSet: .cloudModule
        case .mqttConnect, .mqttConnack, .mqttSubscribe, .alreadyConnected, .connectCallback, .connectState: .connect
        case .updateTopo, .statusReply, .topologyFetch: .status
        case .deviceOffline, .mqttDisconnect, .linkLost, .reconnect, .offlineConfirmed, .platformStop: .offline
        }
    }

    /// Whether the step comes from a JSBridge call (proxy mode with the bridge script).
    public var isBridge: Bool {
        switch self {
        case .licenseVerified, .tokenRead, .tokenSet, .moduleLoad, .workspaceSet, .platformInfoSet, .connectCallback, .connectState, .platformStop: true
        default: false
        }
    }
}

/// Which stored message an event comes from: its kind and a number the caller assigned (the store's row id), and
/// the capture frames that carried it (for an HTTP exchange, from the request's first byte to the response's last).
public struct MessageRef: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable { case http, mqtt, websocket }
    public var kind: Kind
    public var id: Int64
    public var frames: FrameSpan
    public init(_ kind: Kind, _ id: Int64, frames: FrameSpan = .unknown) {
        self.kind = kind
        self.id = id
        self.frames = frames
    }
}

/// One step of a session's timeline.
public struct TimelineEvent: Hashable, Sendable {
    public var time: Timestamp
    public var step: Step
    public var ok: Bool
    /// Seconds from the request to its answer, where the step has one (CONNECT → CONNACK, status → reply, …).
    public var latency: Double?
    public var connection: ConnectionID?
    public var message: MessageRef?
    /// A small JSON object with the step's facts (no secrets).
    public var detail: JSONValue
    /// SHA-256 of the MQTT password a cloud issued (`mqtt-credentials`) or a device presented (`mqtt-connect`): how
    /// the store joins the HTTP side of a login recorded at one capture point to the device's connection recorded at
    /// another. A secret's digest: stored, never shown.
    public var credential: [UInt8]?

    public var phase: Phase { step.phase }

    public init(
        time: Timestamp, step: Step, ok: Bool, latency: Double? = nil, connection: ConnectionID? = nil,
        message: MessageRef? = nil, detail: JSONValue = .object([]), credential: [UInt8]? = nil
    ) {
        self.credential = credential
        self.time = time
        self.step = step
        self.ok = ok
        self.latency = latency
        self.connection = connection
        self.message = message
        self.detail = detail
    }
}

/// Where a session ended up.
public enum SessionState: String, Hashable, Sendable, Codable {
    /// The status exchange succeeded and the device was still connected when the capture ended.
    case online
    /// It went offline: a clean DISCONNECT, or a lost link not restored within the grace period.
    case offline
    /// It never came online: login failed, the CONNECT was refused, or `status` went unanswered.
    case failed
    /// The capture does not tell: it ended before the outcome (or began after it).
    case incomplete
}

/// The role of an MQTT connection on the broker.
public enum MQTTRole: String, Hashable, Sendable, Codable {
    /// Pilot 2 (a gateway): publishes uplink topics for its SN.
    case device
    /// The cloud backend: subscribes with wildcards, publishes replies and downlink topics.
    case cloud
    /// Anything else on the same broker.
    case other
}

/// One Pilot 2 device's cycle from H5 login to offline.
public struct Session: Hashable, Sendable {
    /// Numbered from 1 in the order sessions start.
    public var number: Int
    public var gatewaySN: String?
    public var gatewayModel: DeviceModel?
    public var state: SessionState
    public var start: Timestamp
    public var end: Timestamp
    /// The device's IP address (MQTT or H5 client).
    public var client: String?
    public var mqttClientID: String?
    public var mqttUsername: String?
    /// Aircraft SNs listed in `sub_devices`, in the order first seen.
    public var aircraft: [String]
    /// Events in time order.
    public var events: [TimelineEvent]
    public var connections: [ConnectionID]
    /// The order the tracker created the session in (from 0); unlike `number` it never changes as sessions finish,
    /// so a live view can keep a session's identity across snapshots.
    public var serial: Int = 0
    /// The Cloud API request/reply exchanges of this gateway (status, services, events, requests, property/set).
    public var exchanges: [RequestReply] = []
    /// Set on a summary of the session (a report's, once the session is stored): how many events it has, while
    /// `events` keeps only the first that failed.
    public var eventCount: Int? = nil

    /// The session as a report keeps it once it is stored: no exchanges, events reduced to the first failure
    /// (its detail dropped) and their number in ``eventCount``.
    public var summary: Session {
        var s = self
        s.eventCount = eventCount ?? events.count
        s.events =
            events.first { !$0.ok }.map { e in
                var e = e
                e.detail = .object([])
                return [e]
            } ?? []
        s.exchanges = []
        return s
    }

    /// Per kind: requests, answered, unanswered, non-zero results, plus replies that matched nothing.
    public func exchangeSummary(unmatchedReplies: Int = 0) -> JSONValue {
        var members: [(String, JSONValue)] = []
        for kind in RequestReply.Kind.allCases {
            let of = exchanges.filter { $0.kind == kind }
            guard !of.isEmpty else { continue }
            let latencies = of.compactMap(\.latency)
            members.append(
                (
                    kind.rawValue,
                    .members([
                        ("requests", .int(of.count)), ("answered", .int(of.filter(\.answered).count)),
                        ("unanswered", .int(of.filter { !$0.answered }.count)),
                        ("failed_results", .int(of.filter { ($0.result ?? 0) != 0 }.count)),
                        ("max_latency", latencies.max().map { .number(JSONNumber(($0 * 1e6).rounded() / 1e6)) }),
                    ])
                ))
        }
        return .object(members)
    }
}

extension JSONValue {
    /// An object from members, leaving out nil values. Its storage is exactly as large as the members: timelines hold
    /// these details for every open session (`compactMap` grows by doubling and may leave half of it unused).
    static func members(_ items: [(String, JSONValue?)]) -> JSONValue {
        var kept: [(String, JSONValue)] = []
        kept.reserveCapacity(items.reduce(0) { $1.1 == nil ? $0 : $0 + 1 })
        for (k, v) in items { if let v { kept.append((k, v)) } }
        return .object(kept)
    }

    static func text(_ s: String?) -> JSONValue? { s.map { .string($0) } }
    static func int(_ i: Int?) -> JSONValue? { i.map { .number(JSONNumber($0)) } }
    static func bool(_ b: Bool?) -> JSONValue? { b.map { .bool($0) } }
    static func strings(_ a: [String]) -> JSONValue { .array(a.map { .string($0) }) }

    /// This object with `items` set: a member of the same name is replaced, a new one appended; nil values are left out.
    func setting(_ items: [(String, JSONValue?)]) -> JSONValue {
        guard case .object(var members) = self else { return self }
        for (k, v) in items {
            guard let v else { continue }
            if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
        }
        return .object(members)
    }
}

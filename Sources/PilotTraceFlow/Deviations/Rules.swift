/// How much a deviation matters.
public enum Severity: String, Hashable, Sendable, CaseIterable, Codable, Comparable {
    /// Worth knowing.
    case info
    /// Risky or non-conforming.
    case warning
    /// Breaks the flow.
    case error

    public static func < (l: Severity, r: Severity) -> Bool { l.rank < r.rank }
    var rank: Int { self == .info ? 0 : self == .warning ? 1 : 2 }
}

/// A documented rule a deviation breaks: stable id, severity, title, explanation and basis.
public struct Rule: Hashable, Sendable {
    public var id: String
    public var severity: Severity
    public var title: String
    public var explanation: String
    /// Where the rule comes from: a section of the protocol reference and the source it cites.
    public var basis: String
}

/// The rule catalogue. Ids are stable: scripts, CI gates and stored findings refer to them.
public enum Rules {
    public static let statusNotSent = Rule(
        id: "status-not-sent", severity: .error, title: "No update_topo after the CONNECT",
        explanation:
            "Pilot 2 publishes `update_topo` on `sys/product/{sn}/status` immediately after a successful CONNECT. None arrived within the reply deadline on this accepted device connection, so the cloud never learns the topology and the device never comes online.",
        basis: "Protocol reference §1.1 step 19, §6 ordering 3; DJI Cloud API docs, device topology (status) [S3]")
    public static let statusReplyMissing = Rule(
        id: "status-reply-missing", severity: .error, title: "update_topo got no status_reply",
        explanation:
            "The cloud must answer every `status` with `status_reply` (same tid and bid) on `sys/product/{sn}/status_reply`. Without it Pilot 2 keeps re-sending `status` and never shows the device online.",
        basis: "Protocol reference §4.4 rule 2 and §1.1 step 20; docs [S3]")
    public static let statusReplyMismatch = Rule(
        id: "status-reply-mismatch", severity: .error, title: "status_reply does not answer the status",
        explanation:
            "A `status_reply` must repeat the request's `tid` and `bid` and carry `data.result` 0. This one matches no pending `status`, or its result is missing or non-zero.",
        basis: "Protocol reference §4.2 (tid/bid), §4.4 status_reply; docs [S5], demo [S8]")
    public static let statusRetransmitted = Rule(
        id: "status-retransmitted", severity: .warning, title: "status re-sent while unanswered",
        explanation:
            "Pilot 2 published `status` again while the previous one had no reply: the documented symptom of a cloud that does not answer `status_reply`.",
        basis: "Protocol reference §4.4 rule 2, §7 R04; docs [S3]")
    public static let statusTopicWrong = Rule(
        id: "status-topic-wrong", severity: .error, title: "update_topo on thing/product/{sn}/status",
        explanation:
            "`update_topo` belongs on `sys/product/{sn}/status`. `thing/product/{sn}/status` is a typo on some RC documentation pages; the cloud (and the demo) subscribe to `sys/product/+/status` and never see it.",
        basis: "Protocol reference §4.3, §6 common mistakes, §7 R01; docs [S5], demo [S8]")
    public static let updateTopoInvalid = Rule(
        id: "update-topo-invalid", severity: .error, title: "update_topo malformed or incomplete",
        explanation:
            "`update_topo` must be a JSON envelope with tid, bid, timestamp, method and data holding type, sub_type, device_secret, nonce, thing_version (or v1.0's version) and sub_devices (each with sn, type, sub_type, index, device_secret, nonce). Either documented dialect is accepted.",
        basis: "Protocol reference §4.4, §8 field drift, §7 R07")
    public static let mqttAnonymousLogin = Rule(
        id: "mqtt-anonymous-login", severity: .warning, title: "Device connected without a username",
        explanation: "The documentation asks the cloud to configure MQTT accounts and disable anonymous login; this device CONNECT carried no username.",
        basis: "Protocol reference §4.1; docs [S1]")
    public static let mqttConnectRefused = Rule(
        id: "mqtt-connect-refused", severity: .error, title: "The broker refused the CONNECT",
        explanation:
            "The CONNACK carried a non-success return (3.1.1) or reason (5.0) code, typically bad credentials or not authorised. Pilot 2 reports the failure to the H5 page and stays offline.",
        basis: "Protocol reference §1.1 step 16, §7 R23; MQTT 3.1.1 §3.2.2.3, MQTT 5.0 §3.2.2.2")
    public static let mqttCredentialsMismatch = Rule(
        id: "mqtt-credentials-mismatch", severity: .warning, title: "CONNECT credentials differ from those handed out",
        explanation:
            "The cloud handed this client MQTT credentials over HTTP (`mqtt_username`/`mqtt_password`), but the CONNECT used others: the username, the password (compared by digest, never shown) or both differ, so the broker refuses the login or lets in an account the cloud did not mean.",
        basis: "Protocol reference §2.2 login/users/current, §7 R22; demo [S7][S10]")
    public static let mqttClientIDTakeover = Rule(
        id: "mqtt-client-id-takeover", severity: .warning, title: "Two devices connect with the same MQTT client id",
        explanation:
            "Different devices (other gateway serials, client addresses or usernames) connected with one MQTT client id. A broker allows one connection per client id and closes the older one each time the other connects, so the devices knock each other offline in turn: a connect/close ping-pong. Give every device its own client id (the RC serial is the usual choice).",
        basis:
            "MQTT 3.1.1 §3.1.4 (step 2: the server disconnects the existing client with the same ClientId), MQTT 5.0 §3.1.4; protocol reference §4.1 client id")
    public static let tokenMissing = Rule(
        id: "token-missing", severity: .error, title: "Authenticated API call without x-auth-token",
        explanation:
            "Every request to the cloud's API paths except login, token refresh and the H5 page must carry `X-Auth-Token`; the demo answers 401 without it.",
        basis: "Protocol reference §2.1 headers, §7 R16; docs [S2][S9]")
    public static let expiredTokenAccepted = Rule(
        id: "expired-token-accepted", severity: .warning, title: "Expired token accepted",
        explanation:
            "The request's JWT had expired (`exp` before the capture time) yet the cloud answered 2xx. Only token refresh is meant to accept an expired token.",
        basis: "Protocol reference §2.2 token and expiry, §7 R17; demo [S7]")
    public static let cleartextCredentials = Rule(
        id: "cleartext-credentials", severity: .info, title: "Credentials sent without TLS",
        explanation:
            "Login credentials, tokens or the MQTT password crossed the network in clear text (this capture could read them). The docs describe MQTT over TLS and HTTPS access links.",
        basis: "Protocol reference §4.1 transport, §7 R27; docs [S1][S9]")
    public static let captureIncomplete = Rule(
        id: "capture-incomplete", severity: .info, title: "The evidence is partial",
        explanation:
            "The session's flows have TCP gaps, the capture starts after the session began, or encrypted flows were present: the verdict may be partial.",
        basis: "pilottrace reassembly and detection (docs/flows.md, docs/messages.md)")
    // MQTT conformance
    public static let mqttPublishUnacknowledged = Rule(
        id: "mqtt-publish-unacknowledged", severity: .warning, title: "QoS 1/2 PUBLISH never acknowledged",
        explanation: "A QoS 1 PUBLISH needs a PUBACK and a QoS 2 PUBLISH a PUBREC with the same packet id; none came before the connection ended.",
        basis: "MQTT 3.1.1 §4.3.2–4.3.3, MQTT 5.0 §4.3.2–4.3.3")
    public static let mqttAckUnknownID = Rule(
        id: "mqtt-ack-unknown-id", severity: .warning, title: "Acknowledgement for an unknown packet id",
        explanation: "A PUBACK, PUBREC, PUBCOMP, SUBACK or UNSUBACK named a packet id with no request in flight in the other direction.",
        basis: "MQTT 3.1.1 §2.3.1, §4.3")
    public static let mqttPacketIDReused = Rule(
        id: "mqtt-packet-id-reused", severity: .warning, title: "Packet id reused while in flight",
        explanation: "A new QoS>0 PUBLISH, SUBSCRIBE or UNSUBSCRIBE used a packet id whose previous exchange was not finished.",
        basis: "MQTT 3.1.1 §2.3.1")
    public static let mqttTrafficBeforeConnack = Rule(
        id: "mqtt-traffic-before-connack", severity: .warning, title: "Packets before the CONNACK",
        explanation:
            "The server sent packets other than CONNACK first, or the client sent packets after CONNECT before any CONNACK while the CONNECT was later refused.",
        basis: "MQTT 3.1.1 §3.2: the first packet from the server must be CONNACK")
    public static let mqttSecondConnect = Rule(
        id: "mqtt-second-connect", severity: .error, title: "Second CONNECT on one connection",
        explanation: "A client may send CONNECT only once per network connection; the server must treat a second one as a protocol violation and disconnect.",
        basis: "MQTT 3.1.1 §3.1.0-2")
    public static let mqttKeepAliveExceeded = Rule(
        id: "mqtt-keepalive-exceeded", severity: .warning, title: "Keep-alive exceeded",
        explanation:
            "The device sent nothing for more than 1.5 × its keep-alive; the broker should have closed the link (passive offline, then the 30 s grace).",
        basis: "MQTT 3.1.1 §3.1.2.10; protocol reference §1.3")
    // HTTP
    public static let httpEnvelopeMissing = Rule(
        id: "http-envelope-missing", severity: .warning, title: "JSON response without {code, message, data}",
        explanation: "Cloud API responses are wrapped as `{\"code\": 0, \"message\": \"success\", \"data\": …}`; this JSON response is not.",
        basis: "Protocol reference §2.1 response envelope, §7 R19; docs [S9]")
    public static let tokenRefreshNotPost = Rule(
        id: "token-refresh-not-post", severity: .error, title: "token/refresh not called with POST",
        explanation: "`token/refresh` is POST only; a GET gets 'method not supported'.",
        basis: "Protocol reference §2.2, §6 common mistakes, §7 R20; issue [I1]")
    public static let loginErrorWith200 = Rule(
        id: "login-error-with-200", severity: .info, title: "Login failure answered with HTTP 200",
        explanation:
            "The login failed (envelope code ≠ 0) but the HTTP status is 200, as the reference demo does; clients that check only the status miss the failure.",
        basis: "Protocol reference §2.2 login errors, §6 error codes, §7 R19; demo [S7]")

    // More of the protocol reference's candidates (§7)
    public static let servicesReplyMissing = Rule(
        id: "services-reply-missing", severity: .warning, title: "services got no timely services_reply",
        explanation:
            "A `services` request from the cloud must be answered by the device with `services_reply` (same tid and bid); the reference demo waits 3 s and retries twice. None came, or it came later than that.",
        basis: "Protocol reference §4.2, §6 timing, §7 R26; demo [S8]")
    public static let eventsReplyMissing = Rule(
        id: "events-reply-missing", severity: .warning, title: "events with need_reply got no events_reply",
        explanation: "An `events` message with `need_reply: 1` must be answered by the cloud with `events_reply` carrying the same tid and bid.",
        basis: "Protocol reference §4.2 need_reply, §7 R25; docs [S5]")
    public static let gatewayModelUnexpected = Rule(
        id: "gateway-model-unexpected", severity: .warning, title: "Gateway or aircraft model outside the documented pairs",
        explanation:
            "The `update_topo` gateway is not one of the remote controllers Pilot 2 runs on (domain 2, types 56, 119, 144, 174), or its aircraft is not one the documentation pairs it with.",
        basis: "Protocol reference §5 device models, §7 R09; docs [S17]")
    public static let osdUnknownDevice = Rule(
        id: "osd-unknown-device", severity: .warning, title: "osd for a device not in the topology",
        explanation:
            "`thing/product/{sn}/osd` was published for an SN that is neither the gateway nor an aircraft listed in `sub_devices`; the cloud cannot attach it to a device.",
        basis: "Protocol reference §4.3 topics, §7 R10; docs [S3][S5]")
    public static let timestampSuspicious = Rule(
        id: "timestamp-suspicious", severity: .info, title: "Envelope timestamp not in milliseconds or far from capture time",
        explanation:
            "The envelope `timestamp` should be 13-digit epoch milliseconds; this one is not, or is more than 5 minutes away from the capture time (a device clock or unit problem).",
        basis: "Protocol reference §4.2 envelope, §7 R08; docs [S11]")

    // JSBridge (proxy mode: the calls the injected script reports)
    public static let bridgeLicenseNotVerified = Rule(
        id: "bridge-license-not-verified", severity: .error, title: "JSBridge used before the license was verified",
        explanation:
            "The H5 page called a JSBridge function before `platformVerifyLicense` had succeeded. License verification must succeed before any other JSBridge call works, so this call (and the modules it loads) fails.",
        basis: "Protocol reference §1.1 step 3, §3, §6 ordering 1; DJI docs, JSBridge [S2]")
    public static let thingHostMismatch = Rule(
        id: "thing-host-mismatch", severity: .warning, title: "thing module loaded with another broker than the cloud issued",
        explanation:
            "`platformLoadComponent(\"thing\", {host})` was given a host that differs from the `mqtt_addr` the cloud handed out over HTTP. Pilot 2 connects to that host, not to the broker the cloud expects; a wrong address leaves Pilot showing \"Cloud: Disconnect\".",
        basis: "Protocol reference §1.1 steps 13–14, §3 modules (thing), §6 common mistakes, §7 R22; demo [S10], issue [I6]")
    public static let workspaceIDNotUUID = Rule(
        id: "workspace-id-not-uuid", severity: .warning, title: "platformSetWorkspaceId with an id that is not a UUID",
        explanation:
            "The workspace id set through `platformSetWorkspaceId` must be a UUID; tsa and media use it in their paths (`/workspaces/{workspace_id}/…`).",
        basis: "Protocol reference §3 platform functions, §2.3, §7 R21; DJI docs, JSBridge [S2]")

    /// Every rule, in the order `pilottrace rules` lists them.
    public static let all: [Rule] = [
        statusNotSent, statusReplyMissing, statusReplyMismatch, statusRetransmitted, statusTopicWrong, updateTopoInvalid,
        mqttAnonymousLogin, mqttConnectRefused, mqttCredentialsMismatch, mqttClientIDTakeover, tokenMissing, expiredTokenAccepted,
        cleartextCredentials, captureIncomplete, mqttPublishUnacknowledged, mqttAckUnknownID, mqttPacketIDReused,
        mqttTrafficBeforeConnack, mqttSecondConnect, mqttKeepAliveExceeded, httpEnvelopeMissing, tokenRefreshNotPost,
        loginErrorWith200, servicesReplyMissing, eventsReplyMissing, gatewayModelUnexpected, osdUnknownDevice,
        timestampSuspicious, bridgeLicenseNotVerified, thingHostMismatch, workspaceIDNotUUID,
    ]

    public static func rule(_ id: String) -> Rule? { all.first { $0.id == id } }
}

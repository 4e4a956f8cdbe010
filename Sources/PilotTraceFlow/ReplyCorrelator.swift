import PilotTraceProtocols
import PilotTraceWire

/// One Cloud API request and its reply, matched on the same gateway by `tid` and `bid` (protocol reference §4.2).
public struct RequestReply: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable, CaseIterable, Codable {
        /// `sys/product/{sn}/status` → `status_reply` (device asks).
        case status
        /// `thing/product/{sn}/services` → `services_reply` (cloud asks).
        case services
        /// `events` with `need_reply: 1` → `events_reply` (device asks).
        case events
        /// `requests` → `requests_reply` (device asks).
        case requests
        /// `property/set` → `property/set_reply` (cloud asks).
        case propertySet = "property-set"
    }

    public var kind: Kind
    public var gateway: String
    public var tid: String?
    public var bid: String?
    public var method: String?
    public var requestTime: Timestamp
    public var replyTime: Timestamp?
    /// `data.result` of the reply (for `property/set`, the first property's `result`).
    public var result: Int64?
    public var requestConnection: ConnectionID
    public var replyConnection: ConnectionID?

    public var latency: Double? { replyTime.map { $0.seconds(since: requestTime) } }
    public var answered: Bool { replyTime != nil }
}

/// Matches Cloud API requests with their replies by gateway, kind, `tid` and `bid`. Pure; bounded: requests
/// waiting longer than `horizon` seconds of capture time are settled as unanswered.
public struct ReplyCorrelator {
    public var horizon: Double
    var pending: [RequestReply] = []
    /// Replies that matched no pending request (wrong tid/bid, or the request was not captured).
    public private(set) var unmatchedReplies: [RequestReply] = []
    /// Settled requests, answered or not, in request order.
    public private(set) var settled: [RequestReply] = []
    /// Positions in ``settled`` by gateway.
    var settledByGateway: [String: [Int]] = [:]

    public init(horizon: Double = 60) { self.horizon = horizon }

    /// Feeds a PUBLISH seen on `connection`; only Cloud API request and reply topics matter.
    public mutating func publish(_ p: MQTTPublish, on connection: ConnectionID, at t: Timestamp) {
        publish(p, topic: DJITopic(p.topic), on: connection, at: t)
    }

    /// The same, with the topic already parsed (the session tracker parses it once for both).
    mutating func publish(_ p: MQTTPublish, topic: DJITopic, on connection: ConnectionID, at t: Timestamp, envelope: DJIEnvelope? = nil) {
        guard let sn = topic.sn, let kind = topic.kind else { return }
        let request: RequestReply.Kind?, reply: RequestReply.Kind?
        switch kind {
        case .status, .statusTypo: (request, reply) = (.status, nil)
        case .statusReply: (request, reply) = (nil, .status)
        case .services: (request, reply) = (.services, nil)
        case .servicesReply: (request, reply) = (nil, .services)
        case .events: (request, reply) = (.events, nil)
        case .eventsReply: (request, reply) = (nil, .events)
        case .requests: (request, reply) = (.requests, nil)
        case .requestsReply: (request, reply) = (nil, .requests)
        case .propertySet: (request, reply) = (.propertySet, nil)
        case .propertySetReply: (request, reply) = (nil, .propertySet)
        default: return
        }
        let env = envelope ?? DJIEnvelope(payload: p.payload.stored)
        expire(now: t)
        if let request {
            if request == .events, env.needReply != 1 { return }  // no reply expected
            // The broker relays every publish to subscribers: the same request seen again (cloud side) is not new.
            if pending.contains(where: { $0.kind == request && $0.gateway == sn && $0.tid == env.tid && $0.bid == env.bid && env.tid != nil }) { return }
            pending.append(
                RequestReply(
                    kind: request, gateway: sn, tid: env.tid, bid: env.bid, method: env.method, requestTime: t,
                    requestConnection: connection))
        } else if let reply {
            var result = env.data?["result"]?.int64Value
            if reply == .propertySet, result == nil, case .object(let members)? = env.data { result = members.first?.1["result"]?.int64Value }
            if let i = pending.firstIndex(where: { $0.kind == reply && $0.gateway == sn && $0.tid == env.tid && $0.bid == env.bid }) {
                var r = pending.remove(at: i)
                r.replyTime = t
                r.result = result
                r.replyConnection = connection
                settle(r)
            } else if env.tid == nil || !answered(reply, gateway: sn, tid: env.tid, bid: env.bid) {
                unmatchedReplies.append(
                    RequestReply(
                        kind: reply, gateway: sn, tid: env.tid, bid: env.bid, method: env.method, requestTime: t,
                        replyTime: t, result: result, requestConnection: connection, replyConnection: connection))
            }
        }
    }

    /// Whether a request of this gateway was already answered by a reply with this `tid` and `bid` (the broker relays
    /// a reply to every subscriber: its other copies are not unmatched). Looks among the gateway's own exchanges: a
    /// scan of all settled exchanges for every relayed copy made long captures quadratic.
    func answered(_ kind: RequestReply.Kind, gateway: String, tid: String?, bid: String?) -> Bool {
        (settledByGateway[gateway] ?? []).contains {
            let s = settled[$0]
            return s.answered && s.kind == kind && s.tid == tid && s.bid == bid
        }
    }

    /// Whether a PUBLISH of this kind is a Cloud API request or reply (its envelope is read).
    static func correlates(_ kind: DJITopic.Kind) -> Bool {
        switch kind {
        case .status, .statusTypo, .statusReply, .services, .servicesReply, .events, .eventsReply, .requests, .requestsReply, .propertySet,
            .propertySetReply:
            true
        default: false
        }
    }

    /// Settles requests older than the horizon as unanswered.
    public mutating func expire(now: Timestamp) {
        while let first = pending.first, now.seconds(since: first.requestTime) > horizon {
            settle(pending.removeFirst())
        }
    }

    mutating func settle(_ r: RequestReply) {
        settledByGateway[r.gateway, default: []].append(settled.count)
        settled.append(r)
    }

    /// The settled exchanges of one gateway, in the order they were settled.
    func settled(gateway: String?) -> [RequestReply] {
        guard let gateway else { return [] }
        return (settledByGateway[gateway] ?? []).map { settled[$0] }
    }

    /// The capture ended: every request still waiting is unanswered.
    public mutating func finish() -> [RequestReply] {
        for r in pending { settle(r) }
        pending.removeAll()
        return settled.sorted { $0.requestTime < $1.requestTime }
    }
}

import PilotTraceWire

/// A device session's life on the broker, from its first CONNECT to offline (protocol reference §1.3).
///
/// A state machine in the style of SwiftNIO's: a struct around an `enum State`, moved by the session's timeline
/// steps (``apply(_:)``) and by capture time (``expire(now:)``), and asked what a new connection of the same device
/// means (``admission(at:)``). ``SessionTracker`` performs what it answers. Each rule is one transition:
/// - a clean DISCONNECT ends the session; the device's next connection starts a new one;
/// - a link lost without DISCONNECT waits the grace (30 s, §1.3): a connection within it is a `reconnect`, after it
///   the device is offline and the next connection starts a new session;
/// - CONNECTs refused one after another within the grace are one attempt (MQTT clients retry every second or so);
/// - a `reconnect` exists only after a `link-lost`.
public struct SessionLifecycle: Hashable, Sendable {
    public enum State: Hashable, Sendable {
        /// No accepted CONNECT yet: H5 steps only, or `refusals` refused CONNECTs, the last at `lastRefusal`.
        case connecting(refusals: Int, lastRefusal: Timestamp?)
        /// A device connection is up (accepted, or already open when the capture started).
        case connected
        /// The link dropped without DISCONNECT at `at`; the cloud waits the grace before calling the device offline.
        case linkLost(at: Timestamp)
        /// The device sent DISCONNECT: the session is over.
        case disconnected
        /// The grace passed without a reconnect: the device is offline, the session over.
        case offlineConfirmed
    }

    /// What another connection of the same device means for the session.
    public enum Admission: Hashable, Sendable {
        /// It belongs to the session: its first connection, or another while one is up.
        case join
        /// It comes back within the grace after a lost link: a `reconnect` after `seconds`.
        case reconnect(afterSeconds: Double)
        /// A CONNECT again after refused ones, within the grace: the same attempt.
        case retry
        /// The session is over: the connection starts a new session.
        case startNew
    }

    public private(set) var state: State = .connecting(refusals: 0, lastRefusal: nil)
    /// Seconds the cloud waits after a lost link (§1.3: 30 s).
    public let grace: Double

    public init(grace: Double) {
        self.grace = grace
    }

    /// Nothing joins the session any more.
    public var isOver: Bool { state == .disconnected || state == .offlineConfirmed }

    /// What a connection of this device opened (CONNECT, or first seen) at `t` means for the session.
    public func admission(at t: Timestamp) -> Admission {
        switch state {
        case .connecting(let refusals, let last):
            guard refusals > 0 else { return .join }
            guard let last, t.seconds(since: last) <= grace else { return .startNew }
            return .retry
        case .connected:
            return .join
        case .linkLost(let at):
            let after = t.seconds(since: at)
            return after <= grace ? .reconnect(afterSeconds: max(0, after)) : .startNew
        case .disconnected, .offlineConfirmed:
            return .startNew
        }
    }

    /// Moves with a step of the session's timeline.
    public mutating func apply(_ e: TimelineEvent) {
        switch (state, e.step) {
        case (.connecting(let refusals, _), .mqttConnack) where !e.ok:
            state = .connecting(refusals: refusals + 1, lastRefusal: e.time)
        case (.connecting, .mqttConnack), (.connecting, .alreadyConnected), (.linkLost, .reconnect):
            state = .connected
        case (.connected, .linkLost), (.connecting(refusals: 0, lastRefusal: _), .linkLost):
            state = .linkLost(at: e.time)
        case (.connected, .mqttDisconnect), (.linkLost, .mqttDisconnect), (.connecting, .mqttDisconnect):
            state = .disconnected
        case (.linkLost, .offlineConfirmed):
            state = .offlineConfirmed
        default:
            break
        }
    }

    /// A refused CONNECT folded into the attempt (``Admission/retry``) rather than added to the timeline.
    public mutating func refusedAgain(at t: Timestamp) {
        if case .connecting(let refusals, _) = state { state = .connecting(refusals: refusals + 1, lastRefusal: t) }
    }

    /// When the grace after a lost link has passed by `now`: the time the device counts as offline (once).
    public func expiry(now: Timestamp) -> Timestamp? {
        guard case .linkLost(let at) = state, now.seconds(since: at) > grace else { return nil }
        return at.adding(seconds: grace)
    }
}

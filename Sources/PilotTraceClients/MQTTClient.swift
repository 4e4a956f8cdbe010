import CMosquitto
import Foundation

/// An MQTT client on libmosquitto: a real client library, so neither the replay nor the lab's simulator speaks MQTT
/// with the project's own encoder.
///
/// libmosquitto runs its network loop on its own thread (`mosquitto_loop_start`); its callbacks land here and wake
/// the blocking calls (``connect(host:port:keepAlive:timeout:)``, ``waitForMessage(timeout:where:)`` …) through one
/// condition. Callers are plain threads: the lab runs one thread per simulated device, the replay one per session.
public final class MQTTClient: @unchecked Sendable {
    public enum Version: String, Sendable, CaseIterable {
        case v311 = "3.1.1"
        case v5 = "5"
        var protocolLevel: Int32 { self == .v5 ? 5 : 4 }
    }

    public struct Message: Sendable {
        public var topic: String
        public var payload: [UInt8]
        public var qos: Int
        public var text: String { String(decoding: payload, as: UTF8.self) }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public let clientID: String
    private let handle: OpaquePointer
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var connack: Int32?
    private var connected = false
    private var linkDown = false
    private var inbox: [Message] = []
    private var acknowledged: Set<Int32> = []
    private var subscribed: Set<Int32> = []
    private var onMessage: (@Sendable (MQTTClient, Message) -> Void)?
    private var looping = false
    private var destroyed = false
    private let reconnects: Bool

    private static let initialised: Void = { mosquitto_lib_init() }()

    /// A client that has not connected yet; `onMessage` (if given) sees every message on libmosquitto's thread
    /// instead of the inbox.
    ///
    /// - Parameter reconnect: Whether libmosquitto's loop reconnects on its own (same handle, no SUBSCRIBE, nothing
    ///   re-sent) when the connection is lost after the CONNACK. Off, a lost connection stays lost: ``isConnected``
    ///   turns false, ``waitForLinkLoss(until:)`` returns, and the caller reconnects with a new client as it sees fit.
    public init(
        clientID: String, version: Version = .v311, username: String? = nil, password: String? = nil,
        reconnect: Bool = true, onMessage: (@Sendable (MQTTClient, Message) -> Void)? = nil
    ) throws {
        _ = Self.initialised
        self.clientID = clientID
        reconnects = reconnect
        guard let h = mosquitto_new(clientID, true, nil) else { throw Failure(description: "mosquitto_new failed for \(clientID)") }
        handle = h
        self.onMessage = onMessage
        mosquitto_user_data_set(h, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_int_option(h, MOSQ_OPT_PROTOCOL_VERSION, version.protocolLevel)
        mosquitto_int_option(h, MOSQ_OPT_TCP_NODELAY, 1)
        if username != nil || password != nil { mosquitto_username_pw_set(h, username, password) }
        mosquitto_connect_callback_set(h) { _, obj, rc in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().connected(rc)
        }
        mosquitto_disconnect_callback_set(h) { mosq, obj, _ in
            guard let obj else { return }
            let client = Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue()
            client.update {
                $0.linkDown = true; $0.connected = false
            }
            // The loop reconnects after this callback unless the client is disconnecting; marking it so ends the loop
            // (the socket is closed already: nothing is sent).
            if !client.reconnects { mosquitto_disconnect(mosq) }
        }
        mosquitto_publish_callback_set(h) { _, obj, mid in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().update { _ = $0.acknowledged.insert(mid) }
        }
        mosquitto_subscribe_callback_set(h) { _, obj, mid, _, _ in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().update { _ = $0.subscribed.insert(mid) }
        }
        mosquitto_message_callback_set(h) { _, obj, m in
            guard let obj, let m else { return }
            let message = Message(
                topic: String(cString: m.pointee.topic),
                payload: Array(UnsafeRawBufferPointer(start: m.pointee.payload, count: Int(m.pointee.payloadlen))),
                qos: Int(m.pointee.qos))
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().received(message)
        }
    }

    deinit {
        close(dropLink: false)
    }

    private func update(_ body: (MQTTClient) -> Void) {
        condition.lock()
        body(self)
        condition.broadcast()
        condition.unlock()
    }

    private func connected(_ rc: Int32) {
        update {
            $0.connack = rc; $0.connected = rc == 0
        }
        // A refused CONNECT ends the session: no automatic reconnect behind the caller's back.
        if rc != 0 { mosquitto_disconnect(handle) }
    }

    private func received(_ m: Message) {
        condition.lock()
        let handler = onMessage
        if handler == nil { inbox.append(m); condition.broadcast() }
        condition.unlock()
        handler?(self, m)
    }

    /// Waits on the condition until `ready` holds or `timeout` passes; returns whether it holds.
    private func wait(_ timeout: Double, until ready: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !ready() {
            if !condition.wait(until: deadline) { return ready() }
        }
        return true
    }

    private static func check(_ rc: Int32, _ what: String) throws {
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            throw Failure(description: "\(what): \(String(cString: mosquitto_strerror(rc)))")
        }
    }

    /// Connects (from the local address `source` if given) and waits for the CONNACK: returns its code (0 accepted; 3.1.1 return codes or MQTT 5 reason codes).
    @discardableResult
    public func connect(host: String, port: Int, keepAlive: Int, timeout: Double = 10, bindTo source: String? = nil) throws -> Int32 {
        try Self.check(mosquitto_connect_bind(handle, host, Int32(port), Int32(keepAlive), source), "cannot connect to \(host):\(port)")
        try Self.check(mosquitto_loop_start(handle), "cannot start the MQTT loop")
        update { $0.looping = true }
        guard wait(timeout, until: { connack != nil || linkDown }) else {
            throw Failure(description: "no CONNACK from \(host):\(port) within \(timeout) s")
        }
        condition.lock()
        defer { condition.unlock() }
        guard let code = connack else { throw Failure(description: "\(host):\(port) closed the connection before CONNACK") }
        return code
    }

    public var isConnected: Bool { condition.lock(); defer { condition.unlock() }; return connected }

    /// Waits until the connection is lost (the broker or the network closed it) or `deadline` passes; returns whether
    /// it is lost. Without `reconnect` a lost connection stays lost; with it, this also returns once libmosquitto
    /// reconnected, until ``isConnected`` turns true again.
    public func waitForLinkLoss(until deadline: Date) -> Bool {
        wait(deadline.timeIntervalSinceNow) { linkDown && !connected }
    }

    /// Subscribes to `topics` in one SUBSCRIBE and waits for the SUBACK.
    public func subscribe(_ topics: [String], qos: Int = 1, timeout: Double = 10) throws {
        var mid: Int32 = 0
        let strings = topics.map { strdup($0) }
        defer { strings.forEach { free($0) } }
        let rc = strings.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafeMutablePointer<CChar>?.self, capacity: buffer.count) {
                mosquitto_subscribe_multiple(handle, &mid, Int32(topics.count), $0, Int32(qos), 0, nil)
            }
        }
        try Self.check(rc, "cannot subscribe")
        guard wait(timeout, until: { subscribed.contains(mid) || (linkDown && !connected) }) else {
            throw Failure(description: "no SUBACK within \(timeout) s")
        }
        condition.lock()
        defer { condition.unlock() }
        guard subscribed.contains(mid) else { throw Failure(description: "the connection closed before the SUBACK") }
    }

    /// Publishes and returns the message id; for QoS 1 ``waitAcknowledged(_:timeout:)`` waits for the PUBACK.
    @discardableResult
    public func publish(_ topic: String, _ payload: [UInt8], qos: Int = 0) throws -> Int32 {
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { mosquitto_publish(handle, &mid, topic, Int32(payload.count), $0.baseAddress, Int32(qos), false) }
        try Self.check(rc, "cannot publish on \(topic)")
        return mid
    }

    /// Waits until the broker acknowledged `mid` (QoS 1 PUBACK; for QoS 0, until it was written).
    public func waitAcknowledged(_ mid: Int32, timeout: Double) -> Bool { wait(timeout) { acknowledged.contains(mid) } }

    /// Takes the first received message that `matches` from the inbox, waiting up to `timeout` for one.
    public func waitForMessage(timeout: Double, where matches: (Message) -> Bool = { _ in true }) -> Message? {
        var found: Message?
        _ = wait(timeout) {
            if let i = inbox.firstIndex(where: matches) { found = inbox.remove(at: i); return true }
            return linkDown
        }
        return found
    }

    /// Ends the session: DISCONNECT and a clean close, or (`dropLink`) the TCP connection closed without a
    /// DISCONNECT, as when Pilot 2 is killed or loses its link.
    public func close(dropLink: Bool) {
        condition.lock()
        if destroyed { condition.unlock(); return }
        destroyed = true
        let wasLooping = looping
        condition.unlock()
        if dropLink {
            if wasLooping { mosquitto_loop_stop(handle, true) }
        } else {
            mosquitto_disconnect(handle)
            if wasLooping { mosquitto_loop_stop(handle, false) }
        }
        mosquitto_destroy(handle)  // closes the socket
    }
}

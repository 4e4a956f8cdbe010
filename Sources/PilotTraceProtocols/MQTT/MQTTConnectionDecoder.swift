import PilotTraceWire

/// What a direction's decoder produced: a packet, or the error that desynchronised it.
public enum MQTTStreamEvent: Hashable, Sendable {
    case packet(MQTTPacketRecord)
    case error(MQTTError)

    public var record: MQTTPacketRecord? {
        if case .packet(let r) = self { return r }
        return nil
    }

    public var error: MQTTError? {
        if case .error(let e) = self { return e }
        return nil
    }
}

/// Decodes both directions of one MQTT connection, sharing the protocol version between them.
///
/// MQTT 3.1.1 §3.1.2.2: the client's CONNECT declares the protocol level for the whole connection, so a CONNECT
/// decoded from the client-to-server direction sets the version of both directions. Until then (a capture that
/// starts mid-connection) the configured default is used and every record says the version was assumed.
///
/// Bytes are decoded as they are fed, in the order the caller feeds them (capture order), so a CONNACK fed after
/// its CONNECT is decoded with the CONNECT's version. Decoded events wait in a per-direction queue until
/// ``drain(direction:)``; drain regularly, since the queues are not bounded.
///
/// ## Topics
/// - ``feed(direction:bytes:frame:)``
/// - ``gap(direction:length:)``
/// - ``drain(direction:)``
public struct MQTTConnectionDecoder: Sendable {
    public private(set) var toServer: MQTTStreamDecoder
    public private(set) var toClient: MQTTStreamDecoder
    /// True once the client's CONNECT has declared the version.
    public private(set) var versionKnown = false
    var toServerEvents: [MQTTStreamEvent] = []
    var toClientEvents: [MQTTStreamEvent] = []

    public init(configuration: MQTTStreamDecoder.Configuration = MQTTStreamDecoder.Configuration()) {
        toServer = MQTTStreamDecoder(configuration: configuration)
        toClient = MQTTStreamDecoder(configuration: configuration)
    }

    /// The version the client-to-server direction currently decodes with.
    public var version: MQTTVersion { toServer.version }

    /// The decoder of one direction (for its counters and state).
    public func decoder(_ direction: Direction) -> MQTTStreamDecoder {
        direction == .toServer ? toServer : toClient
    }

    /// Feeds reassembled bytes of one direction, carried by capture frame `frame`, and decodes what they complete.
    public mutating func feed(direction: Direction, bytes: [UInt8], frame: CaptureFrame = .unknown) {
        switch direction {
        case .toServer:
            toServer.feed(bytes, frame: frame)
            while true {
                do {
                    guard let record = try toServer.next() else { break }
                    if case .connect(let connect) = record.packet {
                        toClient.setVersion(connect.version, assumed: false)
                        versionKnown = true
                    }
                    toServerEvents.append(.packet(record))
                } catch {
                    toServerEvents.append(.error(error))
                    break
                }
            }
        case .toClient:
            toClient.feed(bytes, frame: frame)
            while true {
                do {
                    guard let record = try toClient.next() else { break }
                    toClientEvents.append(.packet(record))
                } catch {
                    toClientEvents.append(.error(error))
                    break
                }
            }
        }
    }

    /// Reports bytes lost in the capture: that direction becomes desynchronised.
    public mutating func gap(direction: Direction, length: Int) {
        switch direction {
        case .toServer: toServer.gap(length: length)
        case .toClient: toClient.gap(length: length)
        }
    }

    /// Returns and forgets the events decoded so far in one direction, in stream order.
    /// Whether ``drain(direction:)`` has anything to return.
    public func hasEvents(_ direction: Direction) -> Bool {
        direction == .toServer ? !toServerEvents.isEmpty : !toClientEvents.isEmpty
    }

    public mutating func drain(direction: Direction) -> [MQTTStreamEvent] {
        switch direction {
        case .toServer:
            defer { toServerEvents.removeAll() }
            return toServerEvents
        case .toClient:
            defer { toClientEvents.removeAll() }
            return toClientEvents
        }
    }
}

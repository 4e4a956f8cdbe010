/// The direction of bytes on a connection, relative to whoever opened it.
public enum Direction: Int, Hashable, Sendable, CaseIterable, Codable {
    /// From the initiator (the client, who sent the SYN) to the responder.
    case toServer = 0
    /// From the responder back to the initiator.
    case toClient = 1

    public var reversed: Direction { self == .toServer ? .toClient : .toServer }
    public var arrow: String { self == .toServer ? "→" : "←" }
}

/// A TCP connection's number in capture order, like Wireshark's `tcp.stream` (but counted from 1).
public struct ConnectionID: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (l: Self, r: Self) -> Bool { l.rawValue < r.rawValue }
    public var description: String { "#\(rawValue)" }
}

/// How a connection's endpoints were told apart.
public enum RoleEvidence: String, Sendable, Codable {
    /// The SYN was captured: its sender is the client.
    case syn
    /// Only the SYN-ACK was captured: its receiver is the client.
    case synAck = "syn-ack"
    /// Neither was captured, but one end was the server of another connection whose handshake was.
    case knownServer = "known-server"
    /// Neither was captured: the well-known or lower port is taken as the server.
    case portHeuristic = "port-heuristic"
    /// Nothing to go on: the first sender is taken as the client.
    case firstPacket = "first-packet"
}

/// Why a connection ended.
public enum CloseReason: String, Sendable, Codable {
    /// Both sides sent FIN.
    case fin
    /// A RST was seen.
    case rst
    /// No packet for the idle timeout.
    case idle
    /// The capture ended while the connection was open (or only half-closed).
    case captureEnd = "capture-end"
    /// A new SYN reused the 4-tuple while the connection was still open.
    case portReuse = "port-reuse"
}

/// Who opened a connection, and when.
public struct ConnectionInfo: Hashable, Sendable {
    public var id: ConnectionID
    public var client: Endpoint
    public var server: Endpoint
    public var roleEvidence: RoleEvidence
    /// True when the capture starts after the connection did (no SYN seen).
    public var midstream: Bool { roleEvidence != .syn }
    public var firstSeen: Timestamp

    public init(id: ConnectionID, client: Endpoint, server: Endpoint, roleEvidence: RoleEvidence, firstSeen: Timestamp) {
        self.id = id
        self.client = client
        self.server = server
        self.roleEvidence = roleEvidence
        self.firstSeen = firstSeen
    }
}

/// Per-direction counters of a connection.
public struct DirectionStats: Hashable, Sendable, Codable {
    /// Frames, as tshark counts them in its conversation table.
    public var packets = 0
    /// Frame bytes on the wire (frame length, link header included), as tshark counts them.
    public var bytes = 0
    /// Stream bytes delivered in order to decoders.
    public var payloadBytes = 0
    public var gaps = 0
    public var gapBytes = 0
    /// Segments wholly already delivered (retransmissions and duplicates), dropped.
    public var retransmissions = 0
    public var outOfOrder = 0
    /// Segments starting more than 1 GiB beyond the next expected byte (no TCP window is that large), dropped.
    public var outOfWindow = 0
    /// Segments partly overlapping delivered or buffered data, trimmed.
    public var overlaps = 0
    /// Overlaps whose bytes differ from the first copy (first copy kept).
    public var conflicts = 0
    public var finSeen = false
    public var rstSeen = false
    public init() {}
}

/// Everything known about a connection when it is released.
public struct ConnectionSummary: Hashable, Sendable {
    public var info: ConnectionInfo
    public var lastSeen: Timestamp
    public var synSeen: Bool
    public var synAckSeen: Bool
    /// The client's ACK of the SYN-ACK (the third packet of the handshake).
    public var handshakeAckSeen: Bool
    public var toServer: DirectionStats
    public var toClient: DirectionStats
    public var closeReason: CloseReason

    public init(
        info: ConnectionInfo, lastSeen: Timestamp, synSeen: Bool, synAckSeen: Bool, handshakeAckSeen: Bool,
        toServer: DirectionStats, toClient: DirectionStats, closeReason: CloseReason
    ) {
        self.info = info
        self.lastSeen = lastSeen
        self.synSeen = synSeen
        self.synAckSeen = synAckSeen
        self.handshakeAckSeen = handshakeAckSeen
        self.toServer = toServer
        self.toClient = toClient
        self.closeReason = closeReason
    }

    public var handshakeComplete: Bool { synSeen && synAckSeen && handshakeAckSeen }

    public subscript(direction: Direction) -> DirectionStats {
        direction == .toServer ? toServer : toClient
    }

    /// Wireshark's `tcp.completeness` bit mask: 1 SYN, 2 SYN-ACK, 4 ACK, 8 data, 16 FIN, 32 RST.
    public var completeness: Int {
        var v = 0
        if synSeen { v |= 1 }
        if synAckSeen { v |= 2 }
        if handshakeAckSeen { v |= 4 }
        if toServer.payloadBytes + toClient.payloadBytes + toServer.gapBytes + toClient.gapBytes > 0 { v |= 8 }
        if toServer.finSeen || toClient.finSeen { v |= 16 }
        if toServer.rstSeen || toClient.rstSeen { v |= 32 }
        return v
    }
}

/// A captured frame as Wireshark numbers it: `number` counts the frames of one capture file from 1
/// (`frame.number`), `file` is the file's position in the run (from 0; the `captures.ordinal` of the store).
///
/// ``TCPPipeline`` numbers the frames it is given; number 0 means "not known" (bytes that were never captured,
/// events made up by tests or synthesised without frames).
public struct CaptureFrame: Hashable, Comparable, Sendable {
    public var file: UInt32
    public var number: UInt32

    public init(file: Int = 0, number: Int) {
        self.file = UInt32(truncatingIfNeeded: file)
        self.number = UInt32(truncatingIfNeeded: number)
    }

    public static let unknown = CaptureFrame(number: 0)
    public var isKnown: Bool { number != 0 }

    public static func < (l: Self, r: Self) -> Bool { (l.file, l.number) < (r.file, r.number) }
}

/// The frames holding a message's first and last bytes (the same frame for a message carried in one segment).
/// Either may be ``CaptureFrame/unknown`` (a message that starts or ends in bytes lost from the capture).
public struct FrameSpan: Hashable, Sendable {
    public var first: CaptureFrame
    public var last: CaptureFrame

    public init(first: CaptureFrame, last: CaptureFrame) {
        self.first = first
        self.last = last
    }

    public init(_ frame: CaptureFrame) { self.init(first: frame, last: frame) }

    public static let unknown = FrameSpan(.unknown)

    /// The span as one file's frame numbers, as the store and the outputs give it: the file of the first known frame,
    /// and the numbers in that file (a last frame in a later file, of a message straddling two files of a rotated
    /// capture, is left out); nil when no frame is known.
    public var inOneFile: (file: Int, first: Int?, last: Int?)? {
        let anchor = first.isKnown ? first : last
        guard anchor.isKnown else { return nil }
        return (
            Int(anchor.file), first.isKnown ? Int(first.number) : nil,
            last.isKnown && last.file == anchor.file ? Int(last.number) : nil
        )
    }

    /// From the first frame of `self` to the last of `later` (a request and its response), each side falling back
    /// on the other where it is not known.
    public func through(_ later: FrameSpan) -> FrameSpan {
        FrameSpan(first: first.isKnown ? first : later.first, last: later.last.isKnown ? later.last : last)
    }
}

/// What the TCP reassembler tells its consumers, per connection and direction, in capture order.
public enum StreamEvent: Sendable {
    /// A new connection (first packet seen).
    case opened(ConnectionInfo)
    /// Contiguous stream bytes, with the capture time of the segment that completed them, and the frame that
    /// carried them: every `.data` event holds the bytes of one segment (an out-of-order segment's bytes come when
    /// the hole before them is filled, with the time of the segment that filled it and their own frame).
    case data(ConnectionID, Direction, [UInt8], Timestamp, frame: CaptureFrame = .unknown)
    /// Bytes known to be missing: the consumer must resynchronise or give up on this direction.
    case gap(ConnectionID, Direction, length: Int, Timestamp)
    /// Bytes that overlap already-seen bytes but differ (the first copy was kept).
    case conflict(ConnectionID, Direction, streamOffset: Int, length: Int, Timestamp)
    /// This direction's FIN was reached in order: no more bytes follow.
    case end(ConnectionID, Direction, Timestamp)
    /// The connection is over and its state released.
    case closed(ConnectionSummary)
}

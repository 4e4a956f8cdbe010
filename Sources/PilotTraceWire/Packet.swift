/// One captured frame, as the capture layer hands it to the core.
///
/// `data` is only valid for the duration of the call it is passed to; the core copies what it keeps.
public struct CaptureRecord {
    public var timestamp: Timestamp
    public var linkType: LinkType
    /// The bytes captured (possibly cut by the snapshot length).
    public var data: UnsafeRawBufferPointer
    /// The frame's length on the wire.
    public var originalLength: Int
    /// The pcapng interface the frame came from (0 for pcap).
    public var interface: Int

    public init(timestamp: Timestamp, linkType: LinkType, data: UnsafeRawBufferPointer, originalLength: Int, interface: Int = 0) {
        self.timestamp = timestamp
        self.linkType = linkType
        self.data = data
        self.originalLength = originalLength
        self.interface = interface
    }
}

/// TCP header flags (RFC 9293 §3.1).
public struct TCPFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// A decoded TCP segment. `payload` borrows from the frame (or a reassembled datagram) for the duration of a call.
public struct TCPSegment {
    public var source: Endpoint
    public var destination: Endpoint
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    /// Payload bytes present in the capture.
    public var payload: UnsafeRawBufferPointer
    /// Payload bytes on the wire (from the IP length); more than `payload.count` when the snapshot length cut the frame.
    public var wireLength: Int
    /// The window scale option, when present (SYN segments).
    public var windowScale: UInt8?
    /// The maximum segment size option, when present (SYN segments).
    public var maximumSegmentSize: UInt16?
}

/// What the packet decoder made of a frame.
public enum DecodeOutcome {
    /// A TCP segment (handed to the reassembler).
    case tcp(TCPSegment)
    /// An IP packet that is not TCP (UDP, ICMP, …), by IP protocol number.
    case otherIP(protocolNumber: UInt8)
    /// A fragment held until its datagram is complete.
    case fragmentHeld
    /// A frame that does not carry IP (ARP, LLDP, …), by ethertype when known.
    case notIP(etherType: UInt16?)
    /// A link type pilottrace does not decode.
    case unsupportedLinkType(LinkType)
    /// Bytes that do not hold what their headers promise.
    case malformed(MalformedPacket)
}

/// Why a frame could not be decoded, and at which byte of the frame.
public struct MalformedPacket: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: String, Sendable {
        case truncatedLinkHeader = "link-layer header cut short"
        case truncatedIPHeader = "IP header cut short"
        case badIPVersion = "IP version does not match the link type"
        case badIPHeaderLength = "IPv4 header length below 20 bytes"
        case truncatedTCPHeader = "TCP header cut short"
        case badTCPHeaderLength = "TCP data offset below 20 bytes"
        case badFragment = "fragment offset and length exceed 65535 bytes"
        case tooManyTags = "more than 8 stacked VLAN tags"
        case extensionHeaderLoop = "IPv6 extension header chain too long"
    }

    public var reason: Reason
    public var offset: Int
    public var description: String { "\(reason.rawValue) (frame offset \(offset))" }
}

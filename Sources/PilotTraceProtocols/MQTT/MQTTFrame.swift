/// The fixed header of an MQTT control packet: type and flags byte, then the Remaining Length.
///
/// MQTT 3.1.1 §2.2 / 5.0 §2.1.1: byte 1 holds the packet type (bits 7–4) and type-specific flags (bits 3–0);
/// the Remaining Length follows as a Variable Byte Integer of one to four bytes.
public struct MQTTFixedHeader: Hashable, Sendable {
    /// The first byte: type in the high nibble, flags in the low nibble.
    public var firstByte: UInt8
    /// The number of bytes after the fixed header (variable header plus payload).
    public var remainingLength: Int
    /// The fixed header's own length: 1 plus the Remaining Length's 1–4 bytes.
    public var headerLength: Int

    public init(firstByte: UInt8, remainingLength: Int, headerLength: Int) {
        self.firstByte = firstByte
        self.remainingLength = remainingLength
        self.headerLength = headerLength
    }

    /// The raw packet type value, 0–15.
    public var typeValue: UInt8 { firstByte >> 4 }
    /// The low nibble of the first byte.
    public var flags: UInt8 { firstByte & 0x0F }
    /// The packet's length on the wire.
    public var frameLength: Int { headerLength + remainingLength }

    /// The largest Remaining Length four bytes can encode (MQTT 3.1.1 §2.2.3 Table 2.4): 268,435,455.
    public static let maximumEncodableRemainingLength = 268_435_455

    /// Frames a fixed header from `bytes[index...]`.
    ///
    /// MQTT 3.1.1 §2.2.3: the Remaining Length is a Variable Byte Integer, seven bits per byte, least
    /// significant group first, the top bit meaning "more bytes follow"; at most four bytes.
    /// - Parameters:
    ///   - bytes: the buffer.
    ///   - index: where the packet starts in `bytes`.
    ///   - streamOffset: the stream offset of `bytes[index]`, for errors.
    ///   - maxRemainingLength: larger Remaining Lengths are rejected.
    /// - Returns: the header, or nil when more bytes are needed to know it.
    /// - Throws: ``MQTTError/Code/remainingLengthTooLong`` when the fourth length byte has its continuation
    ///   bit set, ``MQTTError/Code/packetTooLarge`` when the length exceeds `maxRemainingLength`; both at the
    ///   offset of the first length byte.
    public static func read(
        _ bytes: [UInt8], at index: Int = 0, streamOffset: Int = 0, maxRemainingLength: Int
    ) throws(MQTTError) -> MQTTFixedHeader? {
        guard index < bytes.count else { return nil }
        var value = 0
        var shift = 0
        for i in 1...4 {
            guard index + i < bytes.count else { return nil }
            let b = bytes[index + i]
            value |= Int(b & 0x7F) << shift
            if b & 0x80 == 0 {
                guard value <= maxRemainingLength else {
                    throw MQTTError(
                        .packetTooLarge, offset: streamOffset + 1, packetOffset: streamOffset,
                        "Remaining Length \(value) exceeds the configured maximum \(maxRemainingLength)")
                }
                return MQTTFixedHeader(firstByte: bytes[index], remainingLength: value, headerLength: 1 + i)
            }
            shift += 7
        }
        throw MQTTError(
            .remainingLengthTooLong, offset: streamOffset + 1, packetOffset: streamOffset,
            "Remaining Length continues past four bytes (MQTT 3.1.1 §2.2.3)")
    }

    /// Checks the packet type and fixed-header flags against the rules of `version`.
    ///
    /// - MQTT 3.1.1 §2.2.1: type 0 is reserved, and so is 15 before MQTT 5.0 (where it is AUTH, §3.15).
    /// - MQTT 3.1.1 §2.2.2 / 5.0 §2.1.3: PUBREL, SUBSCRIBE and UNSUBSCRIBE carry flags `0010`, every other
    ///   type but PUBLISH `0000`. MQTT 3.1 (§2.1 of that spec) let those three carry the DUP bit on
    ///   re-delivery, so `1010` is accepted for 3.1 as well.
    /// - MQTT 3.1.1 §3.3.1.2: a PUBLISH must not have both QoS bits set.
    /// - Parameter streamOffset: the stream offset of the packet's first byte.
    /// - Returns: the packet type.
    /// - Throws: ``MQTTError/Code/reservedPacketType``, ``MQTTError/Code/reservedFlags`` or
    ///   ``MQTTError/Code/invalidQoS``, at the packet's first byte.
    public func validate(version: MQTTVersion, streamOffset: Int) throws(MQTTError) -> MQTTPacketType {
        guard let type = MQTTPacketType(rawValue: typeValue), type != .auth || version == .v5 else {
            throw MQTTError(
                .reservedPacketType, offset: streamOffset, packetOffset: streamOffset,
                "packet type \(typeValue) is reserved in MQTT \(version) (§2.2.1)")
        }
        if let required = type.requiredFlags {
            let allowed = flags == required || (version == .v3_1 && required == 0b0010 && flags == 0b1010)
            guard allowed else {
                throw MQTTError(
                    .reservedFlags, offset: streamOffset, packetOffset: streamOffset,
                    "\(type.name) flags are \(Self.bits(flags)), must be \(Self.bits(required)) (§2.2.2)")
            }
        } else if (flags >> 1) & 0b11 == 3 {
            throw MQTTError(
                .invalidQoS, offset: streamOffset, packetOffset: streamOffset,
                "PUBLISH with QoS 3 (§3.3.1.2)")
        }
        return type
    }

    static func bits(_ nibble: UInt8) -> String {
        (0..<4).reversed().map { nibble >> $0 & 1 == 1 ? "1" : "0" }.joined()
    }
}

/// A complete MQTT packet located in a byte buffer: the first decoding stage.
///
/// The frame shares the buffer (no copy); ``MQTTPacket/parse(_:version:maxStoredPayload:topicAliases:)`` is the
/// second stage.
public struct MQTTFrame: Sendable {
    public var header: MQTTFixedHeader
    /// The buffer holding the frame (and possibly more).
    public var bytes: [UInt8]
    /// Index of the frame's first byte in `bytes`.
    public var start: Int
    /// Stream offset of `bytes[start]`.
    public var streamOffset: Int

    public init(header: MQTTFixedHeader, bytes: [UInt8], start: Int, streamOffset: Int) {
        self.header = header
        self.bytes = bytes
        self.start = start
        self.streamOffset = streamOffset
    }

    /// Indices of the variable header and payload in `bytes`.
    public var bodyRange: Range<Int> {
        (start + header.headerLength)..<(start + header.frameLength)
    }

    public var body: ArraySlice<UInt8> { bytes[bodyRange] }

    /// Frames one complete packet starting at `bytes[index]`.
    /// - Returns: the frame, or nil when the header or body is not complete yet.
    /// - Throws: the errors of ``MQTTFixedHeader/read(_:at:streamOffset:maxRemainingLength:)``.
    public static func read(
        _ bytes: [UInt8], at index: Int = 0, streamOffset: Int = 0, maxRemainingLength: Int = 16 << 20
    ) throws(MQTTError) -> MQTTFrame? {
        guard
            let header = try MQTTFixedHeader.read(
                bytes, at: index, streamOffset: streamOffset, maxRemainingLength: maxRemainingLength)
        else { return nil }
        guard bytes.count - index >= header.frameLength else { return nil }
        return MQTTFrame(header: header, bytes: bytes, start: index, streamOffset: streamOffset)
    }
}

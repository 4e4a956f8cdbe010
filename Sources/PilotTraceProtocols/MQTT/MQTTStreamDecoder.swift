import PilotTraceWire

/// One decoded packet and where it was in its direction's byte stream.
public struct MQTTPacketRecord: Hashable, Sendable {
    public var packet: MQTTPacket
    /// Stream offset of the packet's first byte.
    public var offset: Int
    /// The packet's length on the wire (fixed header included).
    public var length: Int
    /// The protocol version the packet was decoded with (a CONNECT's own declared version).
    public var version: MQTTVersion
    /// True when no CONNECT had declared the version: the configured default was used.
    public var versionAssumed: Bool
    /// The frames that carried the packet's first and last bytes (as fed with ``MQTTStreamDecoder/feed(_:frame:)``).
    public var frames: FrameSpan

    public init(packet: MQTTPacket, offset: Int, length: Int, version: MQTTVersion, versionAssumed: Bool, frames: FrameSpan = .unknown) {
        self.packet = packet
        self.offset = offset
        self.length = length
        self.version = version
        self.versionAssumed = versionAssumed
        self.frames = frames
    }

    /// The packet's one-line summary (secrets masked unless `showSecrets`).
    public func summary(showSecrets: Bool = false) -> String { packet.summary(showSecrets: showSecrets) }
}

/// Decodes the MQTT packets of one direction of a connection from reassembled bytes fed in arbitrary chunks.
///
/// Feed bytes with ``feed(_:frame:)``, then call ``next()`` until it returns nil. Framing (fixed header, Remaining
/// Length) is separate from parsing; a PUBLISH payload is consumed incrementally as it arrives and only the
/// first ``Configuration/maxStoredPayload`` bytes are kept, so a large PUBLISH is never buffered whole. Every
/// other packet is buffered until complete, up to ``Configuration/maxRemainingLength``.
///
/// After a malformed packet (``next()`` throws) or a capture gap (``gap(length:)``) the direction is
/// *desynchronised*: nothing more is decoded (no resynchronisation is guessed) and further bytes are only
/// counted in ``desyncBytes``.
///
/// Memory: once ``next()`` has returned nil or thrown, ``bufferedByteCount`` is at most
/// ``maximumBufferedBytes`` (one incomplete packet).
///
/// ## Topics
/// - ``feed(_:frame:)``
/// - ``next()``
/// - ``gap(length:)``
/// - ``looksLikeConnect(_:)``
/// - ``plausibleStream(_:minimumPackets:)``
public struct MQTTStreamDecoder: Sendable {
    /// Limits and defaults shared by the stream and connection decoders.
    public struct Configuration: Hashable, Sendable {
        /// The version used until a CONNECT declares one (captures that start mid-connection).
        public var defaultVersion: MQTTVersion
        /// Bytes kept of a PUBLISH payload, will payload or password; the real length is always kept.
        public var maxStoredPayload: Int
        /// Packets with a larger Remaining Length are rejected as ``MQTTError/Code/packetTooLarge``.
        public var maxRemainingLength: Int
        /// Bytes of topic text kept in each direction's topic-alias table (MQTT 5.0).
        public var maxTopicAliasBytes: Int

        public init(
            defaultVersion: MQTTVersion = .v3_1_1, maxStoredPayload: Int = 1 << 20,
            maxRemainingLength: Int = 16 << 20, maxTopicAliasBytes: Int = 1 << 20
        ) {
            self.defaultVersion = defaultVersion
            self.maxStoredPayload = max(0, maxStoredPayload)
            self.maxRemainingLength = min(max(0, maxRemainingLength), MQTTFixedHeader.maximumEncodableRemainingLength)
            self.maxTopicAliasBytes = max(0, maxTopicAliasBytes)
        }
    }

    /// A PUBLISH whose variable header has been parsed and whose payload is still arriving.
    struct PendingPublish: Sendable {
        var publish: MQTTPublish
        var offset: Int
        var length: Int
        var remaining: Int
        var version: MQTTVersion
        var versionAssumed: Bool
        var firstFrame: CaptureFrame
    }

    public let configuration: Configuration
    /// The version packets are currently decoded with.
    public private(set) var version: MQTTVersion
    /// True until a CONNECT (or ``setVersion(_:assumed:)``) declares the version.
    public private(set) var versionAssumed: Bool
    public private(set) var isDesynchronised = false
    public private(set) var packetsDecoded = 0
    public private(set) var errorCount = 0
    /// Bytes dropped because the direction was desynchronised (including the partial packet buffered then).
    public private(set) var desyncBytes = 0
    /// Bytes reported lost by ``gap(length:)``.
    public private(set) var gapBytes = 0
    /// The error that desynchronised the direction, if any.
    public private(set) var lastError: MQTTError?
    /// This sender's topic aliases (MQTT 5.0 §3.3.2.3.4).
    public private(set) var topicAliases: MQTTTopicAliases
    /// Stream offset of the next byte to decode.
    public private(set) var offset = 0

    var buffer: [UInt8] = []
    /// Index in `buffer` of the byte at stream offset `offset`.
    var start = 0
    var pending: PendingPublish?
    /// The frames of the bytes not decoded yet: from each mark's stream offset on, the bytes came in its frame. One
    /// mark per ``feed(_:frame:)`` of a new frame, forgotten once decoding is past it, so there are about as many as
    /// segments in one incomplete packet.
    var frameMarks = StreamMarks<CaptureFrame>()

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.version = configuration.defaultVersion
        self.versionAssumed = true
        self.topicAliases = MQTTTopicAliases(maxBytes: configuration.maxTopicAliasBytes)
    }

    /// Bytes received but not yet decoded.
    public var bufferedByteCount: Int { buffer.count - start }

    /// The most bytes held between calls once ``next()`` has returned nil: one incomplete packet.
    public var maximumBufferedBytes: Int { configuration.maxRemainingLength + 5 }

    /// Declares the version for the packets still to come (the connection decoder calls this when the other
    /// direction's CONNECT is seen).
    public mutating func setVersion(_ version: MQTTVersion, assumed: Bool) {
        self.version = version
        self.versionAssumed = assumed
    }

    /// Appends reassembled bytes. A desynchronised direction only counts them.
    /// - Parameters:
    ///   - bytes: the next bytes of the direction.
    ///   - frame: the capture frame that carried them; packets say which frames held their first and last bytes.
    public mutating func feed(_ bytes: [UInt8], frame: CaptureFrame = .unknown) {
        guard !isDesynchronised else {
            desyncBytes += bytes.count
            return
        }
        markFrame(frame, at: offset + bufferedByteCount)
        compact(force: false)
        if buffer.isEmpty {
            buffer = bytes
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    /// Reports `length` bytes lost in the capture: the direction becomes desynchronised.
    public mutating func gap(length: Int) {
        guard length > 0 else { return }
        gapBytes += length
        desynchronise()
    }

    /// Decodes the next packet.
    /// - Returns: the packet, or nil when more bytes are needed (or the direction is desynchronised).
    /// - Throws: ``MQTTError`` for malformed bytes; the direction is then desynchronised.
    public mutating func next() throws(MQTTError) -> MQTTPacketRecord? {
        guard !isDesynchronised else { return nil }
        do {
            guard let record = try step() else {
                compact(force: true)
                return nil
            }
            packetsDecoded += 1
            return record
        } catch {
            errorCount += 1
            lastError = error
            desynchronise()
            throw error
        }
    }

    mutating func step() throws(MQTTError) -> MQTTPacketRecord? {
        if pending != nil { return continuePublish() }
        guard
            let header = try MQTTFixedHeader.read(
                buffer, at: start, streamOffset: offset, maxRemainingLength: configuration.maxRemainingLength)
        else { return nil }
        let type = try header.validate(version: version, streamOffset: offset)
        let bodyStart = start + header.headerLength
        let frameEnd = start + header.frameLength

        if type == .publish {
            // Parse the variable header as soon as it is here, then stream the payload.
            guard
                let headerEnd = MQTTPublishHeader.measureEnd(
                    buffer, bodyStart: bodyStart, frameEnd: frameEnd, qos: (header.flags >> 1) & 0b11, version: version),
                headerEnd <= buffer.count
            else { return nil }
            var r = MQTTReader(
                buffer, from: bodyStart, to: min(frameEnd, buffer.count), base: offset - start, packetOffset: offset)
            let head = try MQTTPublishHeader.read(&r, flags: header.flags, version: version)
            let payloadLength = frameEnd - r.index
            let publish = head.packet(payload: MQTTPayload(stored: [], length: payloadLength), aliases: &topicAliases)
            pending = PendingPublish(
                publish: publish, offset: offset, length: header.frameLength, remaining: payloadLength,
                version: version, versionAssumed: versionAssumed, firstFrame: captureFrame(at: offset))
            pending?.publish.payload.stored.reserveCapacity(min(payloadLength, configuration.maxStoredPayload))
            consume(r.index - start)
            return continuePublish()
        }

        guard buffer.count >= frameEnd else { return nil }
        let frame = MQTTFrame(header: header, bytes: buffer, start: start, streamOffset: offset)
        let packet = try MQTTPacket.parse(
            frame, version: version, maxStoredPayload: configuration.maxStoredPayload, topicAliases: &topicAliases)
        var record = MQTTPacketRecord(
            packet: packet, offset: offset, length: header.frameLength, version: version,
            versionAssumed: versionAssumed,
            frames: FrameSpan(first: captureFrame(at: offset), last: captureFrame(at: offset + header.frameLength - 1)))
        if case .connect(let connect) = packet {
            // MQTT 3.1.1 §3.1.2.2: the CONNECT's protocol level is the connection's version.
            setVersion(connect.version, assumed: false)
            record.version = connect.version
            record.versionAssumed = false
        }
        consume(header.frameLength)
        return record
    }

    /// Takes the payload bytes that have arrived, keeping up to the cap.
    mutating func continuePublish() -> MQTTPacketRecord? {
        // Read fields without binding a copy of `pending`, so the append below does not copy the stored bytes.
        guard let remaining = pending?.remaining, let kept = pending?.publish.payload.stored.count else { return nil }
        let n = min(remaining, bufferedByteCount)
        let room = configuration.maxStoredPayload - kept
        if room > 0 && n > 0 {
            pending?.publish.payload.stored.append(contentsOf: buffer[start..<(start + min(n, room))])
        }
        pending?.remaining -= n
        consume(n)
        guard let done = pending, done.remaining == 0 else { return nil }
        pending = nil
        return MQTTPacketRecord(
            packet: .publish(done.publish), offset: done.offset, length: done.length, version: done.version,
            versionAssumed: done.versionAssumed, frames: FrameSpan(first: done.firstFrame, last: captureFrame(at: offset - 1)))
    }

    /// Notes that bytes from stream offset `at` on came in `frame`, and forgets the marks of bytes already decoded.
    mutating func markFrame(_ frame: CaptureFrame, at: Int) {
        frameMarks.prune(keeping: offset)
        frameMarks.add(offset: at, frame)
    }

    /// The frame that carried the byte at stream offset `o`.
    func captureFrame(at o: Int) -> CaptureFrame { frameMarks.value(at: o) ?? .unknown }

    mutating func consume(_ n: Int) {
        start += n
        offset += n
    }

    /// Drops consumed bytes: always when `force`, otherwise once they are at least half the buffer.
    mutating func compact(force: Bool) {
        guard start > 0 else { return }
        if start == buffer.count {
            // Keep a small buffer for the next packet; let a large one go (idle connections add up).
            buffer.removeAll(keepingCapacity: buffer.capacity <= 2048)
            start = 0
        } else if force || start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
    }

    mutating func desynchronise() {
        if !isDesynchronised {
            desyncBytes += bufferedByteCount
            isDesynchronised = true
        }
        buffer = []
        start = 0
        pending = nil
        frameMarks = StreamMarks()
    }
}

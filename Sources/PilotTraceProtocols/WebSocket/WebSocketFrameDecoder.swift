import PilotTraceWire

/// Decodes one direction of a WebSocket connection (RFC 6455 §5) into messages.
///
/// Fed the direction's stream bytes as they arrive: it keeps at most one frame header (14 bytes) and the
/// payload of the message in progress up to the cap, so a frame of any length streams through. Data frames are
/// reassembled into messages (§5.4); control frames may arrive between fragments and are emitted at once.
/// Drain the results with ``drainEvents()``.
///
/// Frames that break the rules but whose length can still be read are reported and skipped; decoding goes on.
/// A 64-bit length with the top bit set, or a gap that does not fall inside a payload, loses the frame
/// boundaries: the decoder reports it and skips the rest of the direction.
///
/// ## Topics
/// - ``feed(_:at:frame:)``
/// - ``gap(length:at:)``
/// - ``end(at:)``
/// - ``drainEvents()``
public struct WebSocketFrameDecoder: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// The most payload bytes kept per message; the rest is counted, not stored.
        public var maxMessageBytes: Int
        /// RFC 6455 §5.1: `true` for client→server (frames must be masked), `false` for server→client (must
        /// not be), nil to not check.
        public var expectMasked: Bool?
        /// RFC 7692: permessage-deflate was negotiated, so RSV1 marks compressed messages (inflated here, without
        /// context takeover).
        public var permessageDeflate: Bool
        /// Parse text messages that start with `{` or `[` as JSON.
        public var parseJSON: Bool
        public var maxJSONDepth: Int

        public init(
            maxMessageBytes: Int = 1 << 20, expectMasked: Bool? = nil, permessageDeflate: Bool = false,
            parseJSON: Bool = true, maxJSONDepth: Int = JSONValue.defaultMaxDepth
        ) {
            self.maxMessageBytes = max(0, maxMessageBytes)
            self.expectMasked = expectMasked
            self.permessageDeflate = permessageDeflate
            self.parseJSON = parseJSON
            self.maxJSONDepth = maxJSONDepth
        }
    }

    private struct Frame {
        var fin: Bool
        var opcode: WebSocketOpcode
        var maskKey: (UInt8, UInt8, UInt8, UInt8)?
        var maskPosition = 0
        var remaining: Int
    }

    /// A message being assembled (a data message across frames, or one control frame).
    private struct Partial {
        var opcode: WebSocketOpcode
        var payload: [UInt8] = []
        var length = 0
        var truncated = false
        var lostBytes = 0
        var frameCount = 1
        var masked: Bool
        var compressed: Bool
        var offset: Int
        var firstByteAt: Timestamp
        var firstFrame: CaptureFrame
        var anomalies: [WebSocketAnomaly] = []

        mutating func note(_ anomaly: WebSocketAnomaly) {
            if !anomalies.contains(anomaly) { anomalies.append(anomaly) }
        }
    }

    private enum Target { case data, control, skip }

    private enum State {
        /// Collecting a frame header into `header`.
        case header
        /// Inside a frame's payload.
        case payload
        /// Frame boundaries are lost; everything else in this direction is skipped.
        case stopped
        /// `end` was seen.
        case ended
    }

    public let direction: Direction
    public let configuration: Configuration
    /// Stream offset of the next byte.
    public private(set) var offset: Int
    /// Bytes received but not decoded because the frame boundaries were lost, or after the end.
    public private(set) var skippedBytes = 0
    /// Frames decoded so far (skipped ones included).
    public private(set) var frameCount = 0

    private var state: State = .header
    private var header: [UInt8] = []
    private var headerOffset = 0
    private var headerAt = Timestamp.zero
    /// The capture frame of the current header's first byte, and of the latest bytes fed.
    private var headerFrame = CaptureFrame.unknown
    private var currentFrame = CaptureFrame.unknown
    private var frame: Frame?
    private var target: Target = .skip
    private var message: Partial?
    private var control: Partial?
    private var events: [WebSocketEvent] = []

    /// - Parameters:
    ///   - direction: which way these bytes go (copied into messages and errors).
    ///   - configuration: caps and expectations.
    ///   - startOffset: the stream offset of the first byte fed (after an HTTP upgrade, where the 101's head
    ///     or the upgrade request ended).
    public init(direction: Direction, configuration: Configuration = .init(), startOffset: Int = 0) {
        self.direction = direction
        self.configuration = configuration
        self.offset = startOffset
    }

    /// True once frame boundaries were lost (see ``WebSocketDecodingError/Code/lostSynchronisation``).
    public var isStopped: Bool { if case .stopped = state { true } else { false } }

    /// Bytes held: a partial frame header and the payload of the messages in progress (bounded by the cap).
    public var bufferedByteCount: Int {
        header.count + (message?.payload.count ?? 0) + (control?.payload.count ?? 0)
    }

    /// Returns the messages and errors decoded since the last call, in stream order.
    public mutating func drainEvents() -> [WebSocketEvent] {
        defer { events.removeAll() }
        return events
    }

    /// Decodes the next bytes of the direction.
    /// - Parameters:
    ///   - bytes: stream bytes, contiguous with the previous ones.
    ///   - at: the capture time of the segment that delivered them.
    ///   - frame: the capture frame that carried them; messages say which frames held their first and last bytes.
    public mutating func feed(_ bytes: [UInt8], at: Timestamp, frame captureFrame: CaptureFrame = .unknown) {
        currentFrame = captureFrame
        var i = 0
        while i < bytes.count {
            switch state {
            case .stopped, .ended:
                skippedBytes += bytes.count - i
                offset += bytes.count - i
                return
            case .header:
                if header.isEmpty {
                    headerOffset = offset
                    headerAt = at
                    headerFrame = captureFrame
                }
                let take = min(headerBytesNeeded() - header.count, bytes.count - i)
                header.append(contentsOf: bytes[i..<(i + take)])
                i += take
                offset += take
                if header.count == headerBytesNeeded() { parseHeader(at: at) }
            case .payload:
                guard var f = frame else { state = .header; continue }
                let take = min(f.remaining, bytes.count - i)
                consumePayload(bytes, from: i, count: take, frame: &f)
                f.remaining -= take
                frame = f
                i += take
                offset += take
                if f.remaining == 0 { finishFrame(at: at) }
            }
        }
    }

    /// Bytes of the direction were lost.
    ///
    /// A gap inside a payload keeps the frame boundaries: the message is marked incomplete and decoding
    /// continues. Anywhere else the boundaries are lost (RFC 6455 frames carry no sync marker).
    public mutating func gap(length: Int, at: Timestamp) {
        guard length > 0 else { return }
        // No TCP gap comes near this; the clamp keeps offset arithmetic far from overflow.
        let length = min(length, 1 << 48)
        switch state {
        case .stopped, .ended:
            offset = Self.add(offset, length)
            return
        case .payload:
            if var f = frame, length <= f.remaining {
                offset = Self.add(offset, length)
                f.remaining -= length
                f.maskPosition = (f.maskPosition + length) & 3
                frame = f
                switch target {
                case .data:
                    if var m = message {
                        message = nil
                        m.lostBytes += length
                        m.length = Self.add(m.length, length)
                        message = m
                    }
                case .control: control?.lostBytes += length; control?.length += length
                case .skip: break
                }
                if f.remaining == 0 { finishFrame(at: at) }
                return
            }
            if let f = frame {
                switch target {
                case .data: message?.lostBytes += f.remaining
                case .control: control?.lostBytes += f.remaining
                case .skip: break
                }
            }
        case .header:
            break
        }
        loseSynchronisation(at: at, why: "\(length) bytes lost outside a frame payload")
        offset = Self.add(offset, length)
    }

    /// The direction ended (FIN): a message still in progress is emitted as incomplete.
    public mutating func end(at: Timestamp) {
        switch state {
        case .ended, .stopped:
            break
        case .header, .payload:
            flushIncomplete(at: at)
        }
        state = .ended
    }

    // MARK: - Framing

    private func headerBytesNeeded() -> Int {
        guard header.count >= 2 else { return 2 }
        let len7 = header[1] & 0x7F
        let extended = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0)
        return 2 + extended + (header[1] & 0x80 != 0 ? 4 : 0)
    }

    private mutating func parseHeader(at: Timestamp) {
        frameCount += 1
        let b0 = header[0], b1 = header[1]
        let fin = b0 & 0x80 != 0
        let rsv = (b0 >> 4) & 0x7
        let rawOpcode = b0 & 0x0F
        let masked = b1 & 0x80 != 0
        let len7 = Int(b1 & 0x7F)
        var length = len7
        var p = 2
        var nonMinimal = false
        if len7 == 126 {
            length = Int(header[2]) << 8 | Int(header[3])
            nonMinimal = length < 126
            p = 4
        } else if len7 == 127 {
            var v: UInt64 = 0
            for k in 2..<10 { v = v << 8 | UInt64(header[k]) }
            p = 10
            guard v & (1 << 63) == 0 else {
                // RFC 6455 §5.2: the most significant bit MUST be 0.
                header.removeAll()
                events.append(.error(error(.payloadLengthTooLarge, "64-bit payload length 0x\(String(v, radix: 16)) has its top bit set")))
                loseSynchronisation(at: at, why: nil)
                return
            }
            length = Int(v)
            nonMinimal = v <= 0xFFFF
        }
        var maskKey: (UInt8, UInt8, UInt8, UInt8)?
        if masked { maskKey = (header[p], header[p + 1], header[p + 2], header[p + 3]) }
        header.removeAll(keepingCapacity: true)

        var anomalies: [WebSocketAnomaly] = []
        if nonMinimal { anomalies.append(.nonMinimalLength) }
        if let expect = configuration.expectMasked, expect != masked {
            anomalies.append(expect ? .unmaskedClientFrame : .maskedServerFrame)
        }

        target = .skip
        if let opcode = WebSocketOpcode(rawValue: rawOpcode) {
            let allowedRSV: UInt8 = configuration.permessageDeflate && (opcode == .text || opcode == .binary) ? 0x4 : 0
            if rsv & ~allowedRSV != 0 { anomalies.append(.reservedBitsSet) }
            if opcode.isControl {
                if !fin {
                    events.append(.error(error(.fragmentedControlFrame, "\(opcode) frame with FIN clear")))
                } else if length > 125 {
                    events.append(.error(error(.controlFrameTooLong, "\(opcode) frame with \(length) bytes of payload (at most 125)")))
                } else {
                    control = Partial(
                        opcode: opcode, masked: masked, compressed: false, offset: headerOffset, firstByteAt: headerAt,
                        firstFrame: headerFrame, anomalies: anomalies)
                    target = .control
                }
            } else if opcode == .continuation {
                if message == nil {
                    events.append(.error(error(.unexpectedContinuation, "continuation frame with no message in progress")))
                } else {
                    message!.frameCount += 1
                    for a in anomalies { message!.note(a) }
                    target = .data
                }
            } else {
                if let previous = message {
                    events.append(.error(error(.expectedContinuation, "\(opcode) frame while a fragmented \(previous.opcode) message was in progress")))
                    message = nil
                    emit(previous, incomplete: true, at: headerAt, endOffset: headerOffset, lastFrame: headerFrame)
                }
                message = Partial(
                    opcode: opcode, masked: masked, compressed: configuration.permessageDeflate && rsv & 0x4 != 0,
                    offset: headerOffset, firstByteAt: headerAt, firstFrame: headerFrame, anomalies: anomalies)
                target = .data
            }
        } else {
            events.append(.error(error(.reservedOpcode, "reserved opcode 0x\(String(rawOpcode, radix: 16, uppercase: true))")))
        }
        frame = Frame(fin: fin, opcode: WebSocketOpcode(rawValue: rawOpcode) ?? .binary, maskKey: maskKey, remaining: length)
        state = .payload
        if length == 0 { finishFrame(at: at) }
    }

    private mutating func consumePayload(_ bytes: [UInt8], from start: Int, count: Int, frame f: inout Frame) {
        guard count > 0 else { return }
        switch target {
        case .skip:
            f.maskPosition = (f.maskPosition + count) & 3
        case .data:
            message!.length = Self.add(message!.length, count)
            let room = configuration.maxMessageBytes - message!.payload.count
            if count > room { message!.truncated = true }
            Self.append(bytes, from: start, count: min(count, room), frame: &f, to: &message!.payload)
            f.maskPosition = (f.maskPosition + count - min(count, room)) & 3
        case .control:
            control!.length += count
            Self.append(bytes, from: start, count: count, frame: &f, to: &control!.payload)
        }
    }

    /// Appends `count` bytes, unmasking them (RFC 6455 §5.3) and advancing the mask position.
    private static func append(_ bytes: [UInt8], from start: Int, count: Int, frame f: inout Frame, to out: inout [UInt8]) {
        guard count > 0 else { return }
        guard let key = f.maskKey else {
            out.append(contentsOf: bytes[start..<(start + count)])
            return
        }
        let k = [key.0, key.1, key.2, key.3]
        var m = f.maskPosition
        out.reserveCapacity(out.count + count)
        for j in start..<(start + count) {
            out.append(bytes[j] ^ k[m])
            m = (m + 1) & 3
        }
        f.maskPosition = m
    }

    private mutating func finishFrame(at: Timestamp) {
        let fin = frame?.fin ?? true
        frame = nil
        state = .header
        switch target {
        case .skip:
            break
        case .control:
            if let c = control {
                control = nil
                emit(c, incomplete: c.lostBytes > 0, at: at)
            }
        case .data:
            if fin, let m = message {
                message = nil
                emit(m, incomplete: m.lostBytes > 0, at: at)
            }
        }
        target = .skip
    }

    private mutating func loseSynchronisation(at: Timestamp, why: String?) {
        if let why {
            events.append(.error(WebSocketDecodingError(.lostSynchronisation, direction: direction, offset: offset, why)))
        }
        flushIncomplete(at: at)
        header.removeAll()
        frame = nil
        state = .stopped
    }

    private mutating func flushIncomplete(at: Timestamp) {
        if let c = control {
            control = nil
            emit(c, incomplete: true, at: at)
        }
        if let m = message {
            message = nil
            emit(m, incomplete: true, at: at)
        }
        if !header.isEmpty {
            skippedBytes += header.count
            header.removeAll()
        }
    }

    private func error(_ code: WebSocketDecodingError.Code, _ message: String) -> WebSocketDecodingError {
        WebSocketDecodingError(code, direction: direction, offset: headerOffset, message)
    }

    private static func add(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : sum
    }

    // MARK: - Messages

    /// Emits a message; its last frame is the latest fed unless said (a message cut short by the next header).
    private mutating func emit(_ p: Partial, incomplete: Bool, at: Timestamp, endOffset: Int? = nil, lastFrame: CaptureFrame? = nil) {
        var anomalies = p.anomalies
        var payload = p.payload
        var truncated = p.truncated
        var kind: WebSocketMessage.Kind
        var text: String?
        var json: JSONValue?
        let whole = !incomplete && !p.truncated

        if p.compressed && whole {
            let (out, outcome) = HTTPInflate.inflate(
                payload + [0x00, 0x00, 0xFF, 0xFF], format: .raw, maxOutput: configuration.maxMessageBytes)
            switch outcome {
            case .complete, .inputEnded: payload = out
            case .outputCapped: payload = out; truncated = true
            case .failed: anomalies.append(.decompressionFailed)
            }
        }

        switch p.opcode {
        case .text, .continuation:
            kind = .text
            if let s = String(validating: payload, as: UTF8.self) {
                text = s
            } else {
                if whole { anomalies.append(.invalidUTF8) }
                text = String(decoding: payload, as: UTF8.self)
            }
            if configuration.parseJSON, whole, !truncated, JSONValue.looksLikeJSON(payload) {
                do {
                    json = try JSONValue.parse(payload, maxDepth: configuration.maxJSONDepth)
                } catch {
                    anomalies.append(.invalidJSON)
                }
            }
        case .binary:
            kind = .binary
        case .ping:
            kind = .ping
        case .pong:
            kind = .pong
        case .close:
            var code: WebSocketCloseCode?
            var reason = ""
            if payload.count == 1 && !incomplete {
                events.append(.error(WebSocketDecodingError(.invalidClosePayload, direction: direction, offset: p.offset, "close payload of one byte")))
            } else if payload.count >= 2 {
                let c = WebSocketCloseCode(rawValue: UInt16(payload[0]) << 8 | UInt16(payload[1]))
                code = c
                if !c.isValidOnWire { anomalies.append(.invalidCloseCode) }
                let rest = payload[2...]
                if let s = String(validating: rest, as: UTF8.self) {
                    reason = s
                } else {
                    if !incomplete { anomalies.append(.invalidUTF8) }
                    reason = String(decoding: rest, as: UTF8.self)
                }
            }
            kind = .close(code: code, reason: reason)
        }

        events.append(
            .message(
                WebSocketMessage(
                    direction: direction, kind: kind, payload: payload, length: p.length, truncated: truncated,
                    lostBytes: p.lostBytes, incomplete: incomplete, frameCount: p.frameCount, masked: p.masked,
                    compressed: p.compressed, offset: p.offset, endOffset: endOffset ?? offset, firstByteAt: p.firstByteAt,
                    lastByteAt: at, frames: FrameSpan(first: p.firstFrame, last: lastFrame ?? currentFrame), anomalies: anomalies,
                    text: text, json: json)))
    }
}

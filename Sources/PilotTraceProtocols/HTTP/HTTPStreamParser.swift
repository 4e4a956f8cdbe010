import PilotTraceWire

/// Capture times and frames of buffered stream bytes: from each mark's offset on, bytes arrived at its time, in its
/// frame.
struct HTTPTimeline: Sendable {
    struct Mark: Equatable, Sendable {
        var at: Timestamp
        var frame: CaptureFrame
    }

    private var marks = StreamMarks<Mark>()

    /// Bytes from `offset` on arrived at `at` in `frame`; lost bytes (no frame) keep the frame of the bytes before
    /// them, so that a message ending in a gap names the last frame that held any of it.
    mutating func add(offset: Int, at: Timestamp, frame: CaptureFrame? = nil) {
        marks.add(offset: offset, Mark(at: at, frame: frame ?? marks.last?.frame ?? .unknown))
    }

    /// The time of the byte at `offset` (the first mark's when the offset precedes every mark).
    func at(_ offset: Int) -> Timestamp { marks.value(at: offset)?.at ?? .zero }

    /// The frame of the byte at `offset` (the first mark's when the offset precedes every mark).
    func frame(_ offset: Int) -> CaptureFrame { marks.value(at: offset)?.frame ?? .unknown }

    /// Forgets the marks no longer needed to time bytes from `offset` on.
    mutating func prune(keeping offset: Int) { marks.prune(keeping: offset) }

    /// Forgets the marks at or after `offset` (input there is about to be fed again).
    mutating func truncate(from offset: Int) { marks.truncate(from: offset) }

    /// The runs of `start..<end` that share a time and a frame.
    func segments(from start: Int, to end: Int) -> [(range: Range<Int>, at: Timestamp, frame: CaptureFrame)] {
        marks.runs(from: start, to: end).map { ($0.range, $0.value.at, $0.value.frame) }
    }
}

/// One direction of an HTTP/1.x connection: frames messages (RFC 9112 §6), parses them, resynchronises after
/// gaps and errors, and hands over to WebSocket after an upgrade.
///
/// Stream offsets are absolute (they count lost bytes too); `buffer[0]` is at offset `base`, and bytes before
/// `read` are consumed.
struct HTTPStreamParser: Sendable {
    enum Role: Sendable { case requests, responses }

    enum BodyState: Sendable, Equatable {
        case contentLength(remaining: Int)
        case untilClose
        /// Collecting a chunk-size line starting at the offset.
        case chunkSize(lineStart: Int)
        case chunkData(remaining: Int)
        /// Expecting the CRLF after chunk data.
        case chunkDataEnd
        /// Collecting the trailer section.
        case trailers(sectionStart: Int, lineStart: Int)
    }

    enum State: Sendable {
        /// Between messages; empty lines are skipped (RFC 9112 §2.2).
        case idle
        /// Collecting a head that starts at `draft.start`.
        case head(lineStart: Int, startLineSeen: Bool)
        case body(BodyState)
        /// Looking for a start line; `candidate` is the offset of the line being tested.
        case resync(candidate: Int?)
        /// After a request that asked to leave HTTP, until the response says whether it does.
        case paused(awaiting: Int)
        case webSocket
        /// Bytes that are not HTTP (a tunnel or a protocol other than WebSocket).
        case opaque
        case ended
    }

    /// Input held while paused, replayed once the upgrade is decided.
    enum ReplayItem: Sendable {
        case data([UInt8], Timestamp, CaptureFrame)
        case gap(Int, Timestamp)
        case end(Timestamp, fin: Bool)
    }

    /// The message being decoded.
    struct Draft: Sendable {
        var start: Int
        var firstByteAt: Timestamp
        var firstFrame: CaptureFrame
        var requestHead: HTTPRequestHead?
        var responseHead: HTTPResponseHead?
        var requestIndex: Int?
        var pairedRequest: HTTPPendingRequest?
        var framing: HTTPBodyFraming = .none
        var body: [UInt8] = []
        var bodyLength = 0
        var truncated = false
        var lostBytes = 0
        var trailers = HTTPHeaders()
        var chunkExtensions: [String] = []
        var anomalies: [HTTPAnomaly] = []
        var keepAlive = true

        init(start: Int, firstByteAt: Timestamp, firstFrame: CaptureFrame) {
            self.start = start
            self.firstByteAt = firstByteAt
            self.firstFrame = firstFrame
        }
    }

    let role: Role
    let direction: Direction
    let configuration: HTTPDecoderConfiguration

    private var buffer: [UInt8] = []
    /// Capacity an emptied buffer keeps: enough for typical heads, not a body (connections linger after FIN, and
    /// thousands of them holding their largest message would dominate memory).
    static let retainedCapacity = 2048
    private var base = 0
    private var read = 0
    private var scan = 0
    private var timeline = HTTPTimeline()
    private(set) var state: State = .idle
    private var draft: Draft?
    private var webSocket: WebSocketFrameDecoder?
    private var replay: [ReplayItem] = []
    private var replayBytes = 0
    /// The stream offset of the first byte held in `replay`.
    private var replayStart = 0
    private var resyncSkipped = 0
    private(set) var statistics = HTTPDirectionStatistics()

    init(role: Role, configuration: HTTPDecoderConfiguration) {
        self.role = role
        self.direction = role == .requests ? .toServer : .toClient
        self.configuration = configuration
    }

    private var end: Int { base + buffer.count }

    var bufferedByteCount: Int {
        (end - read) + (draft.map { $0.body.count } ?? 0) + replayBytes + (webSocket?.bufferedByteCount ?? 0)
    }

    /// The direction ended and holds nothing: no input, no message in progress, nothing it could still emit.
    var isEnded: Bool {
        guard case .ended = state else { return false }
        return read >= end && draft == nil && webSocket == nil
    }

    var awaitingDecision: Int? {
        if case .paused(let index) = state { return index }
        return nil
    }

    // MARK: - Input

    mutating func feed(_ bytes: [UInt8], at: Timestamp, frame: CaptureFrame, context: inout HTTPConnectionContext) {
        catchUp(context: &context)
        statistics.bytes += bytes.count
        switch state {
        case .ended:
            statistics.skippedBytes += bytes.count
            return
        case .paused:
            replay.append(.data(bytes, at, frame))
            replayBytes += bytes.count
            if replayBytes > configuration.maxHeaderSectionBytes { abandonWaiting(context: &context) }
            return
        case .webSocket:
            statistics.upgradedBytes += bytes.count
            webSocket?.feed(bytes, at: at, frame: frame)
            advance(by: bytes.count)
            drainWebSocket(context: &context)
            return
        case .opaque:
            statistics.upgradedBytes += bytes.count
            advance(by: bytes.count)
            return
        default:
            break
        }
        timeline.add(offset: end, at: at, frame: frame)
        buffer.append(contentsOf: bytes)
        run(context: &context)
        compact()
    }

    mutating func gap(length: Int, at: Timestamp, context: inout HTTPConnectionContext) {
        catchUp(context: &context)
        statistics.lostBytes += length
        switch state {
        case .ended:
            return
        case .paused:
            replay.append(.gap(length, at))
            return
        case .webSocket:
            webSocket?.gap(length: length, at: at)
            advance(by: length)
            drainWebSocket(context: &context)
            return
        case .opaque:
            advance(by: length)
            return
        case .idle:
            statistics.skippedBytes += end - read
        case .head:
            emitPartialHead(reason: .gap, context: &context)
        case .body(let body):
            switch body {
            case .untilClose:
                draft!.lostBytes += length
                draft!.bodyLength = Self.add(draft!.bodyLength, length)
                timeline.add(offset: end, at: at)
                advance(by: length)
                return
            case .contentLength(let remaining), .chunkData(let remaining):
                let inside = min(length, remaining)
                draft!.lostBytes += inside
                draft!.bodyLength = Self.add(draft!.bodyLength, inside)
                if length <= remaining {
                    // The gap falls inside the body: the framing holds.
                    timeline.add(offset: end, at: at)
                    advance(by: length)
                    let left = remaining - length
                    if case .contentLength = body {
                        state = .body(.contentLength(remaining: left))
                        if left == 0 { completeMessage(at: at, context: &context) }
                    } else {
                        state = .body(left == 0 ? .chunkDataEnd : .chunkData(remaining: left))
                    }
                    return
                }
                emitIncomplete(.gap, missing: nil, at: at, endOffset: Self.add(read, remaining), context: &context)
            default:
                emitIncomplete(.gap, missing: nil, at: at, context: &context)
            }
        case .resync:
            resyncSkipped += end - read
            statistics.skippedBytes += end - read
        }
        // Framing is lost: resume at a start line, trying the first byte after the gap first.
        read = end
        advance(by: length)
        timeline.add(offset: base, at: at)
        noteMaybeLost(context: &context)
        state = .resync(candidate: base)
    }

    /// The capture starts inside this direction's stream: skip to the next start line, as after a gap.
    mutating func startMidstream() {
        if case .idle = state, read == base, end == base { state = .resync(candidate: base) }
    }

    mutating func end(at: Timestamp, fin: Bool, context: inout HTTPConnectionContext) {
        catchUp(context: &context)
        switch state {
        case .ended:
            return
        case .paused:
            replay.append(.end(at, fin: fin))
            return
        case .webSocket:
            webSocket?.end(at: at)
            drainWebSocket(context: &context)
        case .opaque, .idle:
            statistics.skippedBytes += end - read
        case .head:
            emitPartialHead(reason: .endOfStream, context: &context)
        case .body(.untilClose) where fin:
            completeMessage(at: timeline.at(read - 1), context: &context)
        case .body(let body):
            var missing: Int?
            if case .contentLength(let r) = body { missing = r }
            emitIncomplete(.endOfStream, missing: missing, at: timeline.at(max(read - 1, 0)), context: &context)
        case .resync:
            statistics.skippedBytes += end - read
        }
        buffer.removeAll()
        base = max(end, read)
        read = base
        state = .ended
    }

    /// Applies the response side's decision about the upgrade this side is paused for, then replays the input
    /// held meanwhile.
    mutating func resume(with decision: HTTPUpgradeDecision, context: inout HTTPConnectionContext) {
        guard case .paused = state else { return }
        // Everything from `replayStart` on is in `replay`: rewind to it.
        buffer.removeAll(keepingCapacity: buffer.capacity <= Self.retainedCapacity)
        base = replayStart
        read = replayStart
        scan = replayStart
        timeline.truncate(from: replayStart)
        switch decision {
        case .stayHTTP:
            state = .idle
        case .webSocket(var config):
            config.expectMasked = true
            webSocket = WebSocketFrameDecoder(direction: direction, configuration: config, startOffset: read)
            state = .webSocket
        case .opaque:
            state = .opaque
        }
        let items = replay
        replay = []
        replayBytes = 0
        statistics.bytes -= items.reduce(0) { if case .data(let b, _, _) = $1 { $0 + b.count } else { $0 } }
        statistics.lostBytes -= items.reduce(0) { if case .gap(let n, _) = $1 { $0 + n } else { $0 } }
        for item in items {
            switch item {
            case .data(let bytes, let at, let frame): feed(bytes, at: at, frame: frame, context: &context)
            case .gap(let n, let at): gap(length: n, at: at, context: &context)
            case .end(let at, let fin): end(at: at, fin: fin, context: &context)
            }
        }
    }

    /// Too much input arrived while waiting for an upgrade decision: carry on as HTTP.
    private mutating func abandonWaiting(context: inout HTTPConnectionContext) {
        if case .paused(let index) = state { context.dropDecision(for: index) }
        resume(with: .stayHTTP, context: &context)
    }

    /// Moves past `n` bytes that never enter the buffer (lost, or handed to another decoder); called only
    /// when everything buffered was consumed.
    private mutating func advance(by n: Int) {
        let from = max(read, end)
        buffer.removeAll(keepingCapacity: buffer.capacity <= Self.retainedCapacity)
        base = Self.add(from, n)
        read = base
        scan = base
    }

    private mutating func compact() {
        let consumed = read - base
        guard consumed > 0 else { return }
        if read == end {
            buffer.removeAll(keepingCapacity: buffer.capacity <= Self.retainedCapacity)
        } else if consumed >= 4096 || consumed * 2 >= buffer.count {
            buffer.removeFirst(consumed)
        } else {
            return
        }
        base = read
        timeline.prune(keeping: read - 1)
    }

    private func byte(_ offset: Int) -> UInt8 { buffer[offset - base] }
    private func bytes(_ range: Range<Int>) -> ArraySlice<UInt8> { buffer[(range.lowerBound - base)..<(range.upperBound - base)] }

    private static func add(_ a: Int, _ b: Int) -> Int {
        let (s, o) = a.addingReportingOverflow(b)
        return o ? Int.max : s
    }

    // MARK: - The state machine

    private mutating func run(context: inout HTTPConnectionContext, honourYield: Bool = true) {
        // Every step either consumes bytes or changes state towards consuming them; the bound is a backstop.
        // It also stops when an upgrade decision was made, so that the other direction can act on it before
        // this one goes on (see `HTTPConnectionDecoder.drive()`).
        var steps = 0
        while steps < 1_000_000, !(honourYield && context.yieldRequested), step(context: &context) { steps += 1 }
    }

    /// Processes bytes left over by a run that stopped for an upgrade decision, before new input (which must
    /// come after them) is handled.
    private mutating func catchUp(context: inout HTTPConnectionContext) {
        guard read < end else { return }
        run(context: &context, honourYield: false)
    }

    /// Goes on with the bytes already buffered (after a stop for an upgrade decision).
    mutating func continueRun(context: inout HTTPConnectionContext) {
        guard read < end || draft != nil else { return }
        run(context: &context)
        compact()
    }

    /// Does one thing with the buffered bytes; false when nothing more can be done until more arrive.
    private mutating func step(context: inout HTTPConnectionContext) -> Bool {
        switch state {
        case .idle:
            return stepIdle()
        case .head(let lineStart, let startLineSeen):
            return stepHead(lineStart: lineStart, startLineSeen: startLineSeen, context: &context)
        case .body(let body):
            return stepBody(body, context: &context)
        case .resync(let candidate):
            return stepResync(candidate: candidate, context: &context)
        case .paused:
            if read < end {
                for (range, at, frame) in timeline.segments(from: read, to: end) {
                    replay.append(.data(Array(bytes(range)), at, frame))
                    replayBytes += range.count
                }
                read = end
            }
            return false
        case .webSocket:
            if read < end {
                statistics.upgradedBytes += end - read
                for (range, at, frame) in timeline.segments(from: read, to: end) {
                    let chunk = Array(bytes(range))
                    webSocket?.feed(chunk, at: at, frame: frame)
                }
                read = end
                drainWebSocket(context: &context)
            }
            return false
        case .opaque:
            statistics.upgradedBytes += end - read
            read = end
            return false
        case .ended:
            statistics.skippedBytes += end - read
            read = end
            return false
        }
    }

    private mutating func stepIdle() -> Bool {
        guard read < end else { return false }
        while read < end, byte(read) == HTTPHeadParser.cr || byte(read) == HTTPHeadParser.lf { read += 1 }
        guard read < end else { return false }
        draft = Draft(start: read, firstByteAt: timeline.at(read), firstFrame: timeline.frame(read))
        scan = read
        state = .head(lineStart: read, startLineSeen: false)
        return true
    }

    private mutating func stepHead(lineStart: Int, startLineSeen: Bool, context: inout HTTPConnectionContext) -> Bool {
        let start = draft!.start
        var lineStart = lineStart
        var startLineSeen = startLineSeen
        while scan < end {
            if scan - start >= configuration.maxHeaderSectionBytes {
                return failHead(.headerSectionTooLarge, "header section longer than \(configuration.maxHeaderSectionBytes) bytes", context: &context)
            }
            if byte(scan) == HTTPHeadParser.lf {
                var line = bytes(lineStart..<scan)
                if line.last == HTTPHeadParser.cr { line = line.dropLast() }
                if !startLineSeen {
                    if let failure = validateStartLine(line) {
                        return failHead(failure.code, failure.message, context: &context)
                    }
                    startLineSeen = true
                } else if line.isEmpty {
                    scan += 1
                    completeHead(end: scan, context: &context)
                    return true
                }
                lineStart = scan + 1
            }
            scan += 1
        }
        if !startLineSeen, let failure = rejectStartLinePrefix(bytes(start..<min(end, start + 16))) {
            return failHead(failure.code, failure.message, context: &context)
        }
        state = .head(lineStart: lineStart, startLineSeen: startLineSeen)
        return false
    }

    /// Checks a complete start line. The prefix check comes first so that the verdict does not depend on how
    /// the bytes were split (byte-by-byte input meets the prefix check before the line ends).
    private func validateStartLine(_ line: ArraySlice<UInt8>) -> HTTPHeadParser.Failure? {
        let start = line.startIndex + base
        if let failure = rejectStartLinePrefix(bytes(start..<min(end, start + 16))) { return failure }
        switch role {
        case .requests:
            if case .failure(let f) = HTTPHeadParser.requestLine(line) { return f }
        case .responses:
            if case .failure(let f) = HTTPHeadParser.statusLine(line) { return f }
        }
        return nil
    }

    /// Rejects a start line early, from its first bytes, so that binary garbage does not fill the buffer.
    private func rejectStartLinePrefix(_ p: ArraySlice<UInt8>) -> HTTPHeadParser.Failure? {
        switch role {
        case .requests:
            for b in p {
                if b == HTTPHeadParser.sp { return nil }
                if !HTTPHeadParser.isTChar(b) {
                    return HTTPHeadParser.Failure(code: .invalidRequestLine, message: "method is not a token")
                }
            }
        case .responses:
            if !p.prefix(5).elementsEqual("HTTP/".utf8.prefix(p.count)) {
                return HTTPHeadParser.Failure(code: .invalidStatusLine, message: "response does not start with HTTP/")
            }
        }
        return nil
    }

    /// A head that cannot be parsed: report it, skip it, look for the next start line after its first byte.
    private mutating func failHead(_ code: HTTPDecodingError.Code, _ message: String, context: inout HTTPConnectionContext) -> Bool {
        let start = draft!.start
        report(code, at: start, messageOffset: start, message, context: &context)
        draft = nil
        startResync(from: start, candidate: nil, context: &context)
        scan = start + 1
        return true
    }

    private mutating func startResync(from offset: Int, candidate: Int?, context: inout HTTPConnectionContext) {
        read = offset
        scan = offset
        noteMaybeLost(context: &context)
        state = .resync(candidate: candidate)
    }

    private mutating func noteMaybeLost(context: inout HTTPConnectionContext) {
        switch role {
        case .requests: context.noteRequestsMayBeLost()
        case .responses: context.responsesMayBeLost = true
        }
    }

    private mutating func report(_ code: HTTPDecodingError.Code, at offset: Int, messageOffset: Int, _ message: String, context: inout HTTPConnectionContext) {
        statistics.errors += 1
        context.events.append(.error(HTTPDecodingError(code, direction: direction, offset: offset, messageOffset: messageOffset, message)))
    }

    private mutating func completeHead(end headEnd: Int, context: inout HTTPConnectionContext) {
        var d = draft!
        var anomalies: [HTTPAnomaly] = []
        let lines = HTTPHeadParser.lines(bytes(d.start..<headEnd), anomalies: &anomalies)
        let headers = HTTPHeadParser.fields(lines.dropFirst(), anomalies: &anomalies)
        read = headEnd
        scan = headEnd
        var framing: Result<HTTPBodyFraming, HTTPHeadParser.Failure>
        switch role {
        case .requests:
            guard case .success(let line) = HTTPHeadParser.requestLine(lines[0]) else {
                _ = failHead(.invalidRequestLine, "unparseable request line", context: &context)
                return
            }
            if line.irregular { anomalies.append(.irregularStartLine) }
            let head = HTTPRequestHead(method: line.method, target: line.target, version: line.version, headers: headers)
            d.requestHead = head
            d.requestIndex = context.registerRequest(head, at: d.firstByteAt)
            d.keepAlive = HTTPHeadParser.keepAlive(version: head.version, headers: headers)
            framing = Self.requestFraming(head, anomalies: &anomalies)
        case .responses:
            guard case .success(let line) = HTTPHeadParser.statusLine(lines[0]) else {
                _ = failHead(.invalidStatusLine, "unparseable status line", context: &context)
                return
            }
            let head = HTTPResponseHead(version: line.version, status: line.status, reason: line.reason, headers: headers)
            d.responseHead = head
            let request = context.pairResponse(status: head.status, at: d.firstByteAt, anomalies: &anomalies)
            d.pairedRequest = request
            d.requestIndex = request?.index
            d.keepAlive = HTTPHeadParser.keepAlive(version: head.version, headers: headers)
            framing = Self.responseFraming(head, request: request, anomalies: &anomalies)
        }
        d.anomalies = anomalies
        draft = d
        switch framing {
        case .failure(let f):
            report(f.code, at: d.start, messageOffset: d.start, f.message, context: &context)
            emitIncomplete(.malformed, missing: nil, at: timeline.at(headEnd - 1), context: &context)
            startResync(from: headEnd, candidate: headEnd, context: &context)
        case .success(let framing):
            draft!.framing = framing
            switch framing {
            case .none, .contentLength(0), .tunnel:
                completeMessage(at: timeline.at(headEnd - 1), context: &context)
            case .contentLength(let n):
                state = .body(.contentLength(remaining: n))
            case .chunked:
                state = .body(.chunkSize(lineStart: headEnd))
            case .untilClose:
                state = .body(.untilClose)
            }
        }
    }

    /// RFC 9112 §6.3 for requests: chunked if Transfer-Encoding ends in chunked, else Content-Length, else no
    /// body.
    static func requestFraming(_ head: HTTPRequestHead, anomalies: inout [HTTPAnomaly]) -> Result<HTTPBodyFraming, HTTPHeadParser.Failure> {
        let te = head.headers.tokens("Transfer-Encoding")
        if !te.isEmpty {
            if head.headers.contains("Content-Length") { anomalies.append(.transferEncodingWithContentLength) }
            if head.version == .http10 { anomalies.append(.transferEncodingInHTTP10) }
            guard te.last == "chunked" else {
                return .failure(
                    .init(code: .unsupportedTransferEncoding, message: "request Transfer-Encoding '\(te.joined(separator: ", "))' does not end in chunked"))
            }
            return .success(.chunked)
        }
        switch HTTPHeadParser.contentLength(head.headers, anomalies: &anomalies) {
        case .failure(let f): return .failure(f)
        case .success(let n?): return .success(.contentLength(n))
        case .success(nil): return .success(.none)
        }
    }

    /// RFC 9112 §6.3 for responses.
    static func responseFraming(
        _ head: HTTPResponseHead, request: HTTPPendingRequest?, anomalies: inout [HTTPAnomaly]
    ) -> Result<HTTPBodyFraming, HTTPHeadParser.Failure> {
        let status = head.status
        if status == 101 { return .success(.tunnel) }
        if let request, request.isConnect, (200...299).contains(status) { return .success(.tunnel) }
        if request?.method == "HEAD" || head.isInformational || status == 204 || status == 304 { return .success(.none) }
        let te = head.headers.tokens("Transfer-Encoding")
        if !te.isEmpty {
            if head.headers.contains("Content-Length") { anomalies.append(.transferEncodingWithContentLength) }
            if head.version == .http10 { anomalies.append(.transferEncodingInHTTP10) }
            return .success(te.last == "chunked" ? .chunked : .untilClose)
        }
        switch HTTPHeadParser.contentLength(head.headers, anomalies: &anomalies) {
        case .failure(let f): return .failure(f)
        case .success(let n?): return .success(.contentLength(n))
        case .success(nil): return .success(.untilClose)
        }
    }

    private mutating func takeBody(_ n: Int) {
        guard n > 0 else { return }
        draft!.bodyLength = Self.add(draft!.bodyLength, n)
        let room = configuration.maxBodyBytes - draft!.body.count
        if n > room { draft!.truncated = true }
        let keep = min(n, room)
        if keep > 0 { draft!.body.append(contentsOf: bytes(read..<(read + keep))) }
        read += n
    }

    private mutating func stepBody(_ body: BodyState, context: inout HTTPConnectionContext) -> Bool {
        switch body {
        case .contentLength(let remaining):
            guard read < end else { return false }
            let n = min(remaining, end - read)
            takeBody(n)
            if remaining == n {
                completeMessage(at: timeline.at(read - 1), context: &context)
            } else {
                state = .body(.contentLength(remaining: remaining - n))
            }
            return true
        case .untilClose:
            guard read < end else { return false }
            takeBody(end - read)
            return false
        case .chunkData(let remaining):
            guard read < end else { return false }
            let n = min(remaining, end - read)
            takeBody(n)
            state = .body(remaining == n ? .chunkDataEnd : .chunkData(remaining: remaining - n))
            return true
        case .chunkDataEnd:
            guard read < end else { return false }
            if byte(read) == HTTPHeadParser.lf {
                HTTPHeadParser.note(.bareLineFeed, in: &draft!.anomalies)
                read += 1
            } else if byte(read) == HTTPHeadParser.cr {
                guard read + 1 < end else { return false }
                guard byte(read + 1) == HTTPHeadParser.lf else {
                    return failBody(.missingChunkTerminator, "chunk data not followed by CRLF", context: &context)
                }
                read += 2
            } else {
                return failBody(.missingChunkTerminator, "chunk data not followed by CRLF", context: &context)
            }
            scan = read
            state = .body(.chunkSize(lineStart: read))
            return true
        case .chunkSize(let lineStart):
            if scan < lineStart { scan = lineStart }
            if scan == lineStart, scan < end, HTTPHeadParser.hexValue(byte(scan)) == nil {
                return failBody(.invalidChunkSize, "chunk-size line does not start with a hex digit", context: &context)
            }
            while scan < end, byte(scan) != HTTPHeadParser.lf {
                scan += 1
                if scan - lineStart > configuration.maxChunkLineBytes {
                    return failBody(.chunkLineTooLong, "chunk-size line longer than \(configuration.maxChunkLineBytes) bytes", context: &context)
                }
            }
            guard scan < end else { return false }
            var line = bytes(lineStart..<scan)
            if line.last == HTTPHeadParser.cr {
                line = line.dropLast()
            } else {
                HTTPHeadParser.note(.bareLineFeed, in: &draft!.anomalies)
            }
            switch HTTPHeadParser.chunkLine(line) {
            case .failure(let f):
                return failBody(f.code, f.message, context: &context)
            case .size(let size, let extensions):
                if let extensions, draft!.chunkExtensions.count < 64 { draft!.chunkExtensions.append(extensions) }
                read = scan + 1
                scan = read
                state = .body(size == 0 ? .trailers(sectionStart: read, lineStart: read) : .chunkData(remaining: size))
                return true
            }
        case .trailers(let sectionStart, var lineStart):
            while scan < end {
                if scan - sectionStart >= configuration.maxHeaderSectionBytes {
                    return failBody(.headerSectionTooLarge, "trailer section longer than \(configuration.maxHeaderSectionBytes) bytes", context: &context)
                }
                if byte(scan) == HTTPHeadParser.lf {
                    let isEmpty = scan == lineStart || (scan == lineStart + 1 && byte(lineStart) == HTTPHeadParser.cr)
                    if isEmpty {
                        var anomalies = draft!.anomalies
                        let lines = HTTPHeadParser.lines(bytes(sectionStart..<lineStart), anomalies: &anomalies)
                        draft!.trailers = HTTPHeadParser.fields(lines[...], anomalies: &anomalies)
                        draft!.anomalies = anomalies
                        read = scan + 1
                        scan = read
                        completeMessage(at: timeline.at(read - 1), context: &context)
                        return true
                    }
                    lineStart = scan + 1
                }
                scan += 1
            }
            state = .body(.trailers(sectionStart: sectionStart, lineStart: lineStart))
            return false
        }
    }

    /// A body whose framing broke: report it, emit the message incomplete, resynchronise from here.
    private mutating func failBody(_ code: HTTPDecodingError.Code, _ message: String, context: inout HTTPConnectionContext) -> Bool {
        let at = read
        report(code, at: at, messageOffset: draft!.start, message, context: &context)
        emitIncomplete(.malformed, missing: nil, at: timeline.at(max(read - 1, 0)), context: &context)
        startResync(from: at, candidate: at, context: &context)
        return true
    }

    private mutating func stepResync(candidate: Int?, context: inout HTTPConnectionContext) -> Bool {
        var candidate = candidate
        let limit = HTTPConnectionDecoder.maxDetectableLineBytes
        while true {
            if let c = candidate {
                let prefix = bytes(c..<end)
                let verdict =
                    role == .requests
                    ? HTTPConnectionDecoder.matchRequestLine(prefix, maxLineBytes: limit)
                    : HTTPConnectionDecoder.matchStatusLine(prefix, maxLineBytes: limit)
                switch verdict {
                case true?:
                    skip(to: c)
                    statistics.resynchronisations += 1
                    context.events.append(.resynchronised(HTTPResync(direction: direction, offset: c, skippedBytes: resyncSkipped, at: timeline.at(c))))
                    resyncSkipped = 0
                    state = .idle
                    return true
                case nil:
                    skip(to: c)
                    state = .resync(candidate: c)
                    return false
                case false?:
                    candidate = nil
                    if scan < c { scan = c }
                }
            }
            while scan < end, byte(scan) != HTTPHeadParser.lf { scan += 1 }
            guard scan < end else {
                skip(to: end)
                state = .resync(candidate: nil)
                return false
            }
            scan += 1
            candidate = scan
        }
    }

    private mutating func skip(to offset: Int) {
        guard offset > read else { return }
        resyncSkipped += offset - read
        statistics.skippedBytes += offset - read
        read = offset
    }

    private mutating func drainWebSocket(context: inout HTTPConnectionContext) {
        guard var ws = webSocket else { return }
        webSocket = nil
        for event in ws.drainEvents() {
            switch event {
            case .message(let m): context.events.append(.webSocket(m))
            case .error(let e): context.events.append(.webSocketError(e))
            }
        }
        webSocket = ws
    }

    // MARK: - Emitting messages

    /// Emits what a cut-short head holds, when its start line is complete; otherwise its bytes count as skipped.
    private mutating func emitPartialHead(reason: HTTPIncompleteness.Reason, context: inout HTTPConnectionContext) {
        guard var d = draft else { return }
        draft = nil
        var anomalies: [HTTPAnomaly] = []
        let lines = HTTPHeadParser.lines(bytes(d.start..<end), anomalies: &anomalies)
        let lastByteAt = timeline.at(max(end - 1, d.start))
        let span = HTTPMessageSpan(
            offset: d.start, length: end - d.start, firstByteAt: d.firstByteAt, lastByteAt: lastByteAt,
            frames: FrameSpan(first: d.firstFrame, last: timeline.frame(max(end - 1, d.start))))
        let incomplete = HTTPIncompleteness(reason: reason, lostBytes: 0)
        guard let first = lines.first else {
            statistics.skippedBytes += end - d.start
            read = end
            return
        }
        let headers = HTTPHeadParser.fields(lines.dropFirst(), anomalies: &anomalies)
        switch role {
        case .requests:
            guard case .success(let line) = HTTPHeadParser.requestLine(first) else { break }
            let head = HTTPRequestHead(method: line.method, target: line.target, version: line.version, headers: headers)
            let index = context.registerRequest(head, at: d.firstByteAt)
            d.anomalies = anomalies
            statistics.messages += 1
            statistics.incompleteMessages += 1
            context.events.append(
                .request(
                    HTTPRequest(
                        index: index, head: head, body: HTTPBody(), trailers: [:], chunkExtensions: [], framing: .none,
                        span: span, keepAlive: HTTPHeadParser.keepAlive(version: head.version, headers: headers),
                        anomalies: anomalies, incomplete: incomplete)))
            read = end
            return
        case .responses:
            guard case .success(let line) = HTTPHeadParser.statusLine(first) else { break }
            let head = HTTPResponseHead(version: line.version, status: line.status, reason: line.reason, headers: headers)
            let request = context.pairResponse(status: head.status, at: d.firstByteAt, anomalies: &anomalies)
            statistics.messages += 1
            statistics.incompleteMessages += 1
            context.events.append(
                .response(
                    HTTPResponse(
                        requestIndex: request?.index, requestMethod: request?.method, head: head, body: HTTPBody(),
                        trailers: [:], chunkExtensions: [], framing: .none, span: span,
                        keepAlive: HTTPHeadParser.keepAlive(version: head.version, headers: headers),
                        anomalies: anomalies, incomplete: incomplete)))
            read = end
            return
        }
        statistics.skippedBytes += end - d.start
        read = end
    }

    private mutating func emitIncomplete(
        _ reason: HTTPIncompleteness.Reason, missing: Int?, at: Timestamp, endOffset: Int? = nil, context: inout HTTPConnectionContext
    ) {
        guard let d = draft else { return }
        completeMessage(
            at: at, incomplete: HTTPIncompleteness(reason: reason, lostBytes: d.lostBytes, missingBodyBytes: missing), endOffset: endOffset, context: &context)
    }

    /// Emits the draft and decides what follows it (the next message, a pause for an upgrade, WebSocket).
    private mutating func completeMessage(
        at lastByteAt: Timestamp, incomplete: HTTPIncompleteness? = nil, endOffset: Int? = nil, context: inout HTTPConnectionContext
    ) {
        guard let d = draft else { return }
        draft = nil
        state = .idle
        var incomplete = incomplete
        if incomplete == nil, d.lostBytes > 0 { incomplete = HTTPIncompleteness(reason: .gap, lostBytes: d.lostBytes) }
        let messageEnd = endOffset ?? read
        let span = HTTPMessageSpan(
            offset: d.start, length: max(0, messageEnd - d.start), firstByteAt: d.firstByteAt, lastByteAt: lastByteAt,
            frames: FrameSpan(first: d.firstFrame, last: timeline.frame(max(messageEnd - 1, d.start))))
        statistics.messages += 1
        if incomplete != nil { statistics.incompleteMessages += 1 }
        var anomalies = d.anomalies
        let headers = d.requestHead?.headers ?? d.responseHead?.headers ?? [:]
        let body = makeBody(d, headers: headers, complete: incomplete == nil, anomalies: &anomalies)

        if let head = d.requestHead {
            let index = d.requestIndex ?? 0
            context.events.append(
                .request(
                    HTTPRequest(
                        index: index, head: head, body: body, trailers: d.trailers, chunkExtensions: d.chunkExtensions,
                        framing: d.framing, span: span, keepAlive: d.keepAlive, anomalies: anomalies,
                        incomplete: incomplete)))
            if !head.headers.tokens("Upgrade").isEmpty || head.method == "CONNECT", incomplete == nil {
                context.upgradeRequestEnds[index] = read
                pause(for: index, context: &context)
            }
        } else if let head = d.responseHead {
            context.events.append(
                .response(
                    HTTPResponse(
                        requestIndex: d.requestIndex, requestMethod: d.pairedRequest?.method, head: head, body: body,
                        trailers: d.trailers, chunkExtensions: d.chunkExtensions, framing: d.framing, span: span,
                        keepAlive: d.keepAlive, anomalies: anomalies, incomplete: incomplete)))
            if d.framing == .tunnel, incomplete == nil { switchProtocols(after: head, request: d.pairedRequest, at: lastByteAt, context: &context) }
        }
    }

    private mutating func pause(for index: Int, context: inout HTTPConnectionContext) {
        state = .paused(awaiting: index)
        replayStart = read
        // Bytes already buffered after the request are held with the rest (see `step`).
    }

    /// After a 101 (or a CONNECT's 2xx): record the upgrade, tell the request side, and switch this side.
    private mutating func switchProtocols(after head: HTTPResponseHead, request: HTTPPendingRequest?, at: Timestamp, context: inout HTTPConnectionContext) {
        let name: String
        if head.status == 101 {
            name = request?.upgradeTokens.first ?? head.headers.tokens("Upgrade").first ?? "unknown"
        } else {
            name = "connect"
        }
        let extensions = head.headers["Sec-WebSocket-Extensions"]
        let upgrade = HTTPUpgrade(
            protocolName: name, requestIndex: request?.index, target: request?.target,
            subprotocol: head.headers["Sec-WebSocket-Protocol"] ?? request?.webSocketProtocol, extensions: extensions,
            at: at, toServerOffset: request.flatMap { context.upgradeRequestEnds[$0.index] }, toClientOffset: read)
        context.upgrade = upgrade
        context.events.append(.upgrade(upgrade))
        let decision: HTTPUpgradeDecision
        if upgrade.isWebSocket {
            let deflate = head.headers.tokens("Sec-WebSocket-Extensions").contains { $0.hasPrefix("permessage-deflate") }
            decision = .webSocket(
                WebSocketFrameDecoder.Configuration(
                    maxMessageBytes: configuration.maxWebSocketMessageBytes, expectMasked: nil,
                    permessageDeflate: deflate, parseJSON: configuration.parseJSON, maxJSONDepth: configuration.maxJSONDepth))
        } else {
            decision = .opaque
        }
        context.decide(decision, for: request?.index)
        switch decision {
        case .webSocket(var config):
            config.expectMasked = false
            webSocket = WebSocketFrameDecoder(direction: direction, configuration: config, startOffset: read)
            state = .webSocket
        case .opaque:
            state = .opaque
        case .stayHTTP:
            break
        }
    }

    private func makeBody(_ d: Draft, headers: HTTPHeaders, complete: Bool, anomalies: inout [HTTPAnomaly]) -> HTTPBody {
        var body = HTTPBody(bytes: d.body, length: d.bodyLength, truncated: d.truncated)
        body.contentCodings = headers.tokens("Content-Encoding").filter { $0 != "identity" }
        guard d.bodyLength > 0 else { return body }
        guard complete else {
            if !body.contentCodings.isEmpty { body.decodingFailure = "body incomplete" }
            return body
        }
        if !body.contentCodings.isEmpty, configuration.decodeContentEncoding {
            let (decoded, truncated, failure) = HTTPInflate.decode(
                body.bytes, codings: body.contentCodings, rawTruncated: body.truncated,
                maxOutput: configuration.maxDecodedBodyBytes)
            body.decoded = decoded
            body.decodedTruncated = truncated
            body.decodingFailure = failure
            if failure != nil { HTTPHeadParser.note(.contentDecodingFailed, in: &anomalies) }
        }
        guard configuration.parseJSON else { return body }
        let content: [UInt8]?
        let contentTruncated: Bool
        if body.contentCodings.isEmpty {
            content = body.bytes
            contentTruncated = body.truncated
        } else {
            content = body.decoded
            contentTruncated = body.decodedTruncated
        }
        guard let content, !contentTruncated else { return body }
        if Self.isJSONMediaType(headers["Content-Type"]) {
            do {
                body.json = try JSONValue.parse(content, maxDepth: configuration.maxJSONDepth)
            } catch {
                body.jsonError = error
                HTTPHeadParser.note(.invalidJSONBody, in: &anomalies)
            }
        } else if JSONValue.looksLikeJSON(content) {
            body.json = try? JSONValue.parse(content, maxDepth: configuration.maxJSONDepth)
        }
        return body
    }

    /// RFC 8259 §11 and RFC 6839 §3.1: `application/json` and `+json` media types.
    static func isJSONMediaType(_ contentType: String?) -> Bool {
        guard let mediaType = mediaType(contentType) else { return false }
        return mediaType == "application/json" || mediaType == "text/json" || mediaType.hasSuffix("+json")
    }

    /// RFC 9110 §8.3.1: the type/subtype of a Content-Type, lowercased, without parameters.
    static func mediaType(_ contentType: String?) -> String? {
        guard let contentType else { return nil }
        return HTTPHeaders.trim(contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").lowercased()
    }
}

import PilotTraceWire

/// Limits and options of an ``HTTPConnectionDecoder``.
public struct HTTPDecoderConfiguration: Sendable, Hashable {
    /// The longest header section (start line, fields, empty line) or trailer section accepted.
    public var maxHeaderSectionBytes: Int
    /// The most body bytes stored per message; the rest is counted, not kept.
    public var maxBodyBytes: Int
    /// The most bytes kept of a body with its content codings undone.
    public var maxDecodedBodyBytes: Int
    /// The longest chunk-size line (size and extensions) accepted.
    public var maxChunkLineBytes: Int
    /// Requests still waiting for a response beyond this number are forgotten, oldest first.
    public var maxPendingRequests: Int
    /// Undo gzip, x-gzip and deflate content codings.
    public var decodeContentEncoding: Bool
    /// Parse JSON bodies (media type `application/json`, `*/*+json`, or a body starting with `{` or `[`).
    public var parseJSON: Bool
    public var maxJSONDepth: Int
    /// The per-message cap of the WebSocket decoders after an upgrade.
    public var maxWebSocketMessageBytes: Int

    public init(
        maxHeaderSectionBytes: Int = 64 * 1024, maxBodyBytes: Int = 1 << 20, maxDecodedBodyBytes: Int = 1 << 20,
        maxChunkLineBytes: Int = 4 * 1024, maxPendingRequests: Int = 1024, decodeContentEncoding: Bool = true,
        parseJSON: Bool = true, maxJSONDepth: Int = JSONValue.defaultMaxDepth, maxWebSocketMessageBytes: Int = 1 << 20
    ) {
        self.maxHeaderSectionBytes = max(64, maxHeaderSectionBytes)
        self.maxBodyBytes = max(0, maxBodyBytes)
        self.maxDecodedBodyBytes = max(0, maxDecodedBodyBytes)
        self.maxChunkLineBytes = max(16, maxChunkLineBytes)
        self.maxPendingRequests = max(1, maxPendingRequests)
        self.decodeContentEncoding = decodeContentEncoding
        self.parseJSON = parseJSON
        self.maxJSONDepth = maxJSONDepth
        self.maxWebSocketMessageBytes = max(0, maxWebSocketMessageBytes)
    }
}

/// Counters of one direction of an ``HTTPConnectionDecoder``.
public struct HTTPDirectionStatistics: Hashable, Sendable {
    /// Stream bytes fed.
    public var bytes = 0
    /// Bytes reported lost by gaps.
    public var lostBytes = 0
    /// Bytes received but skipped: while resynchronising, in heads that could not be parsed, after `end`.
    public var skippedBytes = 0
    /// Requests or responses emitted.
    public var messages = 0
    public var incompleteMessages = 0
    public var errors = 0
    public var resynchronisations = 0
    /// Bytes after an upgrade (WebSocket or tunnel).
    public var upgradedBytes = 0
    public init() {}
}

/// Counters of an ``HTTPConnectionDecoder``.
public struct HTTPConnectionStatistics: Hashable, Sendable {
    public var toServer = HTTPDirectionStatistics()
    public var toClient = HTTPDirectionStatistics()
    /// Requests forgotten because more than the configured number were waiting for responses.
    public var droppedPendingRequests = 0
    public var unpairedResponses = 0
    public init() {}

    public subscript(direction: Direction) -> HTTPDirectionStatistics {
        direction == .toServer ? toServer : toClient
    }
}

/// Decodes one TCP connection carrying HTTP/1.x (RFC 9112), and WebSocket (RFC 6455) after an upgrade.
///
/// Sans-IO: it is fed what the TCP reassembler delivers for the connection, per direction: bytes, gaps and
/// ends, each with its capture timestamp, and never reads a clock. Requests and responses are emitted when
/// complete, in that order, each with its stream span and the capture times of its first and last bytes;
/// responses name the request they answer. Drain them with ``drainEvents()``.
///
/// Pairing is in order (RFC 9112 §9.3.2, pipelining included). `1xx` responses other than `101` are interim and
/// pair with the request without consuming it. Where bytes were lost, pairing is a best guess, flagged with
/// ``HTTPAnomaly/pairedAfterGap``:
/// - after a gap in the requests, a response pairs with the next request seen only if that request began
///   (by capture time) no later than the response, else it is emitted unpaired (its request was lost);
/// - after a gap in the responses, a response pairs with the newest waiting request that began no later than
///   it, and older waiting requests are taken to have lost their responses (right for non-pipelined traffic,
///   which is what Pilot 2 sends).
///
/// Memory is bounded by the configuration: a header section, a chunk-size line, one body per direction up to
/// the cap, and the requests waiting for responses.
///
/// ## Topics
/// - ``feed(_:_:at:frame:)``
/// - ``gap(_:length:at:)``
/// - ``end(_:at:)``
/// - ``finish(at:)``
/// - ``drainEvents()``
/// - ``looksLikeRequest(_:)``
/// - ``looksLikeStatusLine(_:)``
public struct HTTPConnectionDecoder: Sendable {
    public let configuration: HTTPDecoderConfiguration
    private var context: HTTPConnectionContext
    private var requests: HTTPStreamParser
    private var responses: HTTPStreamParser

    public init(configuration: HTTPDecoderConfiguration = .init()) {
        self.configuration = configuration
        self.context = HTTPConnectionContext(configuration: configuration)
        self.requests = HTTPStreamParser(role: .requests, configuration: configuration)
        self.responses = HTTPStreamParser(role: .responses, configuration: configuration)
    }

    /// Counters per direction (skipped and lost bytes, errors, resynchronisations).
    public var statistics: HTTPConnectionStatistics {
        var s = HTTPConnectionStatistics()
        s.toServer = requests.statistics
        s.toClient = responses.statistics
        s.droppedPendingRequests = context.droppedPendingRequests
        s.unpairedResponses = context.unpairedResponses
        return s
    }

    /// The upgrade the connection went through, if any.
    public var upgrade: HTTPUpgrade? { context.upgrade }

    /// Bytes held for decoding (partial heads and lines, input waiting for an upgrade decision, WebSocket
    /// messages in progress, undrained events not counted); bounded by the configuration.
    public var bufferedByteCount: Int { requests.bufferedByteCount + responses.bufferedByteCount }

    /// Both directions ended and every event was drained: ``finish(at:)`` would emit nothing and later bytes would only
    /// be counted, so the decoder can be let go before its connection is.
    public var isFinished: Bool { context.events.isEmpty && requests.isEnded && responses.isEnded }

    /// Returns the events produced since the last call, in the order they completed.
    public mutating func drainEvents() -> [HTTPConnectionEvent] {
        defer { context.events.removeAll() }
        return context.events
    }

    /// Decodes the next bytes of one direction.
    /// - Parameters:
    ///   - direction: `.toServer` for the client's bytes, `.toClient` for the server's.
    ///   - bytes: stream bytes, contiguous with what was fed (and lost) before in that direction.
    ///   - at: the capture time of the segment that delivered them.
    ///   - frame: the capture frame that carried them; messages say which frames held their first and last bytes.
    public mutating func feed(_ direction: Direction, _ bytes: [UInt8], at: Timestamp, frame: CaptureFrame = .unknown) {
        guard !bytes.isEmpty else { return }
        switch direction {
        case .toServer: requests.feed(bytes, at: at, frame: frame, context: &context)
        case .toClient: responses.feed(bytes, at: at, frame: frame, context: &context)
        }
        drive()
    }

    /// Bytes of one direction were lost (a gap in the TCP stream).
    ///
    /// A gap inside a body of known length keeps the framing: the message is emitted incomplete, with the
    /// lost count. Elsewhere the message in progress is emitted incomplete and the direction resynchronises at
    /// the next start line (``HTTPConnectionEvent/resynchronised(_:)``).
    public mutating func gap(_ direction: Direction, length: Int, at: Timestamp) {
        guard length > 0 else { return }
        // No TCP gap comes near this; the clamp keeps offset arithmetic far from overflow.
        let length = min(length, 1 << 48)
        switch direction {
        case .toServer: requests.gap(length: length, at: at, context: &context)
        case .toClient: responses.gap(length: length, at: at, context: &context)
        }
        drive()
    }

    /// The capture starts inside `direction`'s stream (no SYN seen): its first bytes may be the middle of a
    /// message, so decoding starts at the first request (or status) line instead. Call before any bytes.
    public mutating func startMidstream(_ direction: Direction) {
        switch direction {
        case .toServer: requests.startMidstream()
        case .toClient: responses.startMidstream()
        }
    }

    /// One direction ended (its FIN): a body delimited by close ends here; anything else in progress is
    /// emitted incomplete.
    public mutating func end(_ direction: Direction, at: Timestamp) {
        switch direction {
        case .toServer: requests.end(at: at, fin: true, context: &context)
        case .toClient:
            responses.end(at: at, fin: true, context: &context)
            releaseWaitingRequests()
        }
        drive()
    }

    /// The connection is gone without FINs (reset, idle timeout, end of capture): ends both directions, and a
    /// body delimited by close is emitted incomplete, because its end was not seen.
    public mutating func finish(at: Timestamp) {
        requests.end(at: at, fin: false, context: &context)
        drive()
        responses.end(at: at, fin: false, context: &context)
        releaseWaitingRequests()
        drive()
    }

    /// No response can come any more: a request side waiting for one goes on as HTTP.
    private mutating func releaseWaitingRequests() {
        if let index = requests.awaitingDecision, context.decisions[index] == nil, !context.hasDecisionPending {
            context.decide(.stayHTTP, for: index)
        }
    }

    /// Runs both directions until neither has anything left to do with what it holds: after one direction
    /// stopped for an upgrade decision, the request side applies it (and replays what it held), then both go on.
    private mutating func drive() {
        var rounds = 0
        repeat {
            context.yieldRequested = false
            settle()
            requests.continueRun(context: &context)
            responses.continueRun(context: &context)
            rounds += 1
        } while context.yieldRequested && rounds < 10_000
        context.yieldRequested = false
    }

    /// Lets the request side go on once the response side decided what an upgrade request led to.
    private mutating func settle() {
        var rounds = 0
        while rounds < 1000, let awaiting = requests.awaitingDecision,
            let decision = context.takeDecision(for: awaiting)
        {
            requests.resume(with: decision, context: &context)
            rounds += 1
        }
    }
}

/// What a request that asked to leave HTTP (Upgrade, CONNECT) turned into.
enum HTTPUpgradeDecision: Sendable {
    case stayHTTP
    case webSocket(WebSocketFrameDecoder.Configuration)
    case opaque
}

/// A request waiting for its response.
struct HTTPPendingRequest: Sendable {
    var index: Int
    var method: String
    var target: String
    var firstByteAt: Timestamp
    var upgradeTokens: [String]
    var webSocketProtocol: String?
    /// True for CONNECT and requests with Upgrade: the request side waits for the response before going on.
    var awaitsDecision: Bool
    var isConnect: Bool { method == "CONNECT" }
}

/// State both directions of a connection share: the events, the pairing queue and upgrade decisions.
struct HTTPConnectionContext: Sendable {
    enum Pending: Sendable {
        case request(HTTPPendingRequest)
        /// Requests may have been lost here (a gap or unparseable bytes in the client's stream).
        case lost
    }

    let configuration: HTTPDecoderConfiguration
    var events: [HTTPConnectionEvent] = []
    var pending: [Pending] = []
    var nextRequestIndex = 0
    /// Set by a gap in the server's stream: whole responses may have been lost.
    var responsesMayBeLost = false
    private(set) var decisions: [Int: HTTPUpgradeDecision] = [:]
    /// Set when a decision was made: the parsers stop so that the connection can apply it first.
    var yieldRequested = false
    /// A decision from a 101 seen before (or without) its request.
    private var orphanDecision: HTTPUpgradeDecision?
    /// Where upgrade requests ended in the client's stream, by request index.
    var upgradeRequestEnds: [Int: Int] = [:]
    var upgrade: HTTPUpgrade?
    var droppedPendingRequests = 0
    var unpairedResponses = 0

    init(configuration: HTTPDecoderConfiguration) {
        self.configuration = configuration
    }

    mutating func registerRequest(_ head: HTTPRequestHead, at: Timestamp) -> Int {
        let index = nextRequestIndex
        nextRequestIndex += 1
        let upgradeTokens = head.headers.tokens("Upgrade")
        pending.append(
            .request(
                HTTPPendingRequest(
                    index: index, method: head.method, target: head.target, firstByteAt: at,
                    upgradeTokens: upgradeTokens, webSocketProtocol: head.headers["Sec-WebSocket-Protocol"],
                    awaitsDecision: !upgradeTokens.isEmpty || head.method == "CONNECT")))
        trimPending()
        return index
    }

    mutating func noteRequestsMayBeLost() {
        if case .lost? = pending.last { return }
        pending.append(.lost)
        trimPending()
    }

    private mutating func trimPending() {
        while pending.count > configuration.maxPendingRequests {
            if case .request(let r) = pending.removeFirst() {
                droppedPendingRequests += 1
                forget(r)
            }
        }
    }

    /// A request that will get no response (as far as the decoder can tell).
    private mutating func forget(_ r: HTTPPendingRequest) {
        if r.awaitsDecision, decisions[r.index] == nil { decide(.stayHTTP, for: r.index) }
    }

    /// Records what an upgrade request led to (`index` nil: a 101 whose request was not seen).
    mutating func decide(_ decision: HTTPUpgradeDecision, for index: Int?) {
        if let index {
            decisions[index] = decision
        } else {
            orphanDecision = decision
        }
        yieldRequested = true
    }

    /// Forgets a decision nobody will apply.
    mutating func dropDecision(for index: Int) {
        decisions.removeValue(forKey: index)
    }

    var hasDecisionPending: Bool { orphanDecision != nil }

    /// Finds the request a response answers (see ``HTTPConnectionDecoder`` for the rules after gaps).
    mutating func pairResponse(status: Int, at t: Timestamp, anomalies: inout [HTTPAnomaly]) -> HTTPPendingRequest? {
        let interim = (100...199).contains(status) && status != 101
        if responsesMayBeLost && !interim {
            responsesMayBeLost = false
            let newest = pending.lastIndex {
                if case .request(let r) = $0 { return r.firstByteAt <= t }
                return false
            }
            if let k = newest, k > 0 {
                for case .request(let r) in pending[..<k] { forget(r) }
                pending.removeFirst(k)
                HTTPHeadParser.note(.pairedAfterGap, in: &anomalies)
            }
        }
        while case .lost? = pending.first {
            let next = pending.lazy.compactMap { (p: Pending) -> HTTPPendingRequest? in
                if case .request(let r) = p { return r }
                return nil
            }.first
            guard let next, next.firstByteAt <= t else {
                unpairedResponses += 1
                HTTPHeadParser.note(.unpairedResponse, in: &anomalies)
                return nil
            }
            pending.removeFirst()
            HTTPHeadParser.note(.pairedAfterGap, in: &anomalies)
        }
        guard case .request(let r)? = pending.first else {
            unpairedResponses += 1
            HTTPHeadParser.note(.unpairedResponse, in: &anomalies)
            return nil
        }
        if !interim {
            pending.removeFirst()
            let switches = status == 101 || (r.isConnect && (200...299).contains(status))
            if !switches { forget(r) }
        }
        return r
    }

    mutating func takeDecision(for index: Int) -> HTTPUpgradeDecision? {
        if let d = decisions.removeValue(forKey: index) {
            upgradeRequestEnds.removeValue(forKey: index)
            return d
        }
        if let d = orphanDecision {
            orphanDecision = nil
            upgradeRequestEnds.removeValue(forKey: index)
            return d
        }
        return nil
    }
}

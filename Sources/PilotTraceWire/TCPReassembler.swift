/// Turns TCP segments into ordered byte streams per connection and direction.
///
/// Modelled on Zeek's `TCP_Reassembler`: out-of-order segments are buffered (bounded per direction and in
/// total), retransmissions and duplicates are dropped, overlaps are trimmed with the first copy winning and
/// conflicting overlaps reported, and bytes that cannot arrive any more become `.gap` events. Time comes only
/// from the segments' capture timestamps.
///
/// ## Topics
/// - ``process(_:at:frame:frameLength:into:)``
/// - ``finish(into:)``
public struct TCPReassembler: ~Copyable {
    public struct Configuration: Sendable {
        /// Out-of-order bytes buffered per direction before the hole in front of them is declared a gap.
        public var maxBufferedPerDirection = 4 << 20
        /// Out-of-order bytes buffered across all connections.
        public var maxBufferedTotal = 256 << 20
        /// Capture seconds without a packet after which an open connection is released.
        public var idleTimeout: Double = 600
        /// Capture seconds a connection closed by FIN or RST is kept, to absorb late ACKs and retransmissions.
        public var closeLinger: Double = 30
        /// Delivered bytes kept per direction, until the peer acknowledges all of them or the FIN, to tell a faithful
        /// retransmission from a conflicting one.
        public var conflictWindow = 4096
        public init() {}
    }

    struct FlowKey: Hashable {
        var low: Endpoint
        var high: Endpoint
        init(_ a: Endpoint, _ b: Endpoint) {
            if a < b { low = a; high = b } else { low = b; high = a }
        }
    }

    public let configuration: Configuration
    var connections: [FlowKey: Connection] = [:]
    var nextID: UInt64 = 1
    let budget: Budget
    var now = Timestamp(nanoseconds: .min)
    var lastSweep: Timestamp?

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.budget = Budget(limit: configuration.maxBufferedTotal)
    }

    /// Connections currently held (open, or closed and lingering).
    public var openConnections: Int { connections.count }
    /// Out-of-order bytes currently buffered across all connections.
    public var bufferedBytes: Int { budget.used }

    /// Feeds one segment.
    /// - Parameters:
    ///   - segment: the decoded segment; its payload is copied where kept.
    ///   - timestamp: the frame's capture time.
    ///   - frame: the frame's number, carried by the `.data` events of its bytes (kept with them while they wait
    ///     out of order).
    ///   - frameLength: the frame's length on the wire, for the byte counters.
    ///   - events: receives what the segment caused, in order.
    public mutating func process(
        _ segment: TCPSegment, at timestamp: Timestamp, frame: CaptureFrame = .unknown, frameLength: Int,
        into events: inout [StreamEvent]
    ) {
        advance(to: timestamp, into: &events)
        let key = FlowKey(segment.source, segment.destination)
        let flags = segment.flags
        let bareSYN = flags.contains(.syn) && !flags.contains(.ack)
        var connection = connections[key]
        if let c = connection, bareSYN, c.isReplaced(bySYN: segment) {
            release(key, c, reason: c.finalReason(otherwise: .portReuse), into: &events)
            connection = nil
        }
        let c: Connection
        if let existing = connection {
            c = existing
        } else {
            let info = Self.roles(of: segment, id: ConnectionID(rawValue: nextID), at: timestamp, knownServers: knownServers)
            if info.roleEvidence == .syn || info.roleEvidence == .synAck, knownServers.count < Self.knownServerLimit {
                knownServers.insert(info.server)
            }
            c = Connection(info: info, window: configuration.conflictWindow)
            nextID += 1
            connections[key] = c
            // Roles guessed from a bare ACK (a keep-alive, a delayed ACK) may be wrong: they are decided again at
            // the first segment that says more, before anyone is told the connection exists.
            c.tentative =
                (info.roleEvidence == .portHeuristic || info.roleEvidence == .firstPacket) && segment.payload.isEmpty
                && flags.isDisjoint(with: [.syn, .fin, .rst])
            if !c.tentative { events.append(.opened(c.info)) }
        }
        if c.tentative, !segment.payload.isEmpty || !flags.isDisjoint(with: [.syn, .fin, .rst]) {
            let again = Self.roles(of: segment, id: c.info.id, at: c.info.firstSeen, knownServers: knownServers)
            if again.roleEvidence == .knownServer { c.assignRoles(client: again.client, server: again.server, evidence: .knownServer) }
            c.tentative = false
            events.append(.opened(c.info))
        }
        c.process(segment, at: timestamp, frame: frame, frameLength: frameLength, configuration: configuration, budget: budget, into: &events)
    }

    /// Moves capture time forward, releasing idle connections and closed ones past their linger time.
    public mutating func advance(to timestamp: Timestamp, into events: inout [StreamEvent]) {
        if timestamp > now { now = timestamp }
        if let last = lastSweep, now.seconds(since: last) < 1 { return }
        lastSweep = now
        var due: [(FlowKey, Connection, CloseReason)] = []
        for (key, c) in connections {
            let quiet = now.seconds(since: c.lastSeen)
            if c.isClosing && quiet >= configuration.closeLinger {
                due.append((key, c, c.finalReason(otherwise: .fin)))
            } else if quiet >= configuration.idleTimeout {
                due.append((key, c, c.finalReason(otherwise: .idle)))
            }
        }
        for (key, c, reason) in due.sorted(by: { $0.1.info.id < $1.1.info.id }) {
            release(key, c, reason: reason, into: &events)
        }
    }

    /// The capture ended: flushes and releases every connection, in connection order.
    public mutating func finish(into events: inout [StreamEvent]) {
        for (key, c) in connections.sorted(by: { $0.value.info.id < $1.value.info.id }) {
            release(key, c, reason: c.finalReason(otherwise: .captureEnd), into: &events)
        }
    }

    mutating func release(_ key: FlowKey, _ c: Connection, reason: CloseReason, into events: inout [StreamEvent]) {
        connections[key] = nil
        if c.tentative { events.append(.opened(c.info)) }
        c.flush(budget: budget, into: &events)
        events.append(.closed(c.summary(reason: reason)))
    }

    /// Endpoints seen as the server of a connection whose handshake was captured: a connection picked up mid-stream
    /// to one of them has its roles from that (a broker on an ephemeral port still accepts, it never connects out).
    var knownServers: Set<Endpoint> = []
    /// Bounds ``knownServers`` (endpoints past it are simply not remembered).
    static let knownServerLimit = 65_536

    /// Who is the client: the SYN's sender, the SYN-ACK's receiver, the side that is not a known server, or a
    /// guess from the ports.
    static func roles(of s: TCPSegment, id: ConnectionID, at ts: Timestamp, knownServers: Set<Endpoint> = []) -> ConnectionInfo {
        let f = s.flags
        if f.contains(.syn) && !f.contains(.ack) {
            return ConnectionInfo(id: id, client: s.source, server: s.destination, roleEvidence: .syn, firstSeen: ts)
        }
        if f.contains(.syn) && f.contains(.ack) {
            return ConnectionInfo(id: id, client: s.destination, server: s.source, roleEvidence: .synAck, firstSeen: ts)
        }
        let knownSource = knownServers.contains(s.source), knownDestination = knownServers.contains(s.destination)
        if knownSource != knownDestination {
            return knownSource
                ? ConnectionInfo(id: id, client: s.destination, server: s.source, roleEvidence: .knownServer, firstSeen: ts)
                : ConnectionInfo(id: id, client: s.source, server: s.destination, roleEvidence: .knownServer, firstSeen: ts)
        }
        let src = isServicePort(s.source.port), dst = isServicePort(s.destination.port)
        let sourceIsServer: Bool
        if src != dst {
            sourceIsServer = src
        } else if s.source.port != s.destination.port {
            sourceIsServer = s.source.port < s.destination.port
        } else {
            return ConnectionInfo(id: id, client: s.source, server: s.destination, roleEvidence: .firstPacket, firstSeen: ts)
        }
        return sourceIsServer
            ? ConnectionInfo(id: id, client: s.destination, server: s.source, roleEvidence: .portHeuristic, firstSeen: ts)
            : ConnectionInfo(id: id, client: s.source, server: s.destination, roleEvidence: .portHeuristic, firstSeen: ts)
    }

    /// Ports that are taken as the server's when the handshake was not captured.
    public static func isServicePort(_ p: UInt16) -> Bool {
        if p < 1024 { return true }
        switch p {
        case 1883, 8883, 8083, 8084, 8080, 8443, 8000, 8888, 9000, 3000, 5000, 6379, 5432, 3306: return true
        default: return false
        }
    }
}

/// The out-of-order bytes held across all connections.
final class Budget {
    let limit: Int
    var used = 0
    init(limit: Int) { self.limit = limit }
}

/// One buffered out-of-order piece; `bytes == nil` marks bytes known to be missing (cut by the snapshot length).
struct Piece {
    var offset: Int
    var length: Int
    var bytes: ArraySlice<UInt8>?
    /// The frame that carried the bytes.
    var frame: CaptureFrame
    var end: Int { offset + length }
}

/// One direction of a connection.
final class HalfStream {
    var started = false
    /// The sequence number of the byte at stream offset `delivered`.
    var nextSeq: UInt32 = 0
    /// Stream bytes delivered (or declared missing) so far.
    var delivered = 0
    /// Buffered pieces beyond `delivered`: sorted, non-overlapping.
    var pending: [Piece] = []
    var pendingBytes = 0
    var isn: UInt32?
    var finOffset: Int?
    var ended = false
    /// The last delivered bytes, for conflict checks; ends at `delivered`.
    var recent: RecentBytes
    var stats = DirectionStats()

    init(window: Int) { recent = RecentBytes(capacity: window) }

    /// Stream offset of a sequence number (wrap-around safe within ±2 GiB).
    @inline(__always) func offset(of seq: UInt32) -> Int {
        delivered + Int(Int32(bitPattern: seq &- nextSeq))
    }
}

final class Connection {
    private(set) var info: ConnectionInfo
    private(set) var halves: (HalfStream, HalfStream)
    /// Opened by data-less segments with guessed roles; `.opened` is not emitted yet.
    var tentative = false
    let window: Int
    var lastSeen: Timestamp
    var synSeen = false
    var synAckSeen = false
    var handshakeAckSeen = false
    /// The client's ISN as the SYN-ACK acknowledged it (when the SYN itself was not captured).
    var expectedClientISN: UInt32?

    init(info: ConnectionInfo, window: Int) {
        self.info = info
        self.window = window
        self.lastSeen = info.firstSeen
        self.halves = (HalfStream(window: window), HalfStream(window: window))
    }

    /// Takes `client` as the client (swapping the halves if that is the other end); only while tentative.
    func assignRoles(client: Endpoint, server: Endpoint, evidence: RoleEvidence) {
        precondition(tentative)
        if client != info.client { halves = (halves.1, halves.0) }
        info = ConnectionInfo(id: info.id, client: client, server: server, roleEvidence: evidence, firstSeen: info.firstSeen)
    }

    @inline(__always) func stream(_ d: Direction) -> HalfStream { d == .toServer ? halves.0 : halves.1 }

    var isClosing: Bool {
        halves.0.stats.rstSeen || halves.1.stats.rstSeen || (halves.0.stats.finSeen && halves.1.stats.finSeen)
    }

    func finalReason(otherwise: CloseReason) -> CloseReason {
        if halves.0.stats.rstSeen || halves.1.stats.rstSeen { return .rst }
        if halves.0.stats.finSeen && halves.1.stats.finSeen { return .fin }
        return otherwise
    }

    /// A new SYN starts a new connection on this 4-tuple when this one is closing or had another ISN.
    ///
    /// A SYN whose sequence number is the client's known ISN (from its SYN, or from the SYN-ACK that
    /// acknowledged it) is a retransmission; a SYN from the server's side is a simultaneous open or a split
    /// handshake, not a new connection.
    func isReplaced(bySYN s: TCPSegment) -> Bool {
        let fromClient = s.source == info.client
        let sender = fromClient ? halves.0 : halves.1
        if let isn = sender.isn ?? (fromClient ? expectedClientISN : nil), isn == s.sequence { return false }
        if isClosing || halves.0.stats.finSeen || halves.1.stats.finSeen { return true }
        if let isn = sender.isn, isn != s.sequence { return true }
        return false
    }

    func summary(reason: CloseReason) -> ConnectionSummary {
        ConnectionSummary(
            info: info, lastSeen: lastSeen, synSeen: synSeen, synAckSeen: synAckSeen,
            handshakeAckSeen: handshakeAckSeen, toServer: halves.0.stats, toClient: halves.1.stats,
            closeReason: reason)
    }

    func process(
        _ s: TCPSegment, at ts: Timestamp, frame: CaptureFrame, frameLength: Int, configuration: TCPReassembler.Configuration,
        budget: Budget, into events: inout [StreamEvent]
    ) {
        let dir: Direction = s.source == info.client ? .toServer : .toClient
        let half = stream(dir), other = stream(dir.reversed)
        half.stats.packets += 1
        half.stats.bytes += frameLength
        if ts > lastSeen { lastSeen = ts }
        let f = s.flags

        if f.contains(.rst) {
            // RFC 9293 §3.5.3: a RST's payload is diagnostic text, not stream data.
            half.stats.rstSeen = true
            return
        }
        var dataSeq = s.sequence
        if f.contains(.syn) {
            if f.contains(.ack) {
                synAckSeen = true  // from either side: a split handshake has the client send it
                if dir == .toClient { expectedClientISN = s.acknowledgment &- 1 }
            } else if dir == .toServer {
                synSeen = true
            }
            if !half.started || (half.isn == nil && half.delivered == 0 && half.pending.isEmpty) {
                // A stream started by data-less segments before its SYN (forged FIN/RST, reordering) is rebased
                // on the SYN's sequence number.
                half.started = true
                half.isn = s.sequence
                half.nextSeq = s.sequence &+ 1
                half.finOffset = nil
            }
            dataSeq = s.sequence &+ 1
        } else if f.contains(.ack), dir == .toServer, synAckSeen, !handshakeAckSeen, let serverISN = other.isn,
            s.acknowledgment == serverISN &+ 1
        {
            handshakeAckSeen = true
        }

        let length = max(s.wireLength, s.payload.count)
        let fin = f.contains(.fin)
        if !half.started && (length > 0 || fin) {
            half.started = true  // picked up mid-stream: this segment defines the stream's start
            half.nextSeq = dataSeq
        }
        if half.started {
            let start = half.offset(of: dataSeq)
            if length > 0 {
                accept(
                    half, dir, start: start, payload: s.payload, length: length, at: ts, frame: frame, budget: budget,
                    limit: configuration.maxBufferedPerDirection, into: &events)
            }
            if fin {
                half.stats.finSeen = true
                if half.finOffset == nil { half.finOffset = start + length }
                // A bare FIN on a stream with neither SYN nor data yet may be forged or reordered (a SYN may still
                // rebase the stream): its end is only announced when the connection is released.
                if half.isn != nil || half.delivered > 0 || length > 0 { checkEnd(half, dir, at: ts, into: &events) }
            }
        }
        if f.contains(.ack), other.started {
            var delivered = other.delivered
            let acked = other.offset(of: s.acknowledgment)
            // The peer acknowledged bytes we never saw in front of buffered ones: they will not come; skip them.
            if let first = other.pending.first, acked > delivered && acked >= first.offset {
                skipToPending(other, dir.reversed, at: ts, budget: budget, into: &events)
                delivered = other.delivered
            }
            // The peer has every delivered byte: a copy sent again can no longer change what it received, so the
            // conflict window is emptied, its storage given back beyond 1 KiB (Zeek trims its reassembly buffer at
            // the acknowledgment the same way). A connection that sends a message a second and has it acknowledged
            // keeps no bytes between messages; with thousands of such connections open, their full windows were the
            // reassembler's largest memory.
            if acked >= delivered, acked - delivered <= 1, other.recent.count > 0 {
                other.recent.removeAll(keepingCapacityUpTo: RecentBytes.retainedCapacity)
            }
        }
    }

    func accept(
        _ h: HalfStream, _ dir: Direction, start: Int, payload: UnsafeRawBufferPointer, length: Int, at ts: Timestamp,
        frame: CaptureFrame, budget: Budget, limit: Int, into events: inout [StreamEvent]
    ) {
        let end = start + length
        if end <= h.delivered {
            if length == 1 && start == h.delivered - 1 && payload.count <= 1 { return }  // keep-alive probe
            h.stats.retransmissions += 1
            checkConflict(h, dir, start: start, payload, at: ts, into: &events)
            return
        }
        if start < h.delivered {
            h.stats.overlaps += 1
        } else if start > h.delivered {
            // Beyond the largest window TCP can offer (RFC 7323 §2.3: 2^30 bytes): not this stream's data.
            guard start - h.delivered <= 1 << 30 else {
                h.stats.outOfWindow += 1
                return
            }
            h.stats.outOfOrder += 1
        }
        let captured = min(payload.count, length)
        var pieces: [(Int, Int, UnsafeRawBufferPointer?)] = []
        if captured > 0 { pieces.append((start, captured, UnsafeRawBufferPointer(rebasing: payload[0..<captured]))) }
        if captured < length { pieces.append((start + captured, length - captured, nil)) }
        for (offset, len, bytes) in pieces {
            place(h, dir, offset: offset, length: len, bytes: bytes, at: ts, frame: frame, budget: budget, into: &events)
        }
        while h.pendingBytes > limit || (budget.used > budget.limit && !h.pending.isEmpty) {
            skipToPending(h, dir, at: ts, budget: budget, into: &events)
        }
        checkEnd(h, dir, at: ts, into: &events)
    }

    /// Places one piece: trims what was delivered, delivers what is next, buffers what is ahead.
    func place(
        _ h: HalfStream, _ dir: Direction, offset: Int, length: Int, bytes: UnsafeRawBufferPointer?, at ts: Timestamp,
        frame: CaptureFrame, budget: Budget, into events: inout [StreamEvent]
    ) {
        var offset = offset, length = length, bytes = bytes
        if offset + length <= h.delivered {
            if let b = bytes { checkConflict(h, dir, start: offset, b, at: ts, into: &events) }
            return
        }
        if offset < h.delivered {
            let k = h.delivered - offset
            if let b = bytes {
                checkConflict(h, dir, start: offset, UnsafeRawBufferPointer(rebasing: b[0..<k]), at: ts, into: &events)
                bytes = UnsafeRawBufferPointer(rebasing: b[k...])
            }
            offset = h.delivered
            length -= k
        }
        if offset == h.delivered {
            deliver(h, dir, length: length, bytes: bytes.map { Array($0) }, at: ts, frame: frame, into: &events)
            drain(h, dir, at: ts, budget: budget, into: &events)
            return
        }
        buffer(h, dir, offset: offset, length: length, bytes: bytes, at: ts, frame: frame, budget: budget, into: &events)
    }

    /// Buffers an out-of-order piece, keeping only what no earlier buffered piece covers.
    func buffer(
        _ h: HalfStream, _ dir: Direction, offset: Int, length: Int, bytes: UnsafeRawBufferPointer?, at ts: Timestamp,
        frame: CaptureFrame, budget: Budget, into events: inout [StreamEvent]
    ) {
        let end = offset + length
        var lo = 0, hi = h.pending.count  // first piece ending after `offset`
        while lo < hi {
            let mid = (lo + hi) / 2
            if h.pending[mid].end <= offset { lo = mid + 1 } else { hi = mid }
        }
        var cursor = offset
        var fresh: [Piece] = []
        var i = lo
        var overlapped = false
        func slice(_ from: Int, _ to: Int) -> ArraySlice<UInt8>? {
            bytes.map { ArraySlice(UnsafeRawBufferPointer(rebasing: $0[(from - offset)..<(to - offset)])) }
        }
        while i < h.pending.count && h.pending[i].offset < end {
            let p = h.pending[i]
            if p.offset > cursor { fresh.append(Piece(offset: cursor, length: p.offset - cursor, bytes: slice(cursor, p.offset), frame: frame)) }
            let a = max(offset, p.offset), b = min(end, p.end)
            if a < b {
                overlapped = true
                if let mine = bytes, let theirs = p.bytes {
                    let x = UnsafeRawBufferPointer(rebasing: mine[(a - offset)..<(b - offset)])
                    let y = theirs[(theirs.startIndex + a - p.offset)..<(theirs.startIndex + b - p.offset)]
                    if !x.elementsEqual(y) { reportConflict(h, dir, offset: a, length: b - a, at: ts, into: &events) }
                }
            }
            cursor = max(cursor, p.end)
            i += 1
        }
        if cursor < end { fresh.append(Piece(offset: cursor, length: end - cursor, bytes: slice(cursor, end), frame: frame)) }
        if overlapped { h.stats.overlaps += 1 }
        var at = lo
        for piece in fresh {
            while at < h.pending.count && h.pending[at].offset < piece.offset { at += 1 }
            h.pending.insert(piece, at: at)
            at += 1
            let held = piece.bytes?.count ?? 0
            h.pendingBytes += held
            budget.used += held
        }
    }

    func deliver(
        _ h: HalfStream, _ dir: Direction, length: Int, bytes: [UInt8]?, at ts: Timestamp, frame: CaptureFrame = .unknown,
        into events: inout [StreamEvent]
    ) {
        guard length > 0 else { return }
        if let bytes {
            events.append(.data(info.id, dir, bytes, ts, frame: frame))
            h.stats.payloadBytes += length
            h.recent.append(bytes)
        } else {
            events.append(.gap(info.id, dir, length: length, ts))
            h.stats.gaps += 1
            h.stats.gapBytes += length
            h.recent.removeAll()
        }
        h.delivered += length
        h.nextSeq = h.nextSeq &+ UInt32(truncatingIfNeeded: length)
    }

    /// Delivers buffered pieces that have become contiguous.
    func drain(_ h: HalfStream, _ dir: Direction, at ts: Timestamp, budget: Budget, into events: inout [StreamEvent]) {
        while let first = h.pending.first, first.offset <= h.delivered {
            h.pending.removeFirst()
            let held = first.bytes?.count ?? 0
            h.pendingBytes -= held
            budget.used -= held
            guard first.end > h.delivered else { continue }
            let k = h.delivered - first.offset
            deliver(h, dir, length: first.length - k, bytes: first.bytes.map { Array($0.dropFirst(k)) }, at: ts, frame: first.frame, into: &events)
        }
    }

    /// Declares the hole in front of the first buffered piece a gap, then delivers what follows it.
    func skipToPending(_ h: HalfStream, _ dir: Direction, at ts: Timestamp, budget: Budget, into events: inout [StreamEvent]) {
        guard let first = h.pending.first else { return }
        if first.offset > h.delivered { deliver(h, dir, length: first.offset - h.delivered, bytes: nil, at: ts, into: &events) }
        drain(h, dir, at: ts, budget: budget, into: &events)
        checkEnd(h, dir, at: ts, into: &events)
    }

    func checkEnd(_ h: HalfStream, _ dir: Direction, at ts: Timestamp, into events: inout [StreamEvent]) {
        if !h.ended, let fin = h.finOffset, h.delivered >= fin {
            h.ended = true
            events.append(.end(info.id, dir, ts))
            // Nothing new can follow the FIN: the direction's conflict window is freed for the connection's linger
            // (a closed connection is kept 30 s; with many short connections, their windows were the largest part of
            // the reassembler's memory). Retransmissions after the FIN are still counted, no longer compared.
            h.recent.release()
        }
    }

    /// Compares re-sent bytes with the delivered bytes still retained.
    func checkConflict(
        _ h: HalfStream, _ dir: Direction, start: Int, _ b: UnsafeRawBufferPointer, at ts: Timestamp,
        into events: inout [StreamEvent]
    ) {
        let windowStart = h.delivered - h.recent.count
        let a = max(start, windowStart), e = min(start + b.count, h.delivered)
        guard a < e else { return }
        let mine = UnsafeRawBufferPointer(rebasing: b[(a - start)..<(e - start)])
        if !h.recent.matches(mine, at: a - windowStart) { reportConflict(h, dir, offset: a, length: e - a, at: ts, into: &events) }
    }

    func reportConflict(_ h: HalfStream, _ dir: Direction, offset: Int, length: Int, at ts: Timestamp, into events: inout [StreamEvent]) {
        h.stats.conflicts += 1
        events.append(.conflict(info.id, dir, streamOffset: offset, length: length, ts))
    }

    /// The connection is released: what is still buffered is delivered after gaps, and bytes missing before a
    /// FIN become a gap.
    func flush(budget: Budget, into events: inout [StreamEvent]) {
        for dir in Direction.allCases {
            let h = stream(dir)
            while !h.pending.isEmpty { skipToPending(h, dir, at: lastSeen, budget: budget, into: &events) }
            if let fin = h.finOffset, fin > h.delivered {
                deliver(h, dir, length: fin - h.delivered, bytes: nil, at: lastSeen, into: &events)
            }
            checkEnd(h, dir, at: lastSeen, into: &events)
        }
    }
}

/// The last bytes delivered in one direction (at most `capacity`), oldest first, kept in a ring: delivering a
/// segment writes its bytes over the oldest instead of shifting the window, and the storage grows only as far as
/// the stream does (a short stream keeps a short window).
struct RecentBytes {
    let capacity: Int
    /// Grows to `capacity`, then wraps; the oldest byte is at `head` once full.
    private var storage: [UInt8] = []
    private var head = 0

    init(capacity: Int) { self.capacity = max(0, capacity) }

    var count: Int { storage.count }

    mutating func append(_ bytes: [UInt8]) {
        let n = bytes.count
        guard n > 0, capacity > 0 else { return }
        if n >= capacity {
            storage = Array(bytes.suffix(capacity))
            head = 0
            return
        }
        var from = 0
        if storage.count < capacity {
            let fill = min(capacity - storage.count, n)
            // Exact growth: never more than the window.
            if storage.capacity < storage.count + fill { storage.reserveCapacity(min(capacity, max(storage.count + fill, storage.count * 2))) }
            bytes.withUnsafeBufferPointer { storage.append(contentsOf: UnsafeBufferPointer(rebasing: $0[0..<fill])) }
            from = fill
        }
        guard from < n else { return }
        // Full: overwrite the oldest bytes, in at most two runs.
        storage.withUnsafeMutableBufferPointer { ring in
            bytes.withUnsafeBufferPointer { src in
                var i = from
                while i < n {
                    let run = min(n - i, capacity - head)
                    (ring.baseAddress! + head).update(from: src.baseAddress! + i, count: run)
                    head = (head + run) % capacity
                    i += run
                }
            }
        }
    }

    mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        head = 0
    }

    /// Storage a window emptied at an acknowledgment keeps: enough for a small message, so a connection that sends
    /// one a second does not allocate for each, while one that sent more gives its memory back.
    static let retainedCapacity = 1024

    /// Forgets the kept bytes; keeps their memory only up to `limit` bytes.
    mutating func removeAll(keepingCapacityUpTo limit: Int) {
        if storage.capacity <= limit { removeAll() } else { release() }
    }

    /// Forgets the kept bytes and their memory.
    mutating func release() {
        storage = []
        head = 0
    }

    /// Whether `bytes` equal the kept bytes from position `index` (0 = the oldest kept byte).
    func matches(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Bool {
        precondition(index >= 0 && index + bytes.count <= storage.count)
        let n = storage.count
        var p = (head + index) % n
        for b in bytes {
            if storage[p] != b { return false }
            p += 1
            if p == n { p = 0 }
        }
        return true
    }
}

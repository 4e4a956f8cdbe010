/// Reassembles fragmented IPv4 (RFC 791) and IPv6 (RFC 8200 §4.5) datagrams, with bounded memory.
///
/// Overlapping fragments: the first copy wins (the Linux policy for IPv4; RFC 5722 forbids IPv6 overlaps).
public struct IPFragmentReassembler {
    public struct Limits: Sendable {
        /// Datagrams held at once; beyond it the oldest is dropped.
        public var maxDatagrams = 4096
        /// Bytes held across all datagrams.
        public var maxBytes = 32 << 20
        /// Capture seconds a datagram may wait for its missing fragments (RFC 8200 says 60).
        public var timeout: Double = 60
        public init() {}
    }

    public struct Key: Hashable, Sendable {
        var source: IPAddress
        var destination: IPAddress
        var identification: UInt32
        var protocolNumber: UInt8
    }

    struct Pending {
        var pieces: [(offset: Int, bytes: [UInt8])] = []
        var total: Int?
        var firstSeen: Timestamp
        var bytes = 0
    }

    enum Result { case held, invalid, complete([UInt8]) }

    let limits: Limits
    var table: [Key: Pending] = [:]
    var heldBytes = 0
    var lastSweep = Timestamp.zero
    /// Datagrams dropped because they timed out or exceeded a limit.
    public private(set) var dropped = 0

    public init(limits: Limits) { self.limits = limits }

    public var count: Int { table.count }

    mutating func add(key: Key, offset: Int, more: Bool, payload: UnsafeRawBufferPointer, wireLength: Int, at ts: Timestamp) -> Result {
        let length = payload.count
        guard offset + max(length, wireLength) <= 65_535 else { return .invalid }
        sweep(now: ts)
        var entry = table[key] ?? Pending(firstSeen: ts)
        if !more {
            // The last fragment fixes the datagram's length; a snapshot-cut last fragment cannot complete it.
            entry.total = offset + wireLength
        }
        if length > 0 {
            entry.pieces.append((offset, Array(payload)))
            entry.bytes += length
            heldBytes += length
        }
        if let total = entry.total, let datagram = Self.assemble(entry.pieces, total: total) {
            heldBytes -= entry.bytes
            table[key] = nil
            return .complete(datagram)
        }
        table[key] = entry
        if table.count > limits.maxDatagrams || heldBytes > limits.maxBytes { evictOldest() }
        return .held
    }

    /// Builds the datagram if the pieces cover `0..<total`; earlier pieces win overlaps.
    static func assemble(_ pieces: [(offset: Int, bytes: [UInt8])], total: Int) -> [UInt8]? {
        let sorted = pieces.enumerated().sorted { ($0.element.offset, $0.offset) < ($1.element.offset, $1.offset) }
        var covered = 0
        for (_, p) in sorted {
            if p.offset > covered { return nil }
            covered = max(covered, p.offset + p.bytes.count)
        }
        guard covered >= total else { return nil }
        var out = [UInt8](repeating: 0, count: total)
        for p in pieces.reversed() {  // the first arrival is written last and wins
            let n = min(p.bytes.count, total - p.offset)
            if n > 0 { out.replaceSubrange(p.offset..<(p.offset + n), with: p.bytes[0..<n]) }
        }
        return out
    }

    mutating func sweep(now: Timestamp) {
        guard now.seconds(since: lastSweep) >= 1 else { return }
        lastSweep = now
        let expired = table.filter { now.seconds(since: $0.value.firstSeen) > limits.timeout }.map(\.key)
        for k in expired { drop(k) }
    }

    mutating func evictOldest() {
        while table.count > limits.maxDatagrams || heldBytes > limits.maxBytes,
            let oldest = table.min(by: { $0.value.firstSeen < $1.value.firstSeen })?.key
        {
            drop(oldest)
        }
    }

    mutating func drop(_ key: Key) {
        if let e = table.removeValue(forKey: key) {
            heldBytes -= e.bytes
            dropped += 1
        }
    }
}

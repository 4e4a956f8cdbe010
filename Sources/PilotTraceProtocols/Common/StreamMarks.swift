/// Values that hold for runs of a direction's stream bytes (their capture time, the frame that carried them): from
/// each mark's stream offset on, until the next mark.
///
/// Decoders keep marks only for the bytes they still hold (``prune(keeping:)``), so there are about as many as
/// segments in what they buffer; a value equal to the last one adds no mark.
struct StreamMarks<Value: Equatable & Sendable>: Sendable {
    private var marks: [(offset: Int, value: Value)] = []

    var count: Int { marks.count }
    /// The value of the latest mark.
    var last: Value? { marks.last?.value }

    /// Bytes from `offset` on have `value`: a value equal to the last mark's adds nothing, and one at the last mark's
    /// offset replaces it.
    mutating func add(offset: Int, _ value: Value) {
        if let last = marks.last {
            if last.value == value { return }
            if last.offset == offset { marks[marks.count - 1].value = value; return }
        }
        marks.append((offset, value))
    }

    /// The value of the byte at `offset` (the first mark's when the offset precedes every mark; nil without marks).
    func value(at offset: Int) -> Value? {
        var k = marks.count - 1
        while k > 0, marks[k].offset > offset { k -= 1 }
        return k >= 0 ? marks[k].value : nil
    }

    /// Forgets the marks no longer needed for the bytes from `offset` on.
    mutating func prune(keeping offset: Int) {
        var k = 0
        while k + 1 < marks.count, marks[k + 1].offset <= offset { k += 1 }
        if k > 0 { marks.removeFirst(k) }
    }

    /// Forgets the marks at or after `offset` (input there is about to be fed again).
    mutating func truncate(from offset: Int) {
        while let last = marks.last, last.offset >= offset { marks.removeLast() }
    }

    /// The runs of `start..<end` that share a value.
    func runs(from start: Int, to end: Int) -> [(range: Range<Int>, value: Value)] {
        guard start < end, let first = value(at: start) else { return [] }
        var out: [(Range<Int>, Value)] = []
        var from = start, current = first
        while from < end {
            let next = marks.first { $0.offset > from }
            let to = min(next?.offset ?? end, end)
            out.append((from..<to, current))
            from = to
            if let next { current = next.value }
        }
        return out
    }
}

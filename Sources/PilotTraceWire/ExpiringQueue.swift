/// A first-in, first-out list whose front is taken off as it falls due: an array read from a moving head and
/// compacted now and then, so appending and expiring cost O(1) amortized (the pure targets have no `Deque`).
///
/// For state kept "until some time has passed", where items fall due roughly in the order they were added: telemetry
/// windows waiting for late acknowledgements, fetched pages waiting for their login. `@inlinable`, so the modules using
/// it specialise it for their element (unspecialised, each item was copied through value witnesses).
public struct ExpiringQueue<Element> {
    @usableFromInline var items: [Element] = []
    @usableFromInline var head = 0

    @inlinable public init() {}

    /// The items still queued.
    @inlinable public var count: Int { items.count - head }

    @inlinable public mutating func append(_ item: Element) { items.append(item) }

    /// Takes items off the front while `isDue` says so, handing each to `expire`; stops at the first that is not due
    /// (a later one that is due waits for it).
    @inlinable public mutating func expire(while isDue: (Element) -> Bool, _ expire: (Element) -> Void) {
        while head < items.count, isDue(items[head]) {
            expire(items[head])
            head += 1
        }
        if head > 1_024, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }

    /// Takes every item off, handing each to `expire` in order.
    @inlinable public mutating func expireAll(_ expire: (Element) -> Void) {
        for item in items[head...] { expire(item) }
        items.removeAll()
        head = 0
    }
}

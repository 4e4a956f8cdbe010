/// A first-in, first-out list whose front is taken off as it falls due: an array read from a moving head and
/// compacted now and then, so appending and expiring cost O(1) amortized (the pure targets have no `Deque`).
///
/// For state kept "until some time has passed", where items fall due roughly in the order they were added: telemetry
/// windows waiting for late acknowledgements, fetched pages waiting for their login.
public struct ExpiringQueue<Element> {
    private var items: [Element] = []
    private var head = 0

    public init() {}

    /// The items still queued.
    public var count: Int { items.count - head }

    public mutating func append(_ item: Element) { items.append(item) }

    /// Takes items off the front while `isDue` says so, handing each to `expire`; stops at the first that is not due
    /// (a later one that is due waits for it).
    public mutating func expire(while isDue: (Element) -> Bool, _ expire: (Element) -> Void) {
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
    public mutating func expireAll(_ expire: (Element) -> Void) {
        for item in items[head...] { expire(item) }
        items.removeAll()
        head = 0
    }
}

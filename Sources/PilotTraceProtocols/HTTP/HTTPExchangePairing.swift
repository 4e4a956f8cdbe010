import PilotTraceWire

/// Requests waiting for their responses, per connection: pairs each response with the request it answers (its
/// ``HTTPResponse/requestIndex``), with what the caller attached to the request (a stored row's id, a message
/// reference). One implementation for every consumer of HTTP events: the store, the sessions, the rules, `messages`.
///
/// Bounded by the decoder: a connection has at most its pipelined requests waiting, and ``close(_:)`` drops them.
public struct HTTPExchangePairing<Attachment> {
    typealias Waiting = (index: Int, request: HTTPRequest, attachment: Attachment)
    /// Per connection, its waiting requests in index order; a connection none of whose requests waits has no entry
    /// (a noise connection answered and lingering 30 s after its close holds nothing here).
    var waiting: [ConnectionID: [Waiting]] = [:]

    public init() {}

    /// Connections with a request waiting.
    public var connectionCount: Int { waiting.count }

    /// A request was decoded on connection `id`.
    public mutating func request(_ r: HTTPRequest, on id: ConnectionID, _ attachment: Attachment) {
        Self.insert((r.index, r, attachment), into: &waiting[id, default: []])
    }

    /// Indexes come in order (a pipelined request after the one before it); an index seen again replaces its request.
    static func insert(_ w: Waiting, into list: inout [Waiting]) {
        var at = list.count
        while at > 0 && list[at - 1].index > w.index { at -= 1 }
        if at > 0 && list[at - 1].index == w.index {
            list[at - 1] = w
        } else {
            list.insert(w, at: at)
        }
    }

    /// The request `r` answers, if it was seen. A final response takes it; an informational one (1xx) leaves it
    /// waiting for the final response (RFC 9110 §15.2).
    public mutating func response(_ r: HTTPResponse, on id: ConnectionID) -> (request: HTTPRequest, attachment: Attachment)? {
        guard let index = r.requestIndex, let slot = waiting.index(forKey: id),
            let i = waiting.values[slot].firstIndex(where: { $0.index == index })
        else { return nil }
        let found = waiting.values[slot][i]
        if r.head.isInformational { return (found.request, found.attachment) }
        if waiting.values[slot].count == 1 {
            waiting.remove(at: slot)
        } else {
            waiting.values[slot].remove(at: i)
        }
        return (found.request, found.attachment)
    }

    /// The connection closed: the requests that were never answered, in the order they were sent.
    @discardableResult
    public mutating func close(_ id: ConnectionID) -> [(request: HTTPRequest, attachment: Attachment)] {
        // (A closure, not a key path: a key path into a generic type is instantiated by the runtime at each call,
        // which cost 6 % of a 40-device analysis without storage, once per connection.)
        guard let left = waiting.removeValue(forKey: id) else { return [] }
        return left.map { ($0.request, $0.attachment) }
    }
}

import PilotTraceWire

/// Requests waiting for their responses, per connection: pairs each response with the request it answers (its
/// ``HTTPResponse/requestIndex``), with what the caller attached to the request (a stored row's id, a message
/// reference). One implementation for every consumer of HTTP events: the store, the sessions, the rules, `messages`.
///
/// Bounded by the decoder: a connection has at most its pipelined requests waiting, and ``close(_:)`` drops them.
///
/// Its methods are `@inlinable`: each consumer's module specialises them for its attachment type (unspecialised, every
/// call looked up the tuple's type metadata and copied requests through value witnesses).
public struct HTTPExchangePairing<Attachment> {
    @usableFromInline typealias Waiting = (index: Int, request: HTTPRequest, attachment: Attachment)
    /// Per connection, its waiting requests in index order; a connection none of whose requests waits has no entry
    /// (a noise connection answered and lingering 30 s after its close holds nothing here).
    @usableFromInline var waiting: [ConnectionID: [Waiting]] = [:]

    @inlinable public init() {}

    /// Connections with a request waiting (for the tests).
    var connectionCount: Int { waiting.count }

    /// A request was decoded on connection `id`.
    @inlinable public mutating func request(_ r: HTTPRequest, on id: ConnectionID, _ attachment: Attachment) {
        Self.insert((r.index, r, attachment), into: &waiting[id, default: []])
    }

    /// Indexes come in order (a pipelined request after the one before it); an index seen again replaces its request.
    @inlinable static func insert(_ w: Waiting, into list: inout [Waiting]) {
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
    @inlinable public mutating func response(_ r: HTTPResponse, on id: ConnectionID) -> (request: HTTPRequest, attachment: Attachment)? {
        guard let index = r.requestIndex, let slot = waiting.index(forKey: id),
            let i = waiting.values[slot].firstIndex(where: { $0.index == index })
        else { return nil }
        if r.head.isInformational {
            let found = waiting.values[slot][i]
            return (found.request, found.attachment)
        }
        let found = waiting.values[slot].remove(at: i)  // moved out, not copied
        if waiting.values[slot].isEmpty { waiting.remove(at: slot) }
        return (found.request, found.attachment)
    }

    /// The connection closed: the requests that were never answered, in the order they were sent.
    @discardableResult
    @inlinable public mutating func close(_ id: ConnectionID) -> [(request: HTTPRequest, attachment: Attachment)] {
        // (A closure, not a key path: a key path into a generic type is instantiated by the runtime at each call,
        // which cost 6 % of a 40-device analysis without storage, once per connection.)
        guard let left = waiting.removeValue(forKey: id) else { return [] }
        return left.map { ($0.request, $0.attachment) }
    }
}

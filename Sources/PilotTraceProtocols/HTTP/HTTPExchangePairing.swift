import PilotTraceWire

/// Requests waiting for their responses, per connection: pairs each response with the request it answers (its
/// ``HTTPResponse/requestIndex``), with what the caller attached to the request (a stored row's id, a message
/// reference). One implementation for every consumer of HTTP events: the store, the sessions, the rules, `messages`.
///
/// Bounded by the decoder: a connection has at most its pipelined requests waiting, and ``close(_:)`` drops them.
public struct HTTPExchangePairing<Attachment> {
    var waiting: [ConnectionID: [Int: (request: HTTPRequest, attachment: Attachment)]] = [:]

    public init() {}

    /// A request was decoded on connection `id`.
    public mutating func request(_ r: HTTPRequest, on id: ConnectionID, _ attachment: Attachment) {
        waiting[id, default: [:]][r.index] = (r, attachment)
    }

    /// The request `r` answers, if it was seen. A final response takes it; an informational one (1xx) leaves it
    /// waiting for the final response (RFC 9110 §15.2).
    public mutating func response(_ r: HTTPResponse, on id: ConnectionID) -> (request: HTTPRequest, attachment: Attachment)? {
        guard let index = r.requestIndex else { return nil }
        if r.head.isInformational { return waiting[id]?[index] }
        return waiting[id]?.removeValue(forKey: index)
    }

    /// The connection closed: the requests that were never answered, in the order they were sent.
    @discardableResult
    public mutating func close(_ id: ConnectionID) -> [(request: HTTPRequest, attachment: Attachment)] {
        // (A closure, not `\.value`: a key path into a generic type is instantiated by the runtime at each call,
        // which cost 6 % of a 40-device analysis without storage, once per connection.)
        guard let left = waiting.removeValue(forKey: id), !left.isEmpty else { return [] }
        return left.sorted { $0.key < $1.key }.map { $0.value }
    }
}

/// The topic aliases one sender has bound on a connection (MQTT 5.0 §3.3.2.3.4).
///
/// Each direction has its own table: "Topic Alias mappings exist only within a Network Connection" and the
/// client's and the server's aliases are independent. Memory is bounded by `maxBytes` of topic text; a
/// binding past the bound is not stored (a later use of the alias is then reported as unresolved).
public struct MQTTTopicAliases: Hashable, Sendable {
    public private(set) var topics: [UInt16: String] = [:]
    public private(set) var storedBytes = 0
    public let maxBytes: Int

    public init(maxBytes: Int = 1 << 20) { self.maxBytes = maxBytes }

    public subscript(alias: UInt16) -> String? { topics[alias] }

    /// Applies a PUBLISH's topic and Topic Alias property to the table.
    ///
    /// MQTT 5.0 §3.3.2.3.4: a non-empty topic with an alias (re)binds the alias; an empty topic with an alias
    /// uses the bound topic. Alias 0 is not permitted, so it neither binds nor resolves.
    /// - Returns: the topic to report and where it came from.
    public mutating func apply(topic: String, alias: UInt16?) -> (topic: String, source: MQTTTopicSource) {
        guard let alias else { return (topic, .literal) }
        if topic.isEmpty {
            if alias != 0, let bound = topics[alias] { return (bound, .resolvedFromAlias(alias)) }
            return (topic, .unresolvedAlias(alias))
        }
        guard alias != 0 else { return (topic, .literal) }
        let old = topics[alias]?.utf8.count ?? 0
        let new = topic.utf8.count
        if storedBytes - old + new <= maxBytes {
            topics[alias] = topic
            storedBytes += new - old
            return (topic, .literalBoundToAlias(alias))
        }
        topics[alias] = nil
        storedBytes -= old
        return (topic, .literal)
    }

    public mutating func removeAll() {
        topics.removeAll()
        storedBytes = 0
    }
}

import PilotTraceProtocols

/// What the target did for one replayed step (reported by the I/O shell).
public enum Observation: Sendable {
    case http(status: Int, body: [UInt8], latency: Double)
    /// No response: connection refused or closed, timeout.
    case httpFailed(String)
    case connack(code: Int, latency: Double)
    case connectFailed(String)
    case subscribed(ok: Bool)
    /// A publish went out; `reply` is the `_reply` that came back (nil: none by the deadline).
    case published(tid: String?, bid: String?, reply: [UInt8]?, latency: Double?)
    case publishFailed(String)
    case ended
    /// An earlier failure on the same connection left nothing to run it on.
    case notRun(String)
}

/// One replayed step judged against the recording.
public struct StepResult: Sendable, Codable, Hashable {
    public enum Outcome: String, Sendable, Codable { case matched, changed, missing }

    public var ordinal: Int
    public var kind: String
    public var name: String
    public var outcome: Outcome
    public var differences: [Difference]
    public var recordedLatency: Double?
    public var replayedLatency: Double?

    /// A step regressed when what the recording had is missing, or a difference breaks the flow.
    public var regression: Bool { outcome == .missing || differences.contains(where: \.regression) }

    enum CodingKeys: String, CodingKey {
        case ordinal, kind, name, outcome, differences
        case recordedLatency = "recorded_latency"
        case replayedLatency = "replayed_latency"
    }
}

/// One way a replayed step differs from the recording.
public struct Difference: Sendable, Codable, Hashable {
    /// `status`, `code`, `shape`, `connack`, `reply`, `tid`, `bid`, `result`, `error`.
    public var what: String
    /// A JSON path for shape differences.
    public var path: String?
    public var recorded: String
    public var replayed: String
    /// Whether it breaks what the recording shows worked (an added key or a reply the recording lacked does not).
    public var regression: Bool

    public init(what: String, path: String? = nil, recorded: String, replayed: String, regression: Bool) {
        self.what = what
        self.path = path
        self.recorded = recorded
        self.replayed = replayed
        self.regression = regression
    }
}

/// Compares a replayed step with the recording: HTTP status, envelope `code`, JSON shape (keys and value types,
/// volatile members and `--ignore` paths left out); MQTT CONNACK code, reply received, `tid`/`bid` echoed, `result`;
/// latencies are reported, not judged.
public struct StepComparison: Sendable {
    public var ignore: [JSONPathPattern]
    public var ignoreVolatile: Bool

    public init(ignore: [JSONPathPattern] = [], ignoreVolatile: Bool = true) {
        self.ignore = ignore
        self.ignoreVolatile = ignoreVolatile
    }

    public func compare(_ step: ReplayPlan.Step, _ observation: Observation) -> StepResult {
        var r = StepResult(ordinal: step.ordinal, kind: step.kind, name: step.name, outcome: .matched, differences: [])
        func missing(_ why: String) { r.outcome = .missing; r.differences.append(Difference(what: "error", recorded: "", replayed: why, regression: true)) }
        switch (step.expectation, observation) {
        case let (_, .notRun(why)):
            missing(why)
        case let (.http(status, body, latency), .http(newStatus, newBody, newLatency)):
            (r.recordedLatency, r.replayedLatency) = (latency, newLatency)
            guard let status else { break }  // no recorded response: anything goes
            if status != newStatus {
                r.differences.append(Difference(what: "status", recorded: String(status), replayed: String(newStatus), regression: true))
            }
            let old = try? JSONValue.parse(body), new = try? JSONValue.parse(newBody)
            if let old, let new {
                let code = old["code"].map(\.compact), newCode = new["code"].map(\.compact)
                if code != newCode {
                    r.differences.append(
                        Difference(
                            what: "code", path: "$.code", recorded: code ?? "absent", replayed: newCode ?? "absent",
                            regression: true))
                }
                r.differences += JSONShape.differences(old, new, ignore: ignore, volatile: ignoreVolatile)
            } else if old != nil, new == nil {
                r.differences.append(
                    Difference(
                        what: "shape", path: "$", recorded: "JSON", replayed: newBody.isEmpty ? "empty body" : "not JSON",
                        regression: true))
            }
        case let (.http(status, _, latency), .httpFailed(why)):
            r.recordedLatency = latency
            if status != nil {
                missing(why)
            } else {
                r.differences.append(Difference(what: "error", recorded: "no response", replayed: why, regression: false))
            }
        case let (.connack(code, latency), .connack(newCode, newLatency)):
            (r.recordedLatency, r.replayedLatency) = (latency, newLatency)
            if let code, code != newCode {
                r.differences.append(Difference(what: "connack", recorded: String(code), replayed: String(newCode), regression: newCode != 0))
            }
        case let (.connack(code, latency), .connectFailed(why)):
            r.recordedLatency = latency
            if code != nil { missing(why) }
        case (.suback, .subscribed(let ok)):
            if !ok { r.differences.append(Difference(what: "suback", recorded: "granted", replayed: "refused", regression: true)) }
        case let (.reply(recorded), .published(tid, bid, reply, latency)):
            r.recordedLatency = recorded?.latency
            r.replayedLatency = latency
            switch (recorded, reply) {
            case (nil, nil): break
            case (nil, let reply?):
                r.differences.append(Difference(what: "reply", recorded: "none", replayed: Self.describe(reply), regression: false))
            case (.some, nil):
                r.outcome = .missing
                r.differences.append(Difference(what: "reply", recorded: "received", replayed: "none within the deadline", regression: true))
            case let (recorded?, reply?):
                let old = try? JSONValue.parse(recorded.payload), new = try? JSONValue.parse(reply)
                if let tid, new?["tid"].flatMap(ReplayPlan.string) != tid {
                    r.differences.append(
                        Difference(
                            what: "tid", path: "$.tid", recorded: "echoed", replayed: new?["tid"]?.compact ?? "absent",
                            regression: true))
                }
                if let bid, old?["bid"] != nil || new?["bid"] != nil, new?["bid"].flatMap(ReplayPlan.string) != bid {
                    r.differences.append(
                        Difference(
                            what: "bid", path: "$.bid", recorded: "echoed", replayed: new?["bid"]?.compact ?? "absent",
                            regression: true))
                }
                let result = old?["data"]?["result"]?.compact, newResult = new?["data"]?["result"]?.compact
                if result != newResult {
                    r.differences.append(
                        Difference(
                            what: "result", path: "$.data.result", recorded: result ?? "absent",
                            replayed: newResult ?? "absent", regression: newResult != "0"))
                }
                if let old, let new { r.differences += JSONShape.differences(old, new, ignore: ignore, volatile: ignoreVolatile) }
            }
        case let (.reply(recorded), .publishFailed(why)):
            r.recordedLatency = recorded?.latency
            missing(why)
        case (.none, .ended), (.suback, _), (.none, _):
            break
        case let (_, .httpFailed(why)), let (_, .connectFailed(why)), let (_, .publishFailed(why)):
            missing(why)
        default:
            missing("the replay observed something else than the recording had")
        }
        if r.outcome == .matched, !r.differences.isEmpty { r.outcome = .changed }
        return r
    }

    static func describe(_ payload: [UInt8]) -> String {
        guard let json = try? JSONValue.parse(payload) else { return "\(payload.count) bytes" }
        return "result \(json["data"]?["result"]?.compact ?? "absent")"
    }
}

/// A `--ignore` path: `$.data.workspace_name`, `data.list[*].hosts`, `$..timestamp` (any depth), `*` for any key.
public struct JSONPathPattern: Sendable, Hashable, CustomStringConvertible {
    enum Part: Hashable { case key(String), anyKey, anyIndex, anyDepth }
    let parts: [Part]
    public let description: String

    /// Parses a path; nil when it is empty or malformed.
    public init?(_ text: String) {
        description = text
        var s = Substring(text)
        if s.hasPrefix("$") { s = s.dropFirst() }
        var parts: [Part] = []
        while !s.isEmpty {
            if s.hasPrefix("..") {
                parts.append(.anyDepth)
                s = s.dropFirst(2)
            } else if s.hasPrefix(".") {
                s = s.dropFirst()
            } else if s.hasPrefix("[") {
                guard let close = s.firstIndex(of: "]") else { return nil }
                let inner = s[s.index(after: s.startIndex)..<close]
                if inner == "*" || inner.isEmpty || Int(inner) != nil {
                    parts.append(.anyIndex)
                } else {
                    parts.append(.key(String(inner.trimmingQuotes)))
                }
                s = s[s.index(after: close)...]
                continue
            }
            let key = s.prefix { $0 != "." && $0 != "[" }
            if key.isEmpty { continue }
            parts.append(key == "*" ? .anyKey : .key(String(key)))
            s = s.dropFirst(key.count)
        }
        guard !parts.isEmpty else { return nil }
        self.parts = parts
    }

    /// Whether `path` (keys, `[]` for array elements) is this pattern or lies under it.
    func covers(_ path: [String]) -> Bool { Self.match(parts[...], path[...]) }

    static func match(_ p: ArraySlice<Part>, _ path: ArraySlice<String>) -> Bool {
        guard let first = p.first else { return true }  // a prefix: the subtree is covered
        switch first {
        case .anyDepth:
            var rest = path
            while true {
                if match(p.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        case .anyKey:
            guard let k = path.first, k != "[]" else { return false }
            return match(p.dropFirst(), path.dropFirst())
        case .anyIndex:
            guard path.first == "[]" else { return false }
            return match(p.dropFirst(), path.dropFirst())
        case .key(let key):
            guard path.first == key else { return false }
            return match(p.dropFirst(), path.dropFirst())
        }
    }
}

extension Substring {
    var trimmingQuotes: Substring {
        var s = self
        if s.hasPrefix("'") || s.hasPrefix("\"") { s = s.dropFirst() }
        if s.hasSuffix("'") || s.hasSuffix("\"") { s = s.dropLast() }
        return s
    }
}

/// JSON compared by shape: which keys, which value types; values themselves are not compared.
enum JSONShape {
    /// Member names whose presence and type vary between clouds and runs (tokens, times, ids): left out of the
    /// comparison unless `--strict-volatile`.
    static func isVolatile(_ key: String) -> Bool {
        let k = key.lowercased()
        if ["tid", "bid", "timestamp", "time", "nonce", "uuid", "request_id", "requestid", "exp", "iat", "nbf"].contains(k) { return true }
        return k.contains("token") || k.hasSuffix("_time") || k.hasSuffix("_at") || k.hasSuffix("_uuid") || k.hasSuffix("timestamp")
    }

    static func type(_ v: JSONValue) -> String {
        switch v {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    static func text(_ path: [String]) -> String {
        "$" + path.map { $0 == "[]" ? "[*]" : ".\($0)" }.joined()
    }

    static func differences(_ old: JSONValue, _ new: JSONValue, ignore: [JSONPathPattern], volatile: Bool) -> [Difference] {
        var out: [Difference] = []
        walk(old, new, path: [], ignore: ignore, volatile: volatile, into: &out)
        return out
    }

    static func walk(_ old: JSONValue, _ new: JSONValue, path: [String], ignore: [JSONPathPattern], volatile: Bool, into out: inout [Difference]) {
        if ignore.contains(where: { $0.covers(path) }) { return }
        if volatile, let key = path.last(where: { $0 != "[]" }), isVolatile(key) { return }
        let (a, b) = (type(old), type(new))
        guard a == b else {
            // null ↔ something is a change of content more than of shape, but still a change clients see.
            out.append(Difference(what: "shape", path: text(path), recorded: a, replayed: b, regression: true))
            return
        }
        switch (old, new) {
        case let (.object(m), .object(n)):
            let newKeys = Set(n.map(\.0))
            let oldKeys = Set(m.map(\.0))
            for (k, v) in m {
                if let w = n.first(where: { $0.0 == k })?.1 {
                    walk(v, w, path: path + [k], ignore: ignore, volatile: volatile, into: &out)
                } else if !newKeys.contains(k), !ignored(path + [k], ignore, volatile) {
                    out.append(Difference(what: "shape", path: text(path + [k]), recorded: type(v), replayed: "absent", regression: true))
                }
            }
            var added: Set<String> = []
            for (k, v) in n where !oldKeys.contains(k) && !added.contains(k) && !ignored(path + [k], ignore, volatile) {
                added.insert(k)
                out.append(Difference(what: "shape", path: text(path + [k]), recorded: "absent", replayed: type(v), regression: false))
            }
        case let (.array(x), .array(y)):
            // Elements are compared by the shape of the first of each (lists differ in length between clouds).
            if let first = x.first, let other = y.first { walk(first, other, path: path + ["[]"], ignore: ignore, volatile: volatile, into: &out) }
        default:
            break
        }
    }

    static func ignored(_ path: [String], _ ignore: [JSONPathPattern], _ volatile: Bool) -> Bool {
        if ignore.contains(where: { $0.covers(path) }) { return true }
        if volatile, let key = path.last, isVolatile(key) { return true }
        return false
    }
}

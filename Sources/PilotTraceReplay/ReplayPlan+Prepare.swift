import PilotTraceProtocols

/// Fresh identifiers for a replayed publish (injected: the core reads no clock and draws no random numbers).
public struct FreshValues {
    public var uuid: () -> String
    public var nowMilliseconds: () -> Int64
    public init(uuid: @escaping () -> String, nowMilliseconds: @escaping () -> Int64) {
        self.uuid = uuid
        self.nowMilliseconds = nowMilliseconds
    }
}

extension ReplayPlan {
    /// What to send for one step.
    public struct Prepared: Sendable {
        public var action: Action
        /// A publish's `tid` and `bid` as sent (to check the reply echoes them).
        public var tid: String?
        public var bid: String?
        /// Variables whose recorded value was replaced, by name.
        public var substituted: [String]
    }

    /// The step's action with the variables it uses set to the target's values (`bindings`; a `--set` in
    /// `overrides` wins), other `--set` names applied to the fields of that name, and, for a publish, fresh `tid`,
    /// `bid` and `timestamp` unless `fresh` is nil (`--verbatim`) or the topic is a `_reply` (it answers the cloud's
    /// own tid).
    public func prepare(_ step: Step, bindings: [String: String], overrides: [String: String], fresh: FreshValues?) -> Prepared {
        var replacements: [(String, String)] = []
        var substituted: [String] = []
        for v in variables where v.usedBy.contains(step.ordinal) {
            guard let new = overrides[v.name] ?? bindings[v.name], new != v.value else { continue }
            replacements.append((v.value, new))
            substituted.append(v.name)
        }
        let variableNames = Set(variables.map(\.name))
        let fieldOverrides = overrides.filter { !variableNames.contains($0.key) }
        switch step.action {
        case let .http(c, method, target, headers, body):
            var (path, query) = Self.split(target)
            path = path.split(separator: "/", omittingEmptySubsequences: false).map { segment in
                Self.replaceWhole(String(segment), replacements)
            }.joined(separator: "/")
            if let q = query {
                query = Self.queryItems(q).map { k, v in
                    if let o = fieldOverrides[k] { return "\(k)=\(Self.percentEncoded(o))" }
                    let decoded = Self.percentDecoded(v) ?? v
                    let replaced = Self.replace(decoded, replacements)
                    return replaced == decoded ? "\(k)=\(v)" : "\(k)=\(Self.percentEncoded(replaced))"
                }.joined(separator: "&")
            }
            let newHeaders = headers.map { k, v -> (String, String) in
                if let o = fieldOverrides.first(where: { $0.key.lowercased() == k.lowercased() })?.value { return (k, o) }
                return (k, Self.replace(v, replacements))
            }
            var newBody = body
            if !body.isEmpty, let json = try? JSONValue.parse(body) {
                let rewritten = Self.rewrite(json, replacements, fieldOverrides)
                if rewritten != json { newBody = Array(rewritten.compact.utf8) }
            } else if !body.isEmpty, let text = String(validating: body, as: UTF8.self) {
                let replaced = Self.replace(text, replacements.filter { $0.0.count >= Self.substringMinimum })
                if replaced != text { newBody = Array(replaced.utf8) }
            }
            return Prepared(
                action: .http(
                    connection: c, method: method, target: path + (query.map { "?" + $0 } ?? ""), headers: newHeaders,
                    body: newBody),
                substituted: substituted)
        case let .connect(c, clientID, username, password, keepAlive, version, ws):
            let user = fieldOverrides["mqtt_username"] ?? username.map { Self.replaceWhole($0, replacements) }
            var pass = password
            if let o = fieldOverrides["mqtt_password"] {
                pass = Array(o.utf8)
            } else if let p = password, let text = String(validating: p, as: UTF8.self) {
                pass = Array(Self.replaceWhole(text, replacements).utf8)
            }
            return Prepared(
                action: .connect(
                    connection: c, clientID: fieldOverrides["client_id"] ?? clientID, username: user, password: pass,
                    keepAlive: keepAlive, version: version, overWebSocket: ws),
                substituted: substituted)
        case let .publish(c, topic, payload, qos, retain):
            guard var json = try? JSONValue.parse(payload), case .object(var members) = json else {
                return Prepared(action: step.action, substituted: substituted)
            }
            if let fresh, !topic.hasSuffix("_reply") {
                for i in members.indices {
                    switch (members[i].0, members[i].1) {
                    case ("tid", .string), ("bid", .string): members[i].1 = .string(fresh.uuid())
                    case ("timestamp", .number): members[i].1 = .number(JSONNumber(Double(fresh.nowMilliseconds())))
                    default: break
                    }
                }
                json = .object(members)
            }
            let tid = json["tid"].flatMap(Self.string), bid = json["bid"].flatMap(Self.string)
            let bytes = fresh == nil || topic.hasSuffix("_reply") ? payload : Array(json.compact.utf8)
            return Prepared(
                action: .publish(connection: c, topic: topic, payload: bytes, qos: qos, retain: retain), tid: tid, bid: bid,
                substituted: substituted)
        default:
            return Prepared(action: step.action, substituted: substituted)
        }
    }

    /// The target's values of the variables `step`'s response defines, read from that response at the recorded paths.
    public func bindings(definedBy step: Step, response: [UInt8]) -> [String: String] {
        let defined = variables.filter { $0.definedBy == step.ordinal }
        guard !defined.isEmpty, let json = try? JSONValue.parse(response) else { return [:] }
        var out: [String: String] = [:]
        for v in defined {
            var node: JSONValue? = json
            for key in v.path {
                if let i = Int(key), case .array = node { node = node?[i] } else { node = node?[key] }
            }
            if let node, case .string(let s) = node { out[v.name] = s }
        }
        return out
    }

    static func replaceWhole(_ s: String, _ replacements: [(String, String)]) -> String {
        for (old, new) in replacements where s == old { return new }
        return replace(s, replacements.filter { $0.0.count >= substringMinimum })
    }

    /// `s` with each recorded value replaced: a whole match always, inside a longer text (`Bearer …`, a query) only
    /// for values of ``substringMinimum`` characters or more.
    static func replace(_ s: String, _ replacements: [(String, String)]) -> String {
        var s = s
        for (old, new) in replacements {
            if s == old { return new }
            if old.count >= substringMinimum, s.contains(old) { s = s.replacingAll(old, with: new) }
        }
        return s
    }

    static func rewrite(_ json: JSONValue, _ replacements: [(String, String)], _ overrides: [String: String]) -> JSONValue {
        switch json {
        case .string(let s): return .string(replaceWhole(s, replacements))
        case .array(let a): return .array(a.map { rewrite($0, replacements, overrides) })
        case .object(let m):
            return .object(
                m.map { k, v in
                    if let o = overrides[k] {
                        if case .number = v, let n = JSONNumber(literal: o) { return (k, .number(n)) }
                        return (k, .string(o))
                    }
                    return (k, rewrite(v, replacements, overrides))
                })
        default: return json
        }
    }
}

extension String {
    /// Every occurrence of `old` replaced by `new` (no Foundation in the pure core).
    func replacingAll(_ old: String, with new: String) -> String {
        guard !old.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let r = rest.firstRange(of: old) {
            out += rest[..<r.lowerBound]
            out += new
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

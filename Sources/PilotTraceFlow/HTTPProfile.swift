import PilotTraceProtocols

/// Which HTTP routes are which steps. The built-in default is the reference demo's (protocol reference §2.2,
/// §2.3); recognition also works by content, so a cloud with other paths is still understood. A user profile
/// (JSON) maps their own routes.
///
/// A pattern matches a path when it equals it, when the path ends with it (`/login` matches
/// `/manage/api/v1/login`), or, with `*` wildcards, when the whole path matches (`/api/*/token/renew`).
public struct HTTPProfile: Hashable, Sendable, Codable {
    public var h5Page: [String]
    public var login: [String]
    public var tokenRefresh: [String]
    public var workspace: [String]
    public var user: [String]
    public var topology: [String]

    public init(h5Page: [String], login: [String], tokenRefresh: [String], workspace: [String], user: [String], topology: [String]) {
        self.h5Page = h5Page
        self.login = login
        self.tokenRefresh = tokenRefresh
        self.workspace = workspace
        self.user = user
        self.topology = topology
    }

    /// The reference demo's routes.
    public static let reference = HTTPProfile(
        h5Page: ["/pilot-login"], login: ["/manage/api/v1/login"], tokenRefresh: ["/manage/api/v1/token/refresh"],
        workspace: ["/manage/api/v1/workspaces/current"], user: ["/manage/api/v1/users/current"],
        topology: ["/manage/api/v1/workspaces/*/devices/topologies"])

    enum CodingKeys: String, CodingKey {
        case h5Page = "h5_page", login, tokenRefresh = "token_refresh", workspace, user, topology
    }

    /// Decodes a profile; absent keys keep the reference routes.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let r = HTTPProfile.reference
        h5Page = try c.decodeIfPresent([String].self, forKey: .h5Page) ?? r.h5Page
        login = try c.decodeIfPresent([String].self, forKey: .login) ?? r.login
        tokenRefresh = try c.decodeIfPresent([String].self, forKey: .tokenRefresh) ?? r.tokenRefresh
        workspace = try c.decodeIfPresent([String].self, forKey: .workspace) ?? r.workspace
        user = try c.decodeIfPresent([String].self, forKey: .user) ?? r.user
        topology = try c.decodeIfPresent([String].self, forKey: .topology) ?? r.topology
    }

    static func matches(_ patterns: [String], _ path: String) -> Bool {
        patterns.contains { p in
            // Byte checks, not Foundation's `contains` (a locale-aware search, thousands of instructions per call).
            if p.utf8.contains(UInt8(ascii: "*")) { return glob(Array(p.utf8)[...], Array(path.utf8)[...]) }
            return path == p || path.hasSuffix(p)
        }
    }

    /// Whether `text` contains `needle`, byte for byte.
    static func containsASCII(_ text: String, _ needle: StaticString) -> Bool {
        let n = UnsafeBufferPointer(start: needle.utf8Start, count: needle.utf8CodeUnitCount)
        guard !n.isEmpty else { return true }
        let t = Array(text.utf8)
        guard t.count >= n.count else { return false }
        for i in 0...(t.count - n.count) where t[i] == n[0] {
            if t[i..<(i + n.count)].elementsEqual(n) { return true }
        }
        return false
    }

    /// `*` matches any run of characters except `/`.
    static func glob(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
        guard let first = p.first else { return s.isEmpty }
        if first == UInt8(ascii: "*") {
            var i = s.startIndex
            while true {
                if glob(p.dropFirst(), s[i...]) { return true }
                guard i < s.endIndex, s[i] != UInt8(ascii: "/") else { return false }
                i += 1
            }
        }
        guard let c = s.first, c == first else { return false }
        return glob(p.dropFirst(), s.dropFirst())
    }
}

/// What one HTTP exchange means for the flow: the steps it makes and the values it hands out.
struct HTTPStepMatch {
    var steps: [(step: Step, ok: Bool, detail: JSONValue)] = []
    /// The token the request presented.
    var presentedToken: String?
    /// A token the response issued.
    var issuedToken: String?
    var mqttUsername: String?
    var mqttPassword: String?
    var mqttAddress: String?
    var isHTMLPage = false
}

enum HTTPStepRecognizer {
    /// The token a request presents: `X-Auth-Token`, `Authorization: Bearer`, or an `x-auth-token` query parameter.
    static func token(_ r: HTTPRequest) -> String? {
        if let t = r.headers["x-auth-token"], !t.isEmpty { return t }
        if let a = r.headers["authorization"], a.lowercased().hasPrefix("bearer ") { return String(a.dropFirst(7)) }
        for item in r.head.queryItems where item.name.lowercased() == "x-auth-token" { return item.value }
        return nil
    }

    /// The envelope (`{"code","message","data"}`) of a JSON body, if it has one.
    static func envelope(_ body: HTTPBody) -> (code: Int64?, message: String?, data: JSONValue?)? {
        guard let json = body.json, case .object = json else { return nil }
        return (json["code"]?.int64Value, json["message"]?.stringValue, json["data"])
    }

    static func recognize(_ request: HTTPRequest?, _ response: HTTPResponse?, profile: HTTPProfile) -> HTTPStepMatch {
        var m = HTTPStepMatch()
        let path = request?.head.path ?? ""
        let method = request?.method ?? response?.requestMethod ?? ""
        m.presentedToken = request.flatMap(token)
        guard let response, !response.head.isInformational else { return m }
        let status = response.status
        let env = envelope(response.body)
        let payload = env?.data ?? response.body.json
        let code = env?.code
        let okEnvelope = (200..<300).contains(status) && (code == nil || code == 0)
        var base: [(String, JSONValue?)] = [("method", .text(method)), ("path", .text(path)), ("status", .int(status))]
        if let code { base.append(("code", .int(Int(code)))) }
        if let message = env?.message, !(okEnvelope) { base.append(("message", .text(message))) }

        let contentType = response.headers["content-type"]?.lowercased() ?? ""
        if method == "GET", HTTPProfile.containsASCII(contentType, "text/html") || HTTPProfile.matches(profile.h5Page, path) {
            m.isHTMLPage = true
            m.steps.append((.h5Page, (200..<400).contains(status), .members(base)))
        }

        let isLoginPath = HTTPProfile.matches(profile.login, path)
        let isRefreshPath = HTTPProfile.matches(profile.tokenRefresh, path)
        let issued = payload?["access_token"]?.stringValue
        if let issued, okEnvelope {
            m.issuedToken = issued
            let refresh = isRefreshPath || (!isLoginPath && m.presentedToken != nil)
            var d = base
            d.append(("workspace_id", .text(payload?["workspace_id"]?.stringValue)))
            d.append(("username", .text(payload?["username"]?.stringValue)))
            m.steps.append((refresh ? .tokenRefresh : .login, true, .members(d)))
        } else if isLoginPath {
            m.steps.append((.loginFailed, false, .members(base)))
        } else if isRefreshPath {
            m.steps.append((.tokenRefresh, false, .members(base)))
        }

        // A request that presented a token, answered 401 (or an envelope saying the token is bad).
        let tokenCodes: Set<Int64> = [401, 600101, 600102, 600103, 600104]
        if m.presentedToken != nil, !isRefreshPath || !okEnvelope,
            status == 401 || (code.map { tokenCodes.contains($0) } ?? false)
        {
            m.steps.append((.tokenRejected, false, .members(base)))
        }

        if let p = payload, okEnvelope, p["mqtt_addr"] != nil || (p["mqtt_username"] != nil && p["mqtt_password"] != nil) {
            m.mqttAddress = p["mqtt_addr"]?.stringValue
            m.mqttUsername = p["mqtt_username"]?.stringValue
            m.mqttPassword = p["mqtt_password"]?.stringValue
            m.steps.append(
                (
                    .mqttCredentials, true,
                    .members(
                        base + [
                            ("mqtt_addr", .text(m.mqttAddress)), ("mqtt_username", .text(m.mqttUsername)),
                            ("mqtt_password_present", .bool(m.mqttPassword != nil)),
                        ])
                ))
        }

        if let p = payload, okEnvelope, p["platform_name"] != nil || p["workspace_name"] != nil {
            m.steps.append(
                (
                    .workspaceInfo, true,
                    .members(
                        base + [
                            ("platform_name", .text(p["platform_name"]?.stringValue)), ("workspace_name", .text(p["workspace_name"]?.stringValue)),
                            ("workspace_id", .text(p["workspace_id"]?.stringValue)),
                        ])
                ))
        } else if HTTPProfile.matches(profile.workspace, path), !okEnvelope, !m.steps.contains(where: { $0.step == .tokenRejected }) {
            m.steps.append((.workspaceInfo, false, .members(base)))
        }

        if HTTPProfile.matches(profile.topology, path) || path.hasSuffix("/devices/topologies") {
            var devices: Int?
            if case .array(let list)? = payload?["list"] ?? payload { devices = list.count }
            m.steps.append((.topologyFetch, okEnvelope, .members(base + [("devices", .int(devices))])))
        }
        return m
    }
}

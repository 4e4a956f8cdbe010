import PilotTraceProtocols
import PilotTraceWire

/// H5 contexts: the HTTP side of a login (page, token, MQTT credentials), grouped until a device connection claims it.
extension SessionTracker {
    struct H5Context {
        var client: String
        var tokens: Set<String> = []
        var mqttUsername: String?
        /// SHA-256 of the MQTT password the cloud issued: compared with a CONNECT's, never kept in clear.
        var mqttPasswordDigest: [UInt8]?
        /// The request that issued the MQTT credentials (`POST /manage/api/v1/login`), and when.
        var credentialsSource: (request: String, time: Timestamp)?
        var events: [TimelineEvent] = []
        var session: Int?
        var hasFlowStep = false
        var last: Timestamp
    }

    /// The H5 contexts held, by id (ids grow in the order contexts begin), with indexes by client address, token, MQTT
    /// username and session: finding a request's or a CONNECT's context looks at its own address's, token's or
    /// user's few contexts instead of every login in flight (a linear scan grew ×6 for 4× the devices of a login
    /// storm). Every list is kept in id order, so "the latest" and ties fall as they did in one array.
    struct H5Contexts {
        private(set) var byID: [Int: H5Context] = [:]
        private var nextID = 0
        private var byClient: [String: [Int]] = [:]
        private var byToken: [String: [Int]] = [:]
        private var byUsername: [String: [Int]] = [:]
        private var bySession: [Int: [Int]] = [:]

        var count: Int { byID.count }
        /// Every id, oldest first.
        var ids: [Int] { byID.keys.sorted() }

        /// A context; changing its tokens, MQTT username or session moves it in the indexes.
        subscript(id: Int) -> H5Context {
            get { byID[id]! }
            _modify {
                let (tokens, username, session) = (byID[id]!.tokens, byID[id]!.mqttUsername, byID[id]!.session)
                yield &byID[id]!
                let now = byID[id]!
                if now.tokens != tokens {
                    for t in tokens.subtracting(now.tokens) { Self.remove(id, t, from: &byToken) }
                    for t in now.tokens.subtracting(tokens) { Self.insert(id, t, into: &byToken) }
                }
                if now.mqttUsername != username {
                    if let username { Self.remove(id, username, from: &byUsername) }
                    if let u = now.mqttUsername { Self.insert(id, u, into: &byUsername) }
                }
                if now.session != session {
                    if let session { Self.remove(id, session, from: &bySession) }
                    if let s = now.session { Self.insert(id, s, into: &bySession) }
                }
            }
        }

        mutating func append(_ c: H5Context) -> Int {
            let id = nextID
            nextID += 1
            byID[id] = c
            Self.insert(id, c.client, into: &byClient)
            for t in c.tokens { Self.insert(id, t, into: &byToken) }
            if let u = c.mqttUsername { Self.insert(id, u, into: &byUsername) }
            if let s = c.session { Self.insert(id, s, into: &bySession) }
            return id
        }

        /// Forgets the contexts of session `serial`.
        mutating func removeAll(session serial: Int) {
            for id in bySession.removeValue(forKey: serial) ?? [] {
                guard let c = byID.removeValue(forKey: id) else { continue }
                Self.remove(id, c.client, from: &byClient)
                for t in c.tokens { Self.remove(id, t, from: &byToken) }
                if let u = c.mqttUsername { Self.remove(id, u, from: &byUsername) }
            }
        }

        /// The latest context holding `token`, from `client` if one is.
        func latest(token: String, preferring client: String) -> Int? {
            guard let list = byToken[token] else { return nil }
            return list.last { byID[$0]!.client == client } ?? list.last
        }

        /// The latest context from `client` that `matches`.
        func latest(client: String, where matches: (H5Context) -> Bool = { _ in true }) -> Int? {
            byClient[client]?.last { matches(byID[$0]!) }
        }

        /// The contexts from `client`, oldest first.
        func ids(client: String) -> [Int] { byClient[client] ?? [] }
        /// The contexts that handed out MQTT username `username`, oldest first.
        func ids(username: String) -> [Int] { byUsername[username] ?? [] }

        private static func insert<Key: Hashable>(_ id: Int, _ key: Key, into index: inout [Key: [Int]]) {
            index[key, default: []].append(id)
            if let list = index[key], list.count > 1, list[list.count - 2] > id { index[key]!.sort() }
        }

        private static func remove<Key: Hashable>(_ id: Int, _ key: Key, from index: inout [Key: [Int]]) {
            guard var list = index[key], let i = list.firstIndex(of: id) else { return }
            list.remove(at: i)
            index[key] = list.isEmpty ? nil : list
        }
    }

    /// Steps that begin a login: in a context whose session is over they begin a new context instead (the app
    /// re-opened after a DISCONNECT loads its page and token again for the device's next session).
    static let loginStarts: Set<Step> = [.h5Page, .login, .loginFailed, .tokenRefresh, .tokenRejected]

    static func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var h = SHA256()
        h.update(Array(bytes))
        return h.finalize()
    }

    func http(_ id: ConnectionID, _ e: HTTPConnectionEvent, _ ref: MessageRef?) {
        switch e {
        case .request(let r):
            requests.request(r, on: id, ref)
        case .response(let r):
            guard !r.head.isInformational else { return }
            let pending = requests.response(r, on: id)
            advance(to: r.span.lastByteAt)
            exchange(id, pending?.request, r, ref ?? pending?.attachment)
        default:
            break
        }
    }

    /// Whether context `i` belongs to a session that is over (DISCONNECT, or offline after the grace).
    func sessionIsOver(_ i: Int) -> Bool {
        guard let s = contexts[i].session else { return false }
        return sessions[s]?.lifecycle.isOver ?? true
    }

    /// Forgets the pages fetched before `cutoff` that no login claimed (a page fetched again later stays).
    func forgetUnclaimedPages(before cutoff: Timestamp) {
        pageQueue.expire(while: { $0.time < cutoff }) { page in
            if lastPage[page.address]?.time == page.time { lastPage[page.address] = nil }
        }
    }

    func exchange(_ id: ConnectionID, _ request: HTTPRequest?, _ response: HTTPResponse, _ ref: MessageRef?) {
        if let request, BridgeReport.isReport(method: request.method, path: request.head.path) {
            bridge(id, request, ref)
            return
        }
        let m = HTTPStepRecognizer.recognize(request, response, profile: configuration.profile)
        guard !m.steps.isEmpty, let info = infos[id] else { return }
        let addr = address(info.client)
        let time = request?.span.firstByteAt ?? response.span.firstByteAt
        let latency = request.map { response.span.lastByteAt.seconds(since: $0.span.lastByteAt) }
        let issued = m.mqttPassword.map { Self.digest($0.utf8) }
        let events = m.steps.map {
            TimelineEvent(
                time: time, step: $0.step, ok: $0.ok, latency: latency, connection: id, message: ref, detail: $0.detail,
                credential: $0.step == .mqttCredentials ? issued : nil)
        }
        if m.isHTMLPage, m.steps.count == 1 {
            lastPage[addr] = events[0]  // claimed by the login that follows, if any
            pageQueue.append((addr, events[0].time))
            return
        }
        // The context: by the token presented (from this address first: the demo's tokens carry no unique id, so
        // two remote controllers logging in to one account within a second get the same token), else a fresh one
        // for a login from this address.
        var ctx = m.presentedToken.flatMap { contexts.latest(token: $0, preferring: addr) }
        if ctx == nil, m.presentedToken == nil || m.issuedToken != nil {
            ctx = contexts.latest(client: addr) { $0.session == nil && $0.tokens.isEmpty }
        }
        // A request that should have carried a token but did not belongs to the latest context of its address.
        if ctx == nil, m.presentedToken == nil, m.issuedToken == nil, !m.steps.contains(where: { [.login, .loginFailed].contains($0.step) }) {
            ctx = contexts.latest(client: addr)
        }
        // The token of a session that is over, presented again to begin a login: the next session's context.
        var inherited: Set<String> = []
        if let i = ctx, sessionIsOver(i), m.steps.contains(where: { Self.loginStarts.contains($0.step) }) {
            inherited = contexts[i].tokens
            ctx = nil
        }
        let i: Int
        if let ctx {
            i = ctx
        } else {
            var fresh = H5Context(client: addr, tokens: inherited, last: time)
            if let page = lastPage.removeValue(forKey: addr) { fresh.events.append(page) }
            // A stored token whose issue the capture never saw (§1.2): later requests with it join this context
            // (unless the cloud rejected it: the login that follows starts the context afresh).
            if let t = m.presentedToken, !m.steps.contains(where: { $0.step == .tokenRejected }) { fresh.tokens.insert(t) }
            i = contexts.append(fresh)
        }
        if let t = m.issuedToken { contexts[i].tokens.insert(t) }
        if let u = m.mqttUsername { contexts[i].mqttUsername = u }
        if let issued { contexts[i].mqttPasswordDigest = issued }
        if m.mqttUsername != nil || m.mqttPassword != nil, let request {
            let path = request.head.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.head.path
            contexts[i].credentialsSource = ("\(request.method) \(path)", time)
        }
        contexts[i].last = max(contexts[i].last, time)
        contexts[i].hasFlowStep = true
        if let s = contexts[i].session, let w = sessions[s] {
            for e in events { add(w, e) }
        } else {
            contexts[i].events += events
        }
    }

    /// A JSBridge report from the proxy's injected script: one event per call the timeline shows, each at the
    /// report's capture time less the delay the page measured, in the H5 context of the same client address
    /// (the page's own context: the bridge presents no token).
    func bridge(_ id: ConnectionID, _ request: HTTPRequest, _ ref: MessageRef?) {
        guard let report = BridgeReport(request.body.json), let info = infos[id] else { return }
        let sent = request.span.firstByteAt
        let events = report.calls.compactMap { call -> TimelineEvent? in
            guard let (step, ok, detail) = BridgeReport.step(call) else { return nil }
            return TimelineEvent(
                time: sent.adding(seconds: -call.secondsBeforeSending), step: step, ok: ok, connection: id, message: ref,
                detail: detail)
        }
        guard let firstTime = events.first?.time else { return }
        let addr = address(info.client)
        let i: Int
        if let existing = contexts.latest(client: addr) {
            i = existing
        } else {
            i = contexts.append(H5Context(client: addr, last: firstTime))
            if let page = lastPage.removeValue(forKey: addr) { contexts[i].events.append(page) }
        }
        // `last` is left alone: it places the context before the device's CONNECT, which bridge reports may follow.
        contexts[i].hasFlowStep = true
        if let s = contexts[i].session, let w = sessions[s] {
            for e in events { add(w, e) }
        } else {
            contexts[i].events += events
        }
    }

    /// The H5 context that handed out this connection's credentials, else the latest one from the same address.
    func context(for c: Connection, before t: Timestamp) -> Int? {
        let addr = address(c.info.client)
        let limit = t.adding(seconds: 1)
        func candidate(_ id: Int) -> Bool {
            let x = contexts[id]
            return x.session == nil && x.hasFlowStep && x.last <= limit
        }
        let password = c.password.map { Self.digest($0) }
        let byCredentials = (c.username.map { contexts.ids(username: $0) } ?? []).filter {
            candidate($0) && (contexts[$0].mqttPasswordDigest == nil || password == nil || contexts[$0].mqttPasswordDigest == password)
        }
        let pool = byCredentials.isEmpty ? contexts.ids(client: addr).filter(candidate) : byCredentials
        return pool.max { (contexts[$0].client == addr ? 1 : 0, contexts[$0].last) < (contexts[$1].client == addr ? 1 : 0, contexts[$1].last) }
    }

    /// Compares the CONNECT's credentials with those the context's cloud issued (the password by SHA-256, in
    /// memory) and notes on the CONNECT step which matched and where the issued ones came from: no value is kept.
    func checkCredentials(_ c: Connection, against ctx: H5Context) {
        guard let source = ctx.credentialsSource, let i = c.pending.firstIndex(where: { $0.step == .mqttConnect }) else { return }
        let username: String? = ctx.mqttUsername.map { $0 == c.username ? "match" : "differs" }
        let password: String? = ctx.mqttPasswordDigest.map { issued in
            guard let used = c.password else { return "not-sent" }
            return Self.digest(used) == issued ? "match" : "differs"
        }
        c.pending[i].detail = c.pending[i].detail.setting([
            ("issued_by", .text(source.request)), ("issued_at", .number(JSONNumber(source.time.seconds))),
            ("issued_username", .text(ctx.mqttUsername)), ("username_check", .text(username)), ("password_check", .text(password)),
        ])
    }
}

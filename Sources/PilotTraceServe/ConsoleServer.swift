import Foundation
import Hummingbird
import NIOCore
import PilotTraceReport
import PilotTraceStore
import Prometheus

/// `pilottrace serve`: the web console, the JSON API and the Prometheus metrics over a read-only store.
///
/// Routes (docs/serve.md): `/` (sessions), `/sessions/{id}`, `/sessions/{id}/report.html`, `/findings`,
/// `/api/sessions`, `/api/sessions/{id}`, `/api/deviations`, `/metrics`, `/events` (Server-Sent Events for the
/// sessions page) and `/console.js`. Everything served is in the binary.
///
/// ## Topics
/// - ``Configuration``
/// - ``run(onRunning:)``
/// - ``stop()``
public final class ConsoleServer: Sendable {
    public struct Configuration: Sendable {
        /// The address to bind: a host name or IP address.
        public var host: String
        /// The port; 0 lets the kernel pick one (``run(onRunning:)`` says which).
        public var port: Int
        /// When set, every request must carry it: `?token=` (which sets a cookie), the cookie, or
        /// `Authorization: Bearer`.
        public var token: String?
        /// Sessions per page of `/`.
        public var pageSize: Int
        /// How often the live feed looks at the record.
        public var pollInterval: Duration

        public init(host: String = "127.0.0.1", port: Int = 8088, token: String? = nil, pageSize: Int = 50, pollInterval: Duration = .seconds(1)) {
            self.host = host
            self.port = port
            self.token = token
            self.pageSize = pageSize
            self.pollInterval = pollInterval
        }
    }

    let database: ConsoleDatabase
    let configuration: Configuration
    let feed: SessionFeed
    /// The process's own metrics (requests served, through swift-metrics), appended to `/metrics` when given.
    let processMetrics: PrometheusCollectorRegistry?

    public init(database: ConsoleDatabase, configuration: Configuration, processMetrics: PrometheusCollectorRegistry? = nil) {
        self.database = database
        self.configuration = configuration
        self.processMetrics = processMetrics
        self.feed = SessionFeed(database: database, interval: configuration.pollInterval)
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully: the requests under way finish (call ``stop()`` on
    /// the same signal, so the live feeds end too).
    ///
    /// - Parameter onRunning: Called once the server listens, with the bound host and port.
    /// - Throws: When the address cannot be bound.
    public func run(onRunning: @escaping @Sendable (String, Int) -> Void) async throws {
        let app = Application(
            router: router(), configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "pilottrace"),
            onServerRunning: { channel in onRunning(channel.localAddress?.ipAddress ?? "?", channel.localAddress?.port ?? 0) })
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    /// Ends the live feeds' streams, so their responses finish and the server can stop.
    public func stop() async { await feed.close() }

    // MARK: - Routes

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: SecurityHeadersMiddleware())
        if let token = configuration.token { router.add(middleware: TokenMiddleware(token: token)) }
        router.add(middleware: MetricsMiddleware())
        router.get("/") { request, _ in try await self.sessionsPage(request) }
        router.get("/sessions/:id") { _, context in try await self.sessionPage(try context.parameters.require("id", as: Int64.self)) }
        router.get("/sessions/:id/report.html") { _, context in try await self.sessionReport(try context.parameters.require("id", as: Int64.self)) }
        router.get("/findings") { _, _ in try await self.findingsPage() }
        router.get("/api/sessions") { request, _ in try await self.apiSessions(request) }
        router.get("/api/sessions/:id") { _, context in try await self.apiSession(try context.parameters.require("id", as: Int64.self)) }
        router.get("/api/deviations") { request, _ in try await self.apiDeviations(request) }
        router.get("/metrics") { _, _ in try await self.metrics() }
        router.get("/events") { request, _ in self.events(request) }
        router.get("/console.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: ConsoleScript.text)))
        }
        return router
    }

    static func parameters(_ request: Request) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in request.uri.queryParameters { out[String(k)] = String(v) }
        return out
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// JSON rendered on the thread pool (``StoreJSONText``), as the commands print it.
    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
    }

    static func notFound(_ what: String) -> Response { html(ConsolePages.message("Not found", what), status: .notFound) }

    /// The rows of a page, with each one's findings and capture point.
    static func listed(_ rows: [SessionRow], in db: PilotTraceDatabase) throws -> [ConsolePages.Listed] {
        let findings = try db.findingCounts(sessionIDs: rows.map(\.id))
        var sites: [Int64: String] = [:]
        for id in Set(rows.map(\.analysisID)) { sites[id] = try db.analysis(id: id)?.site }
        return rows.map { ConsolePages.Listed(row: $0, findings: findings[$0.id] ?? FindingCounts(), site: sites[$0.analysisID]) }
    }

    func sessionsPage(_ request: Request) async throws -> Response {
        let query = ConsoleQuery(Self.parameters(request), defaultLimit: configuration.pageSize, maximumLimit: 500)
        let html = try await database.run { db in
            let page = try db.sessionPage(query.filter, limit: query.limit, offset: query.offset)
            return ConsolePages.sessions(
                try Self.listed(page.rows, in: db), total: page.total, counts: try db.sessionCountsByState(), query: query, sites: try db.sites())
        }
        return Self.html(html)
    }

    func sessionPage(_ id: Int64) async throws -> Response {
        let session = try await database.run { try ReportLoader.loadSession($0, id: id) }
        guard let session else { return Self.notFound("No session \(id) in the record.") }
        return Self.html(ConsolePages.session(session))
    }

    func sessionReport(_ id: Int64) async throws -> Response {
        let report = try await database.run { db -> String? in
            guard let session = try ReportLoader.loadSession(db, id: id) else { return nil }
            return HTMLReport.render(ReportDocument(database: db.path, sessions: [session]))
        }
        guard let report else { return Self.notFound("No session \(id) in the record.") }
        return Response(
            status: .ok,
            headers: [.contentType: "text/html; charset=utf-8", .contentDisposition: "attachment; filename=\"pilottrace-session-\(id).html\""],
            body: .init(byteBuffer: ByteBuffer(string: report)))
    }

    func findingsPage() async throws -> Response {
        Self.html(ConsolePages.findings(try await database.run { try $0.findingsByRule() }))
    }

    /// `sessions --json`'s objects, one page of them: `{"sessions": […], "total", "offset", "limit"}`.
    func apiSessions(_ request: Request) async throws -> Response {
        let query = ConsoleQuery(Self.parameters(request), defaultLimit: 100, maximumLimit: 1000)
        let text = try await database.run { db in
            let page = try db.sessionPage(query.filter, limit: query.limit, offset: query.offset)
            let views = try SessionViews.load(page.rows, from: db, events: false)
            return try StoreJSONText.render([
                "sessions": views.map { $0.json(withEvents: false) }, "total": page.total, "offset": query.offset, "limit": query.limit,
            ])
        }
        return Self.json(text)
    }

    /// `timeline ID --json`: `{"sessions": [{…, "events": […], "deviations": […]}]}`.
    func apiSession(_ id: Int64) async throws -> Response {
        let text = try await database.run { db -> String? in
            guard let row = try db.session(id: id) else { return nil }
            return try StoreJSONText.render(["sessions": try SessionViews.load([row], from: db).map { $0.json(withEvents: true) }])
        }
        guard let text else { return Self.json("{\"error\": \"no session \(id)\"}", status: .notFound) }
        return Self.json(text)
    }

    /// `deviations --json`, with `session` and `min_severity` as the command's options; one page of them
    /// (`offset`, `limit`: default 1,000, at most 10,000) with `total`, `offset` and `limit` beside `deviations`.
    func apiDeviations(_ request: Request) async throws -> Response {
        let parameters = Self.parameters(request)
        let session = parameters["session"].flatMap { Int64($0) }
        let minimum = parameters["min_severity"].flatMap { ConsoleQuery.severities.contains($0) ? $0 : nil } ?? "info"
        let offset = max(0, parameters["offset"].flatMap { Int($0) } ?? 0)
        let limit = min(10_000, max(1, parameters["limit"].flatMap { Int($0) } ?? 1_000))
        let text = try await database.run { db in
            var rows: [DeviationRow]
            let total: Int
            if let session {
                // error, warning, info: those up to `minimum` in that list.
                let severities = Set(ConsoleQuery.severities.prefix { $0 != minimum } + [minimum])
                let all = try db.deviations(sessionID: session).filter { severities.contains($0.severity) }
                (rows, total) = (Array(all.dropFirst(offset).prefix(limit)), all.count)
            } else {
                (rows, total) = try db.deviationPage(minSeverity: minimum, limit: limit, offset: offset)
            }
            var captures = CaptureCache(db)
            return try StoreJSONText.render([
                "deviations": try rows.map { DeviationJSON.object($0, captures: try captures[$0.analysisID]) }, "total": total, "offset": offset,
                "limit": limit,
            ])
        }
        return Self.json(text)
    }

    func metrics() async throws -> Response {
        var text = StoreMetrics.render(try await database.run { try $0.recordTotals() })
        if let processMetrics { text += processMetrics.emitToString() }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Server-Sent Events for the sessions page with the same filter: `session` events (`{"id", "html"}`: the row to
    /// insert or replace) for sessions that appeared or changed and match, then a `counts` event (`{"html"}`).
    func events(_ request: Request) -> Response {
        let query = ConsoleQuery(Self.parameters(request), defaultLimit: 500, maximumLimit: 500)
        let database = self.database, feed = self.feed
        let body = ResponseBody { writer in
            let changes = await feed.subscribe()
            try await writer.write(ByteBuffer(string: "retry: 2000\n: live sessions\n\n"))
            for await ids in changes {
                guard !ids.isEmpty else {
                    try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
                    continue
                }
                let text = try await database.run { db in
                    let page = try db.sessionPage(query.filter, limit: ids.count, ids: Array(ids))
                    var out = ""
                    // Oldest first, so the newest ends at the top of the table.
                    for s in try Self.listed(page.rows, in: db).reversed() {
                        out += try Self.event("session", ["id": s.row.id, "html": ConsolePages.sessionRow(s)])
                    }
                    return out + (try Self.event("counts", ["html": ConsolePages.counts(try db.sessionCountsByState())]))
                }
                try await writer.write(ByteBuffer(string: text))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// One SSE event whose data is one line of JSON.
    static func event(_ name: String, _ data: [String: Any]) throws -> String {
        let json = try JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes])
        return "event: \(name)\ndata: \(String(decoding: json, as: UTF8.self))\n\n"
    }
}

/// Every response says: no framing, no sniffing, scripts only from the console itself (pages also ask for no
/// referrer: a token may be in the URL).
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        return response
    }
}

/// Requests must carry the token: `?token=` (answered with a cookie, so the browser's next requests and the live feed
/// carry it), the `pilottrace_token` cookie, or `Authorization: Bearer TOKEN`. Compared in constant time.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String
    static var cookie: String { "pilottrace_token" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let given = request.uri.queryParameters.get("token"), TokenCheck.same(given, token) {
            var response = try await next(request, context)
            response.setCookie(Cookie(name: Self.cookie, value: token, path: "/", httpOnly: true))
            return response
        }
        let bearer = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        if let given = bearer ?? request.cookies[Self.cookie]?.value, TokenCheck.same(given, token) { return try await next(request, context) }
        return Response(
            status: .unauthorized, headers: [.contentType: "text/plain; charset=utf-8", .wwwAuthenticate: "Bearer"],
            body: .init(
                byteBuffer: ByteBuffer(string: "pilottrace serve: this console needs its token: open /?token=TOKEN, or send Authorization: Bearer TOKEN\n")))
    }
}

enum TokenCheck {
    /// Equal, in a time that does not depend on where they differ.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return difference == 0
    }
}

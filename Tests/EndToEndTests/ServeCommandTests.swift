import Foundation
import PilotTraceTestSupport
import Testing

/// `pilottrace serve` as people use it: the built binary on a kernel-chosen loopback port, over a database another
/// process writes while it runs, read by headless Chromium and by a plain HTTP client.
@Suite(.serialized) struct ServeCommandTests {
    static let chromium = TestPaths.which("chromium")

    /// A running `pilottrace serve`, stopped with SIGTERM (then killed) by ``stop()``.
    final class Server {
        let process = Process()
        let output = Pipe()
        private(set) var port: UInt16 = 0
        private(set) var printed = ""

        init(_ arguments: [String]) throws {
            process.executableURL = TestPaths.binary
            process.arguments = ["serve"] + arguments
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            // Ready when it prints the address it bound (the kernel chose the port).
            let reader = output.fileHandleForReading
            let deadline = Date().addingTimeInterval(30)
            while port == 0 && Date() < deadline && process.isRunning {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                printed += String(decoding: chunk, as: UTF8.self)
                if let m = printed.firstMatch(of: /on http:\/\/127\.0\.0\.1:(\d+)\/\n/) ?? printed.firstMatch(of: /on http:\/\/0\.0\.0\.0:(\d+)\/\n/) {
                    port = UInt16(m.1) ?? 0
                }
            }
            if port == 0 {
                stop()
                throw ServeDidNotStart(printed: printed)
            }
        }

        struct ServeDidNotStart: Error { var printed: String }

        var base: String { "http://127.0.0.1:\(port)" }

        /// SIGTERM, then SIGKILL if it has not exited within 10 s; returns its exit status.
        @discardableResult
        func stop() -> Int32 {
            guard process.isRunning else { return process.terminationStatus }
            kill(process.processIdentifier, SIGTERM)
            if !waitUntil(timeout: 10, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            return process.terminationStatus
        }

        deinit { stop() }
    }

    /// The page as headless Chromium leaves it after running its scripts, at a window `width` px wide.
    static func dom(_ url: String, width: Int = 1400) throws -> String {
        let r = try runProcess(
            chromium!, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=\(width),1000", "--dump-dom", url], timeout: 60)
        return r.stdout
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    static func capture(_ name: String) -> String { TestPaths.captures.appendingPathComponent(name).path }

    /// Everything the console promises, on one database (an SQLite file or a PostgreSQL URL).
    func exercise(_ db: String) throws {
        #expect(try pilottrace("analyze", "--db", db, Self.capture("lab-clean-login.pcapng")).status == 0)
        let server = try Server(["--db", db, "--listen", "127.0.0.1:0"])
        defer { #expect(server.stop() == 0) }
        let feed = try EventStream(port: server.port, path: "/events")
        #expect(feed.wait(for: "live sessions", timeout: 10), "no feed: \(feed.text)")
        // The sessions page, open in a browser whose scripts keep running.
        let browser = try HeadlessBrowser(server.base + "/")
        #expect(waitUntil(timeout: 20, poll: 0.2) { (try? browser.evaluate("document.querySelectorAll('#sessions tbody tr').length")) as? Int == 1 })

        // Another process stores a failing session while the console runs: the feed sends its row.
        #expect(try pilottrace("analyze", "--db", db, Self.capture("pilot2-no-status-reply.pcap")).status == 0)
        let sessions = try Self.json(try pilottrace("sessions", "--db", db, "--json").stdout)["sessions"] as? [[String: Any]] ?? []
        let ids = sessions.compactMap { $0["id"] as? Int }
        #expect(ids.count >= 2)
        let failing = try #require(sessions.first { $0["state"] as? String == "failed" }?["id"] as? Int)
        #expect(feed.wait(for: "\"id\":\(failing)}", timeout: 15), "the feed did not send session \(failing): \(feed.text)")
        #expect(feed.text.contains("event: counts"))
        // The open page inserted its row, marked new, at the top, and its counts follow: no reload.
        let inserted = waitUntil(timeout: 10, poll: 0.2) {
            (try? browser.evaluate("document.querySelector('#sessions tbody tr.fresh#session-\(failing)') !== null")) as? Bool == true
        }
        #expect(inserted, "the open page did not insert session \(failing)")
        #expect(try browser.evaluate("document.querySelector('#sessions tbody tr').id") as? String == "session-\(failing)")
        #expect((try browser.evaluate("document.getElementById('counts').textContent") as? String)?.contains("1 failed") == true)

        // The pages, as Chromium renders them.
        let list = try Self.dom(server.base + "/")
        for id in ids { #expect(list.contains("id=\"session-\(id)\""), "the sessions page lacks session \(id)") }
        #expect(list.range(of: "id=\"session-\(failing)\"")!.lowerBound < list.range(of: "id=\"session-\(ids.first { $0 != failing }!)\"")!.lowerBound)
        let page = try Self.dom(server.base + "/sessions/\(failing)")
        #expect(page.contains("<svg") && page.contains("marker-end"), "no sequence diagram")
        #expect(page.contains("Documented sequence") && page.contains("/api/sessions/\(failing)"))
        let deviations = try Self.json(try pilottrace("deviations", "--db", db, "--json").stdout)["deviations"] as? [[String: Any]] ?? []
        let findings = try Self.dom(server.base + "/findings")
        for rule in Set(deviations.compactMap { $0["rule"] as? String }) { #expect(findings.contains("id=\"rule-\(rule)\""), "no group for \(rule)") }
        for width in [1400, 900] {
            for path in ["/", "/sessions/\(failing)", "/findings"] {
                #expect(try Self.dom(server.base + path, width: width).contains("data-overflow=\"no\""), "\(path) overflows at \(width) px")
            }
        }

        // The API answers what the commands print.
        let api = try httpGet(port: server.port, path: "/api/sessions")
        #expect(api.status == 200 && api.headers["content-type"]?.hasPrefix("application/json") == true)
        let apiSessions = try Self.json(api.body)["sessions"] as? [[String: Any]] ?? []
        #expect(Set(apiSessions.map { NSDictionary(dictionary: $0) }) == Set(sessions.map { NSDictionary(dictionary: $0) }))
        let one = try Self.json(try httpGet(port: server.port, path: "/api/sessions/\(failing)").body)
        #expect(NSDictionary(dictionary: one) == NSDictionary(dictionary: try Self.json(try pilottrace("timeline", "\(failing)", "--db", db, "--json").stdout)))
        let apiDeviations = try Self.json(try httpGet(port: server.port, path: "/api/deviations").body)["deviations"] as? [[String: Any]] ?? []
        #expect(apiDeviations.map { NSDictionary(dictionary: $0) } == deviations.map { NSDictionary(dictionary: $0) })
        for (query, arguments) in [("min_severity=warning", ["--min-severity", "warning"]), ("session=\(failing)", ["--session", "\(failing)"])] {
            let page = try Self.json(try httpGet(port: server.port, path: "/api/deviations?\(query)").body)
            let command = try Self.json(try pilottrace(["deviations", "--db", db, "--json"] + arguments).stdout)["deviations"] as? [[String: Any]] ?? []
            #expect(
                (page["deviations"] as? [[String: Any]] ?? []).map { NSDictionary(dictionary: $0) } == command.map { NSDictionary(dictionary: $0) }, "\(query)")
            #expect(page["total"] as? Int == command.count)
        }
        let second = try Self.json(try httpGet(port: server.port, path: "/api/deviations?offset=1&limit=1").body)
        #expect(
            (second["deviations"] as? [[String: Any]])?.first.map { NSDictionary(dictionary: $0) }
                == deviations.dropFirst().first.map { NSDictionary(dictionary: $0) })
        #expect(try httpGet(port: server.port, path: "/sessions/999999").status == 404)
        let report = try httpGet(port: server.port, path: "/sessions/\(failing)/report.html")
        #expect(report.status == 200 && report.headers["content-disposition"]?.hasPrefix("attachment") == true && report.body.contains("<svg"))

        // /metrics parses as Prometheus text and says what `sessions` and `deviations` say.
        let metrics = try PrometheusSamples(try httpGet(port: server.port, path: "/metrics").body)
        for state in ["online", "offline", "failed", "incomplete"] {
            #expect(metrics.value("pilottrace_sessions", ["state": state]) == Double(sessions.filter { $0["state"] as? String == state }.count), "\(state)")
        }
        #expect(metrics.value("pilottrace_sessions_started_total") == Double(sessions.count))
        var byRule: [String: Int] = [:]
        for d in deviations { byRule["\(d["rule"] as? String ?? "") \(d["severity"] as? String ?? "")", default: 0] += 1 }
        for (key, count) in byRule {
            let parts = key.split(separator: " ").map(String.init)
            #expect(metrics.value("pilottrace_findings_total", ["rule": parts[0], "severity": parts[1]]) == Double(count), "\(key)")
        }
        let statusReplies = try Self.json(try pilottrace("timeline", "--db", db, "--json").stdout)["sessions"] as? [[String: Any]] ?? []
        let latencies = statusReplies.flatMap {
            ($0["events"] as? [[String: Any]] ?? []).filter { $0["step"] as? String == "status-reply" && $0["latency"] is Double }
        }
        #expect(metrics.value("pilottrace_status_reply_latency_seconds_count") == Double(latencies.count))
        #expect(metrics.value("pilottrace_logins_total", ["result": "ok"]) != nil)
    }

    @Test(.enabled(if: chromium != nil, "needs chromium (scripts/bootstrap installs it)"))
    func theConsoleFollowsADatabaseAnotherProcessWrites() throws {
        try exercise(try temporaryDatabase())
    }

    @Test(.enabled(if: chromium != nil && PostgresServer.isAvailable, "needs chromium and PostgreSQL's server binaries (scripts/bootstrap installs both)"))
    func theConsoleFollowsAPostgreSQLDatabaseAnotherProcessWrites() throws {
        try exercise(try PostgresServer.shared().createDatabase())
    }

    @Test func beyondLoopbackEveryRequestNeedsTheToken() throws {
        let db = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", db, Self.capture("pilot2-login.pcap")).status == 0)
        let server = try Server(["--db", db, "--listen", "0.0.0.0:0"])
        defer { server.stop() }
        let token = try #require(server.printed.firstMatch(of: /token: ([0-9a-f]{32})/)?.1).description
        for path in ["/", "/api/sessions", "/metrics", "/events", "/console.js"] {
            #expect(try httpGet(port: server.port, path: path).status == 401, "\(path) without the token")
        }
        #expect(try httpGet(port: server.port, path: "/", headers: ["Authorization": "Bearer nope"]).status == 401)
        #expect(try httpGet(port: server.port, path: "/api/sessions", headers: ["Authorization": "Bearer \(token)"]).status == 200)
        let opened = try httpGet(port: server.port, path: "/?token=\(token)")
        #expect(opened.status == 200 && opened.headers["set-cookie"]?.contains("pilottrace_token=\(token)") == true)
        #expect(try httpGet(port: server.port, path: "/metrics", headers: ["Cookie": "pilottrace_token=\(token)"]).status == 200)
    }

    @Test func aBadAddressIsUsageAMissingDatabaseOrATakenPortAnError() throws {
        #expect(try pilottrace("serve", "--listen", "nowhere").status == 64)
        let missing = try pilottrace("serve", "--db", "/nonexistent/pilottrace.sqlite", "--listen", "127.0.0.1:0")
        #expect(missing.status == 2 && missing.stderr.contains("no such database"))
        let db = try temporaryDatabase()
        #expect(try pilottrace("analyze", "--db", db, Self.capture("pilot2-login.pcap")).status == 0)
        let (fd, port) = CommandLineContractTests.takenPort()
        defer { close(fd) }
        let taken = try pilottrace("serve", "--db", db, "--listen", "127.0.0.1:\(port)")
        #expect(taken.status == 2 && taken.stderr.hasPrefix("error: cannot serve on 127.0.0.1:\(port): "), "\(taken.stderr)")
    }
}

/// A Prometheus text exposition, read into samples (name, labels, value); throws on a line that is neither a comment
/// nor a sample.
struct PrometheusSamples {
    var samples: [(name: String, labels: [String: String], value: Double)] = []

    init(_ text: String) throws {
        struct Malformed: Error { var line: String }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let m = line.wholeMatch(of: /([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})? ([-+0-9.eEInfNa]+)/), let value = Double(m.3)
            else {
                throw Malformed(line: String(line))
            }
            var labels: [String: String] = [:]
            for pair in (m.2 ?? "").matches(of: /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/) { labels[String(pair.1)] = String(pair.2) }
            samples.append((String(m.1), labels, value))
        }
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

/// An HTTP/1.1 response.
struct HTTPResult {
    var status: Int
    /// Header names in lower case.
    var headers: [String: String]
    var body: String
}

/// Connects to 127.0.0.1:`port` with a deadline on every read.
func loopbackSocket(port: UInt16, timeout: Int = 10) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var wait = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
    let connected = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    return fd
}

func sendRequest(_ fd: Int32, path: String, headers: [String: String]) {
    let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers.map { "\($0): \($1)\r\n" }.joined() + "\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
}

/// GET `path` from the server on `port`; the whole response (chunked bodies joined).
func httpGet(port: UInt16, path: String, headers: [String: String] = [:]) throws -> HTTPResult {
    let fd = try loopbackSocket(port: port)
    defer { close(fd) }
    sendRequest(fd, path: path, headers: headers)
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        data.append(contentsOf: buffer[0..<n])
        // /events never ends: its head is enough.
        if path.hasPrefix("/events"), String(decoding: data, as: UTF8.self).contains("\r\n\r\n") { break }
    }
    guard let split = data.firstRange(of: Data("\r\n\r\n".utf8)) else { throw POSIXError(.EBADMSG) }
    let head = String(decoding: data[..<split.lowerBound], as: UTF8.self).split(separator: "\r\n")
    let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
    var fields: [String: String] = [:]
    for line in head.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    var body = Data(data[split.upperBound...])
    if fields["transfer-encoding"] == "chunked" {
        // size CRLF bytes CRLF …, ending with a chunk of size 0.
        var joined = Data(), rest = body
        while let end = rest.firstRange(of: Data("\r\n".utf8)), let size = Int(String(decoding: rest[..<end.lowerBound], as: UTF8.self), radix: 16), size > 0 {
            let start = end.upperBound
            joined.append(rest[start..<min(rest.endIndex, start + size)])
            rest = Data(rest[min(rest.endIndex, start + size + 2)...])
        }
        body = joined
    }
    return HTTPResult(status: status, headers: fields, body: String(decoding: body, as: UTF8.self))
}

/// A Server-Sent Events stream read on a thread of its own.
final class EventStream: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private var received = ""
    private var closed = false

    init(port: UInt16, path: String) throws {
        fd = try loopbackSocket(port: port, timeout: 1)
        sendRequest(fd, path: path, headers: [:])
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while !lock.withLock({ closed }) {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n == 0 { break }
                if n > 0 { lock.withLock { received += String(decoding: buffer[0..<n], as: UTF8.self) } }
            }
        }
        thread.start()
    }

    var text: String { lock.withLock { received } }

    func wait(for substring: String, timeout: TimeInterval) -> Bool { waitUntil(timeout: timeout, poll: 0.05) { text.contains(substring) } }

    deinit {
        lock.withLock { closed = true }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

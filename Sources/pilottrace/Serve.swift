import ArgumentParser
import Foundation
import Metrics
import PilotTraceServe
import Prometheus

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a live web console, a JSON API and Prometheus metrics over the record (read-only).",
        discussion: Examples.discussion(
            "serve",
            """
            Pages: / (sessions, failing first, live), /sessions/ID (sequence diagram, checklist, findings, messages \
            with secrets masked), /findings (by rule); JSON: /api/sessions, /api/sessions/ID, /api/deviations (the \
            --json of sessions, timeline and deviations); /metrics (Prometheus). The database is opened read-only \
            while capture, proxy or analyze write into it. It prints the address it listens on; Ctrl-C stops it. \
            See docs/serve.md.
            """)
    )

    @OptionGroup var database: DatabaseOptions

    @Option(
        help: ArgumentHelp(
            "HOST:PORT to listen on (port 0: one the kernel picks; the address is printed). Another host than loopback needs a token.",
            valueName: "host:port"))
    var listen = "127.0.0.1:8088"

    @Option(
        help: ArgumentHelp(
            "The token every request must carry (?token=, then a cookie; or Authorization: Bearer). Generated and printed when listening beyond loopback without one.",
            valueName: "token"))
    var token: String?

    /// `HOST:PORT` or `[IPv6]:PORT`.
    static func address(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    func validate() throws {
        guard Self.address(listen) != nil else { throw ValidationError("--listen \(listen): expected HOST:PORT, e.g. 127.0.0.1:8088 or [::1]:0") }
        if let token, token.isEmpty || token.contains(where: { !$0.isASCII || $0.isWhitespace || $0 == ";" || $0 == "," || $0 == "\"" }) {
            throw ValidationError("--token: printable ASCII without spaces, quotes, commas or semicolons")
        }
    }

    func run() throws {
        let (host, port) = Self.address(listen)!
        let db = try database.openReadOnly()
        // Beyond loopback, a token even when none was given: a generated one, printed.
        let token = self.token ?? (Self.isLoopback(host) ? nil : (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined())
        // Hummingbird logs its start at info level; the command says where it listens itself (LOG_LEVEL, when set, wins).
        setenv("LOG_LEVEL", "warning", 0)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let server = ConsoleServer(
            database: ConsoleDatabase(db), configuration: .init(host: host, port: port, token: token), processMetrics: registry)
        let shown = database.shown
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await server.run { boundHost, boundPort in
                    let address = boundHost.contains(":") ? "[\(boundHost)]:\(boundPort)" : "\(boundHost):\(boundPort)"
                    var lines = "serving \(shown) (read-only) on http://\(address)/\n"
                    if let token { lines += "token: \(token) (open http://\(address)/?token=\(token))\n" }
                    writeStandardOutput(lines)
                }
            } catch {
                outcome.error = error
            }
            done.signal()
        }
        // The server shuts down gracefully on the same signals; the live feeds' responses end here.
        let signals = StopSignals { Task { await server.stop() } }
        defer { signals.cancel() }
        done.wait()
        try? db.close()
        if let error = outcome.error, !(error is CancellationError) { throw Failure("cannot serve on \(listen)", error) }
    }

    final class Outcome: @unchecked Sendable { var error: (any Error)? }
}

/// Writes to stdout at once (not buffered: a process waiting for the address reads it through a pipe).
func writeStandardOutput(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        if n > 0 { bytes = bytes.dropFirst(n) } else if n < 0 && errno == EINTR { continue } else { return }
    }
}

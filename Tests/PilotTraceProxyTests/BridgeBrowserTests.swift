import Foundation
import NIOConcurrencyHelpers
import PilotTraceTestSupport
import Testing

/// The injected bridge script in real headless Chromium: a page calls a fake `window.djiBridge` (as native Pilot 2
/// would provide it); through the proxy the calls reach the reserved path and the timeline, and the page's own
/// results (return values, an exception, a callback) are byte for byte those it gets without the proxy.
@Suite(.serialized) struct BridgeBrowserTests {
    static let page = TestPaths.packageRoot.appendingPathComponent("Tests/PilotTraceProxyTests/bridge-page.html")

    func render(_ url: String) throws -> String {
        let r = try runProcess(
            TestPaths.which("chromium")!,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
                "--dump-dom", url,
            ], timeout: 60)
        guard let start = r.stdout.range(of: #"<pre id="out">"#), let end = r.stdout.range(of: "</pre>", range: start.upperBound..<r.stdout.endIndex) else {
            Issue.record("no results in the page: \(r.stdout.prefix(500)) \(r.stderr.suffix(500))")
            return ""
        }
        return String(r.stdout[start.upperBound..<end.lowerBound])
    }

    @Test(
        .enabled(
            if: TestPaths.which("chromium") != nil && FileManager.default.fileExists(atPath: TestPaths.binary.path),
            "needs chromium (apt-get install chromium) and the built binary")) func bridgeCallsArriveAndAppearInTheTimelineWhileThePageBehavesAsBefore() throws
    {
        let html = try String(contentsOf: Self.page, encoding: .utf8)
        let seen = NIOLockedValueBox<[String]>([])
        let upstream = try Upstream { head, _ in
            seen.withLockedValue { $0.append(head.uri) }
            return head.uri == "/pilot-login" ? .init(contentType: "text/html; charset=utf-8", body: html) : .init(status: .notFound, body: "{}")
        }
        let dir = try TempDir("proxy-bridge")
        let db = dir.path("p.sqlite")
        let proxy = try ProxyProcess(dir: dir, ["--http-listen", "127.0.0.1:0", "--http-upstream", "http://127.0.0.1:\(upstream.port)", "--db", db])

        let direct = try render("http://127.0.0.1:\(upstream.port)/pilot-login")
        let proxied = try render("http://127.0.0.1:\(proxy.httpPort)/pilot-login")
        #expect(direct.contains("threw: device not connect") && direct.contains(#"["callback",true]"#))
        #expect(proxied == direct, "the page's results are unchanged by the bridge script")
        #expect(direct.contains("key-secret"), "the fake bridge received the real arguments")

        usleep(500_000)
        let out = try proxy.stop()
        #expect(out.status == 0, "\(out.stderr)")
        #expect(!seen.withLockedValue { $0 }.contains { $0.hasPrefix("/__pilottrace") }, "reports are never forwarded")
        let store = try StoredDB(db)
        #expect(try store.int("SELECT count(*) FROM http_exchanges WHERE path = '/__pilottrace/bridge' AND status = 204") >= 1)
        let steps = try store.strings("SELECT step FROM timeline_events ORDER BY ordinal")
        #expect(
            steps == [
                "h5-page", "license-verified", "license-verified", "platform-info-set", "module-load", "token-set", "token-read",
                "workspace-set", "module-load", "connect-state", "connect-callback",
            ])
        #expect(
            try store.strings(
                "SELECT json_extract(detail_json, '$.module') || ' ' || ifnull(json_extract(detail_json, '$.host'), '-') FROM timeline_events WHERE step = 'module-load' ORDER BY ordinal"
            )
                == ["api http://cloud/", "thing tcp://127.0.0.1:1883"])
        #expect(try store.strings("SELECT json_extract(detail_json, '$.value') FROM timeline_events WHERE step = 'connect-callback'") == ["1"])
        // Secrets were masked in the page before they were sent.
        let bodies = try store.strings("SELECT CAST(request_body AS TEXT) FROM http_exchanges WHERE path = '/__pilottrace/bridge'").joined()
        for secret in ["key-secret", "license-secret", "tok-secret", "token-abc-123", "pilot123"] {
            #expect(!bodies.contains(secret), "\(secret) reached the proxy")
        }
        #expect(bodies.contains("<masked 10 chars>"))
        #expect(try store.int("SELECT count(*) FROM deviations") == 0, "license verified first, workspace a UUID, no issued address to differ from")
    }
}

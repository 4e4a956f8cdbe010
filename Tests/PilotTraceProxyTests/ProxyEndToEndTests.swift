import Foundation
import NIOHTTP1
import NIOSSL
import PilotTraceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `pilottrace proxy` (the built binary) between real clients, a real mosquitto and an upstream HTTP server.
@Suite(.serialized) struct ProxyEndToEndTests {
    static var ready: Bool { Broker.available && TestPaths.which("curl") != nil && FileManager.default.fileExists(atPath: TestPaths.binary.path) }

    /// The demo's login and users/current, handing out `broker` as the MQTT address.
    static func cloud(broker: String) -> @Sendable (HTTPRequestHead, String) -> Upstream.Response {
        { head, _ in
            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
            switch path {
            case "/pilot-login":
                return .init(
                    contentType: "text/html; charset=utf-8",
                    body: #"<!doctype html><html><head><meta charset="utf-8"><title>Pilot login</title></head><body>login</body></html>"#)
            case "/manage/api/v1/login", "/manage/api/v1/users/current":
                return .init(
                    body:
                        #"{"code":0,"message":"success","data":{"user_id":"u1","username":"pilot","workspace_id":"e3dea0f5-37f2-4d79-ae58-490af3228069","mqtt_username":"pilot","mqtt_password":"pilot123","mqtt_addr":"\#(broker)","access_token":"tok"}}"#
                )
            case "/chunked":
                return .init(contentType: "text/plain", body: "first-second-and the rest", chunked: true)
            case "/big":
                let filler = String(repeating: "x", count: 7 << 20)
                return .init(body: #"{"code":0,"message":"success","data":{"filler":"\#(filler)","mqtt_addr":"\#(broker)"}}"#)
            default:
                return .init(status: .notFound, body: #"{"code":-1,"message":"not found","data":""}"#)
            }
        }
    }

    func curl(_ args: [String]) throws -> String {
        let r = try runProcess(TestPaths.which("curl")!, ["-sS", "--max-time", "10"] + args)
        #expect(r.status == 0, "curl \(args): \(r.stderr)")
        return r.stdout
    }

    @Test(.enabled(if: ProxyEndToEndTests.ready, "needs mosquitto, curl and the built binary")) func httpAndMQTTAreRelayedRecordedAndTheBrokerSeesTheProxy()
        throws
    {
        let dir = try TempDir("proxy-e2e")
        let broker = try Broker(dir: dir)
        let upstream = try Upstream(route: Self.cloud(broker: "tcp://127.0.0.1:\(broker.port)"))
        let db = dir.path("p.sqlite"), pcapng = dir.path("p.pcapng")
        let proxy = try ProxyProcess(
            dir: dir,
            [
                "--http-listen", "127.0.0.1:0", "--http-upstream", "http://127.0.0.1:\(upstream.port)",
                "--mqtt-listen", "127.0.0.1:0", "--db", db, "--write", pcapng, "--fail-on", "info",
            ])
        let base = "http://127.0.0.1:\(proxy.httpPort)"

        // HTTP: the page (bridge script injected), the login (address rewritten), a chunked body, keep-alive.
        let page = try curl(["\(base)/pilot-login"])
        #expect(page.contains(#"<script data-pilottrace="bridge">"#))
        #expect(page.hasSuffix("<title>Pilot login</title></head><body>login</body></html>"))
        let login = try curl([
            "-X", "POST", "-H", "content-type: application/json", "-d", #"{"username":"pilot","password":"pilot123","flag":2}"#,
            "\(base)/manage/api/v1/login", "\(base)/chunked",
        ])
        let proxyMQTT = try #require(proxy.mqttPort)
        #expect(login.contains(#""mqtt_addr":"tcp://127.0.0.1:\#(proxyMQTT)""#))
        #expect(login.hasSuffix("first-second-and the rest"))

        // MQTT to the address the (rewritten) login handed out, as Pilot 2 would.
        var appPort = 0, brokerSide: [Int] = []
        try mqttSession(port: proxyMQTT, clientID: "5YSZL260021E9A", messages: [("sys/product/5YSZL260021E9A/status", updateTopo)]) { c in
            appPort = c.localPort
            // Who holds the broker's peer socket: the proxy process.
            let ss = try runProcess("/usr/bin/ss", ["-Htnp", "state", "established", "( dport = :\(broker.port) )"])
            for line in ss.stdout.split(separator: "\n") where line.contains("pid=\(proxy.process.processIdentifier),") {
                if let local = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(2).first,
                    let p = local.split(separator: ":").last.flatMap({ Int($0) })
                {
                    brokerSide.append(p)
                }
            }
        }
        #expect(brokerSide.count == 1, "the proxy holds one connection to the broker")
        var seen: [Int] = []
        for _ in 0..<40 where seen.isEmpty { seen = broker.connectionsSeen(clientID: "5YSZL260021E9A"); usleep(50_000) }
        #expect(seen == brokerSide, "the broker saw the device from the proxy's socket")
        #expect(!seen.contains(appPort))

        // A WebSocket upgrade, tunnelled: one text frame there and back.
        let ws = try RawClient(port: proxy.httpPort)
        try ws.send(
            "GET /api/v1/ws?x-auth-token=tok HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        var head: [UInt8] = []
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) { head += try ws.receive(1) }
        #expect(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101"))
        #expect(String(decoding: head, as: UTF8.self).contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        let text = Array(#"{"biz_code":"ping"}"#.utf8), mask: [UInt8] = [1, 2, 3, 4]
        try ws.send([0x81, 0x80 | UInt8(text.count)] + mask + text.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        #expect(try ws.receive(2 + text.count) == [0x81, UInt8(text.count)] + text)
        ws.close()
        usleep(300_000)

        let out = try proxy.stop()
        // The login crossed in clear text (an info finding): --fail-on info exits 1, after storing everything.
        #expect(out.status == 1, "\(out.stderr)")
        #expect(out.stdout.contains("cleartext-credentials"))
        #expect(out.stdout.contains("The cloud handed out MQTT address tcp://127.0.0.1:\(broker.port)"))
        #expect(out.stdout.contains("1 Pilot 2 session"))
        #expect(!out.stdout.contains("pilot123") && !out.stderr.contains("pilot123"), "secrets stay out of the output")

        let store = try StoredDB(db)
        #expect(try store.int("SELECT count(*) FROM flows") == 4)  // the page, login + chunked (kept alive), MQTT, WebSocket
        // The upgrade's 101 is informational: the analysis keeps the request (as passive capture does).
        #expect(
            try store.strings("SELECT path || ' ' || ifnull(status, '-') FROM http_exchanges ORDER BY id")
                == ["/pilot-login 200", "/manage/api/v1/login 200", "/chunked 200", "/api/v1/ws -"])
        #expect(try store.strings("SELECT type FROM mqtt_packets ORDER BY id") == ["CONNECT", "CONNACK", "PUBLISH", "PUBACK", "DISCONNECT"])
        #expect(try store.strings("SELECT text FROM websocket_messages ORDER BY id") == [#"{"biz_code":"ping"}"#, #"{"biz_code":"ping"}"#])
        #expect(try store.strings("SELECT gateway_sn || ' ' || state FROM sessions") == ["5YSZL260021E9A failed"])  // it left with its status unanswered
        let steps = try store.strings("SELECT step FROM timeline_events ORDER BY ordinal")
        #expect(steps == ["h5-page", "login", "mqtt-credentials", "mqtt-connect", "mqtt-connack", "update-topo", "mqtt-disconnect"])
        #expect(
            try store.strings("SELECT json_extract(detail_json, '$.mqtt_addr') FROM timeline_events WHERE step = 'mqtt-credentials'")
                == ["tcp://127.0.0.1:\(proxyMQTT)"])

        // The pcapng: tshark sees the same conversations and decodes the HTTP.
        if let tshark = TestPaths.which("tshark") {
            let http = try runProcess(tshark, ["-r", pcapng, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"])
            #expect(http.stdout.split(separator: "\n") == ["/pilot-login", "/manage/api/v1/login", "/chunked", "/api/v1/ws?x-auth-token=tok"])
            let mqtt = try runProcess(tshark, ["-r", pcapng, "-d", "tcp.port==\(proxyMQTT),mqtt", "-Y", "mqtt", "-T", "fields", "-e", "mqtt.msgtype"])
            #expect(mqtt.stdout.split(separator: "\n") == ["1", "2", "3", "4", "14"])
        }
    }

    @Test(.enabled(if: ProxyEndToEndTests.ready, "needs mosquitto, curl and the built binary")) func anUnreachableUpstreamIsAnswered502AndRecorded() throws {
        let dir = try TempDir("proxy-502")
        let db = dir.path("p.sqlite")
        let proxy = try ProxyProcess(dir: dir, ["--http-listen", "127.0.0.1:0", "--http-upstream", "http://127.0.0.1:\(freePort())", "--db", db])
        let r = try runProcess(
            TestPaths.which("curl")!, ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(proxy.httpPort)/manage/api/v1/workspaces/current"])
        #expect(r.stdout == "502")
        let out = try proxy.stop()
        #expect(out.status == 0)
        #expect(out.stderr.contains("502 GET /manage/api/v1/workspaces/current: upstream http://127.0.0.1:"))
        let store = try StoredDB(db)
        #expect(try store.strings("SELECT path || ' ' || status FROM http_exchanges") == ["/manage/api/v1/workspaces/current 502"])
        #expect(try store.int("SELECT count(*) FROM http_exchanges WHERE CAST(response_body AS TEXT) LIKE '%unreachable: connection refused%'") == 1)
    }

    @Test(.enabled(if: ProxyEndToEndTests.ready, "needs mosquitto, curl and the built binary")) func aClientResetMidRequestIsRecordedAsSuch() throws {
        let dir = try TempDir("proxy-rst")
        let upstream = try Upstream(route: Self.cloud(broker: "tcp://127.0.0.1:1"))
        let db = dir.path("p.sqlite")
        let proxy = try ProxyProcess(dir: dir, ["--http-listen", "127.0.0.1:0", "--http-upstream", "http://127.0.0.1:\(upstream.port)", "--db", db])
        let c = try RawClient(port: proxy.httpPort)
        try c.send("POST /manage/api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"username\":\"pi")
        usleep(300_000)
        c.reset()
        usleep(300_000)
        _ = try curl(["http://127.0.0.1:\(proxy.httpPort)/pilot-login"])  // the proxy carries on
        let out = try proxy.stop()
        #expect(out.status == 0)
        let store = try StoredDB(db)
        #expect(try store.strings("SELECT close_reason FROM flows ORDER BY id") == ["rst", "fin"])
        #expect(
            try store.strings("SELECT path || ' ' || ifnull(status, 'none') || ' ' || ifnull(incomplete, '') FROM http_exchanges ORDER BY request_time")
                == ["/manage/api/v1/login none request: end-of-stream", "/pilot-login 200 "])
        #expect(!out.stderr.contains("502"), "nobody is left to answer")
    }

    @Test(
        .enabled(
            if: ProxyEndToEndTests.ready && TestPaths.which("openssl") != nil && TestPaths.which("mosquitto_pub") != nil,
            "needs mosquitto, mosquitto_pub, openssl, curl and the built binary")) func tlsTowardsTheAppAndTheUpstreamsIsDecryptedAndRecorded() throws
    {
        let dir = try TempDir("proxy-tls")
        let (cert, key) = try makeCertificate(in: dir)
        let broker = try Broker(dir: dir, tls: (cert, key))
        let tls = try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))))
        let upstream = try Upstream(tls: tls, route: Self.cloud(broker: "ssl://127.0.0.1:\(broker.port)"))
        let db = dir.path("p.sqlite")
        let proxy = try ProxyProcess(
            dir: dir,
            [
                "--http-listen", "127.0.0.1:0", "--http-upstream", "https://localhost:\(upstream.port)",
                "--mqtt-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--upstream-ca", cert, "--db", db,
            ])
        let mqttPort = try #require(proxy.mqttPort)
        let login = try curl([
            "--cacert", cert, "-X", "POST", "-d", #"{"username":"pilot","password":"pilot123","flag":2}"#,
            "https://127.0.0.1:\(proxy.httpPort)/manage/api/v1/login",
        ])
        #expect(login.contains(#""mqtt_addr":"ssl://127.0.0.1:\#(mqttPort)""#))
        let pub = try runProcess(
            TestPaths.which("mosquitto_pub")!,
            [
                "-h", "127.0.0.1", "-p", String(mqttPort), "--cafile", cert, "-i", "5YSZL260021E9A",
                "-u", "pilot", "-P", "pilot123", "-q", "1", "-t", "sys/product/5YSZL260021E9A/status", "-m", updateTopo,
            ])
        #expect(pub.status == 0, "\(pub.stderr)")
        let out = try proxy.stop()
        #expect(out.status == 0, "\(out.stderr)")
        let store = try StoredDB(db)
        #expect(try store.strings("SELECT protocol FROM flows ORDER BY id") == ["http", "mqtt"])
        #expect(try store.strings("SELECT topic FROM mqtt_packets WHERE type = 'PUBLISH'") == ["sys/product/5YSZL260021E9A/status"])
        #expect(try store.strings("SELECT step FROM timeline_events ORDER BY ordinal").prefix(3) == ["login", "mqtt-credentials", "mqtt-connect"])
        #expect(broker.connectionsSeen(clientID: "5YSZL260021E9A").count == 1)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: TestPaths.binary.path), "needs the built binary")) func badSettingsAreClearErrors() throws {
        let dir = try TempDir("proxy-errors")
        let bin = TestPaths.binary.path
        let cert = try runProcess(
            bin,
            [
                "proxy", "--http-upstream", "http://127.0.0.1:1", "--tls-cert", dir.path("none.pem"), "--tls-key", dir.path("none.key"),
                "--db", dir.path("a.sqlite"),
            ])
        #expect(cert.status == 2)
        #expect(cert.stderr.contains("cannot load the TLS certificate"))
        #expect(!FileManager.default.fileExists(atPath: dir.path("a.sqlite")), "nothing stored before the certificates load")
        let url = try runProcess(bin, ["proxy", "--http-upstream", "ftp://cloud"])
        #expect(url.status != 0 && url.stderr.contains("--http-upstream: expected http://HOST[:PORT]"))
        let pair = try runProcess(bin, ["proxy", "--http-upstream", "http://cloud", "--tls-cert", "c.pem"])
        #expect(pair.status != 0 && pair.stderr.contains("--tls-cert and --tls-key go together"))
        let busy = try Upstream { _, _ in .init(body: "{}") }
        let bound = try runProcess(
            bin, ["proxy", "--http-listen", "127.0.0.1:\(busy.port)", "--http-upstream", "http://127.0.0.1:1", "--db", dir.path("b.sqlite")])
        #expect(bound.status == 2)
        #expect(bound.stderr.contains("cannot listen for HTTP on 127.0.0.1:\(busy.port): address already in use"))
    }

    /// One masked binary WebSocket frame (RFC 6455 §5.2), payload under 126 bytes.
    static func wsFrame(_ payload: [UInt8]) -> [UInt8] {
        let mask: [UInt8] = [9, 8, 7, 6]
        return [0x82, 0x80 | UInt8(payload.count)] + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    @Test(.enabled(if: ProxyEndToEndTests.ready, "needs mosquitto, curl and the built binary")) func mqttOverWebSocketIsRelayedAndDecoded() throws {
        let dir = try TempDir("proxy-mqtt-ws")
        let broker = try Broker(dir: dir, webSocket: true)
        let wsPort = try #require(broker.webSocketPort)
        let upstream = try Upstream(route: Self.cloud(broker: "ws://127.0.0.1:\(wsPort)/mqtt"))
        let db = dir.path("p.sqlite")
        let proxy = try ProxyProcess(
            dir: dir,
            [
                "--http-listen", "127.0.0.1:0", "--http-upstream", "http://127.0.0.1:\(upstream.port)",
                "--mqtt-listen", "127.0.0.1:0", "--db", db,
            ])
        let mqttPort = try #require(proxy.mqttPort)
        let login = try curl(["-X", "POST", "-d", "{}", "http://127.0.0.1:\(proxy.httpPort)/manage/api/v1/login"])
        #expect(login.contains(#""mqtt_addr":"ws://127.0.0.1:\#(mqttPort)/mqtt""#))

        let c = try RawClient(port: mqttPort)
        try c.send(
            "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        )
        var head: [UInt8] = []
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) { head += try c.receive(1) }
        #expect(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101"))
        try c.send(Self.wsFrame(MQTTWire.connect(clientID: "5YSZL260021E9A", username: "pilot", password: "pilot123")))
        #expect(try c.receive(2 + 4) == [0x82, 4] + MQTTWire.connAck(0))
        try c.send(Self.wsFrame(MQTTWire.publish("sys/product/5YSZL260021E9A/osd", Array(#"{"data":{}}"#.utf8))))
        try c.send(Self.wsFrame(MQTTWire.disconnect))
        usleep(300_000)
        c.close()
        usleep(200_000)
        let out = try proxy.stop()
        #expect(out.status == 0, "\(out.stderr)")
        let store = try StoredDB(db)
        #expect(
            try store.strings("SELECT type || ' ' || over_websocket FROM mqtt_packets ORDER BY id") == ["CONNECT 1", "CONNACK 1", "PUBLISH 1", "DISCONNECT 1"])
        #expect(broker.connectionsSeen(clientID: "5YSZL260021E9A").count == 1)
    }

    @Test(.enabled(if: ProxyEndToEndTests.ready, "needs mosquitto, curl and the built binary")) func pipelinedRequestsAndABigHeldBodyArriveWholeBeforeTheClose()
        throws
    {
        let dir = try TempDir("proxy-pipeline")
        let upstream = try Upstream(route: Self.cloud(broker: "tcp://127.0.0.1:1883"))
        let db = dir.path("p.sqlite")
        let proxy = try ProxyProcess(
            dir: dir,
            [
                "--http-listen", "127.0.0.1:0", "--http-upstream", "http://127.0.0.1:\(upstream.port)",
                "--mqtt-listen", "127.0.0.1:0", "--db", db, "--quiet",
            ])
        // A small receive buffer and a pause before reading: the proxy's last writes are still queued when it closes.
        let c = try RawClient(port: proxy.httpPort, receiveBuffer: 16_384)
        var requests = (0..<50).map { "GET /manage/api/v1/users/current?i=\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined()
        requests += "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        try c.send(requests)
        usleep(500_000)
        var statuses: [Int] = []
        var last: [UInt8] = []
        for _ in 0..<51 {
            let r = try c.receiveHTTPResponse()
            statuses.append(r.status)
            last = r.body
        }
        #expect(statuses == [Int](repeating: 200, count: 51))
        #expect(last.count > 7 << 20)
        #expect(String(decoding: last.suffix(80), as: UTF8.self).contains("\"mqtt_addr\":\"tcp://127.0.0.1:\(proxy.mqttPort ?? 0)\""))
        #expect(try c.receiveAll().isEmpty, "closed after the last response, nothing more")
        let out = try proxy.stop()
        #expect(out.status == 0)
        let store = try StoredDB(db)
        #expect(try store.int("SELECT count(*) FROM http_exchanges WHERE status = 200") == 51)
        #expect(try store.int("SELECT max(response_body_length) FROM http_exchanges") == last.count)
    }
}

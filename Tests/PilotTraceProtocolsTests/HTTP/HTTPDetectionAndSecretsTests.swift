import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

@Suite struct HTTPDetectionTests {
    let b = HTTPTestSupport.bytes

    @Test func requestLines() {
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("GET /api/v1/x?y=1 HTTP/1.1\r\nHost: a\r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("CONNECT cloud.example:443 HTTP/1.1\r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("OPTIONS * HTTP/1.0\r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("POST http://h/p HTTP/1.1\r\n")) == true)
        // Too short to tell.
        #expect(HTTPConnectionDecoder.looksLikeRequest([]) == nil)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("PA")) == nil)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("DELETE /x")) == nil)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("GET / HTTP/1.")) == nil)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("GET / HTTP/1.1\r")) == nil)
        // Not a request line.
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("get / HTTP/1.1\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("_GET / HTTP/1.1\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("GET  / HTTP/1.1\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("GET / HTTP/2.0\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("GET / HTTP/1.1 \n")) == false)
        // Extension methods (RFC 9110 §9.1) and a bare LF line end (RFC 9112 §2.2) are requests too.
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("PROPFIND /dav HTTP/1.1\r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("CCM_POST /x HTTP/1.1\r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("GET / HTTP/1.1\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 200 OK\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeRequest([0x10, 0x20, 0x00, 0x04]) == false)
        #expect(HTTPConnectionDecoder.looksLikeRequest(b("GET /") + [UInt8](repeating: 0x61, count: 9000)) == false)
    }

    @Test func statusLines() {
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 200 OK\r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.0 404\r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 101 Switching Protocols\r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 200 \r\n")) == true)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 2")) == nil)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTT")) == nil)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 200 OK")) == nil)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/2 200\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 600 X\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 20 X\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("HTTP/1.1 200OK\r\n")) == false)
        #expect(HTTPConnectionDecoder.looksLikeStatusLine(b("GET / HTTP/1.1\r\n")) == false)
    }
}

@Suite struct HTTPSecretsTests {
    typealias T = HTTPTestSupport
    let b = HTTPTestSupport.bytes

    @Test func requestDisplayMasksCredentialsUnlessAsked() throws {
        let body = b(#"{"username":"pilot","password":"hunter2","n":[1]}"#)
        let request =
            b(
                "POST /api/v1/login?lang=en&x-auth-token=eyJhbGciOi.secret&password=hunter2 HTTP/1.1\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc\r\nX-Auth-Token: tok-123\r\nCookie: sid=s3cr3t; theme=dark\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
            ) + body
        let events = T.decode([.data(.toServer, request)])
        let req = try #require(T.requests(events).first)
        let shown = req.display()
        #expect(shown.contains("POST /api/v1/login?lang=en&x-auth-token=***&password=*** HTTP/1.1"))
        #expect(shown.contains("Authorization: Bearer ***"))
        #expect(shown.contains("X-Auth-Token: ***"))
        #expect(shown.contains("Cookie: sid=***; theme=***"))
        #expect(shown.contains("\"username\": \"pilot\""))
        #expect(shown.contains("\"password\": \"***\""))
        for secret in ["eyJhbGciOi", "hunter2", "tok-123", "s3cr3t"] { #expect(!shown.contains(secret), "\(secret) leaked") }
        let revealed = req.display(showSecrets: true)
        for secret in ["eyJhbGciOi", "hunter2", "tok-123", "s3cr3t"] { #expect(revealed.contains(secret)) }
    }

    @Test func responseDisplayMasksSetCookieValueButKeepsAttributes() throws {
        let events = T.decode([
            .data(.toClient, b("HTTP/1.1 200 OK\r\nSet-Cookie: session=abc123; Path=/; HttpOnly\r\nContent-Length: 5\r\n\r\nhello"))
        ])
        let res = try #require(T.responses(events).first)
        let shown = res.display()
        #expect(shown.contains("Set-Cookie: session=***; Path=/; HttpOnly"))
        #expect(shown.contains("hello"))
        #expect(!shown.contains("abc123"))
    }

    @Test func helpers() {
        #expect(HTTPSecrets.maskedTarget("/mqtt?x-auth-token=abc&sn=123") == "/mqtt?x-auth-token=***&sn=123")
        #expect(HTTPSecrets.maskedTarget("/ws?x%2Dauth%2Dtoken=abc") == "/ws?x%2Dauth%2Dtoken=***")
        #expect(HTTPSecrets.maskedTarget("/plain") == "/plain")
        #expect(HTTPSecrets.maskedValue(field: "authorization", value: "token") == "***")
        #expect(HTTPSecrets.maskedValue(field: "Host", value: "a") == "a")
        #expect(HTTPSecrets.maskedValue(field: "X-Access-Token", value: "a") == "***")
        #expect(
            HTTPSecrets.maskedJSON(.object([("access_token", .string("x")), ("data", .object([("mqtt_password", .number(5))]))]))
                == .object([("access_token", .string("***")), ("data", .object([("mqtt_password", .string("***"))]))]))
    }
}

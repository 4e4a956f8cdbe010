import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// RFC 9112 message framing, each vector fed whole, byte by byte and in random splits.
@Suite struct HTTPFramingTests {
    typealias T = HTTPTestSupport
    let b = HTTPTestSupport.bytes

    @Test func contentLengthRequestAndResponse() throws {
        let request = b("POST /api/v1/login?lang=en HTTP/1.1\r\nHost: cloud.example\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
        let response = b("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let events = T.decode([.data(.toServer, request), .data(.toClient, response)])
        #expect(events.count == 2)
        let req = try #require(T.requests(events).first)
        #expect(req.index == 0)
        #expect(req.method == "POST")
        #expect(req.head.target == "/api/v1/login?lang=en")
        #expect(req.head.path == "/api/v1/login")
        #expect(req.head.query == "lang=en")
        #expect(req.head.version == .http11)
        #expect(req.body.bytes == b("hello"))
        #expect(req.body.length == 5)
        #expect(req.framing == .contentLength(5))
        #expect(req.span.offset == 0)
        #expect(req.span.length == request.count)
        #expect(req.span.firstByteAt == T.time(0))
        #expect(req.span.lastByteAt == T.time(0))
        #expect(req.isComplete)
        #expect(req.keepAlive)
        let res = try #require(T.responses(events).first)
        #expect(res.requestIndex == 0)
        #expect(res.requestMethod == "POST")
        #expect(res.status == 200)
        #expect(res.head.reason == "OK")
        #expect(res.body.bytes == b("ok"))
        #expect(res.span.length == response.count)
        #expect(res.span.firstByteAt == T.time(1))
        #expect(res.anomalies.isEmpty)
    }

    @Test func headerNamesAreCaseInsensitiveAndKeepTheirCase() throws {
        let events = T.decode([.data(.toServer, b("GET / HTTP/1.1\r\nhOsT:   example.org  \r\nX-Custom:a\r\nx-custom: b\r\n\r\n"))])
        let req = try #require(T.requests(events).first)
        #expect(req.headers["HOST"] == "example.org")
        #expect(req.headers.fields[0].name == "hOsT")
        #expect(req.headers.values("X-CUSTOM") == ["a", "b"])
        #expect(req.framing == HTTPBodyFraming.none)
    }

    @Test func obsFoldIsJoinedAndFlagged() throws {
        let events = T.decode([.data(.toClient, b("HTTP/1.1 204 No Content\r\nX-Long: first\r\n  second\r\n\tthird\r\n\r\n"))])
        let res = try #require(T.responses(events).first)
        #expect(res.headers["x-long"] == "first second third")
        #expect(res.anomalies.contains(.obsoleteLineFolding))
        #expect(res.anomalies.contains(.unpairedResponse))
        #expect(res.requestIndex == nil)
    }

    @Test func chunkedWithExtensionsAndTrailers() throws {
        let request = b(
            "PUT /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;name=value;flag\r\nWiki\r\n5 ; x=\"q\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n"
        )
        let events = T.decode([.data(.toServer, request)])
        #expect(events.count == 1)
        let req = try #require(T.requests(events).first)
        #expect(req.framing == .chunked)
        #expect(req.body.bytes == b("Wikipedia in\r\n\r\nchunks."))
        #expect(req.body.length == 23)
        #expect(req.chunkExtensions == ["name=value;flag", " x=\"q\""])
        #expect(req.trailers["expires"] == "never")
        #expect(req.trailers["X-Checksum"] == "abc")
        #expect(req.span.length == request.count)
        #expect(req.isComplete)
    }

    @Test func chunkedResponseFollowedByAnother() throws {
        let response = b("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        let events = T.decode([
            .data(.toServer, b("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")), .data(.toClient, response),
        ])
        let res = T.responses(events)
        #expect(res.map(\.status) == [200, 404])
        #expect(res.map(\.requestIndex) == [0, 1])
        try #require(res.count > 0)
        #expect(res[0].body.bytes == b("abc"))
        #expect(res[0].framing == .chunked)
    }

    @Test func closeDelimitedResponseEndsAtEnd() throws {
        let events = T.decode([
            .data(.toServer, b("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")),
            .data(.toClient, b("part two")),
            .end(.toClient),
        ])
        let res = try #require(T.responses(events).first)
        #expect(res.framing == .untilClose)
        #expect(res.body.bytes == b("part one, part two"))
        #expect(res.isComplete)
        #expect(res.span.firstByteAt == T.time(1))
        #expect(res.span.lastByteAt == T.time(2))
    }

    @Test func closeDelimitedResponseWithoutFinIsIncomplete() throws {
        var decoder = HTTPConnectionDecoder()
        decoder.feed(.toClient, b("HTTP/1.0 200 OK\r\n\r\nabc"), at: T.time(0))
        #expect(decoder.drainEvents().isEmpty)
        decoder.finish(at: T.time(5))
        let res = try #require(T.responses(decoder.drainEvents()).first)
        #expect(res.body.bytes == b("abc"))
        #expect(res.incomplete?.reason == .endOfStream)
        #expect(res.keepAlive == false)
    }

    @Test func headResponseHasNoBodyDespiteContentLength() throws {
        let events = T.decode([
            .data(.toServer, b("HEAD /file HTTP/1.1\r\n\r\nGET /file HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")),
        ])
        let res = T.responses(events)
        try #require(res.count == 2)
        #expect(res[0].requestMethod == "HEAD")
        #expect(res[0].framing == HTTPBodyFraming.none)
        #expect(res[0].body.isEmpty)
        #expect(res[1].requestIndex == 1)
        #expect(res[1].body.bytes == b("0123456789"))
    }

    @Test func expect100ContinueThenFinalResponse() throws {
        let events = T.decode([
            .data(.toServer, b("POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 100 Continue\r\n\r\n")),
            .data(.toServer, b("data")),
            .data(.toClient, b("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")),
        ])
        // The 100 completes before the request's body does.
        guard events.count == 3, case .response(let interim) = events[0], case .request(let req) = events[1],
            case .response(let final) = events[2]
        else {
            Issue.record("unexpected events \(events)")
            return
        }
        #expect(interim.status == 100)
        #expect(interim.requestIndex == 0)
        #expect(interim.head.isInformational)
        #expect(req.body.bytes == b("data"))
        #expect(req.headers["expect"] == "100-continue")
        #expect(final.status == 201)
        #expect(final.requestIndex == 0)
    }

    @Test func interimResponsesDoNotConsumeTheRequest() throws {
        let events = T.decode([
            .data(.toServer, b("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")),
            .data(
                .toClient,
                b(
                    "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"
                )),
        ])
        let res = T.responses(events)
        #expect(res.map(\.status) == [103, 102, 200, 200])
        #expect(res.map(\.requestIndex) == [0, 0, 0, 1])
    }

    @Test func noContentAndNotModifiedHaveNoBody() throws {
        let events = T.decode([
            .data(.toServer, b("DELETE /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\nIf-None-Match: \"e\"\r\n\r\nGET /z HTTP/1.1\r\n\r\n")),
            .data(
                .toClient,
                b(
                    "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"e\"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"
                )),
        ])
        let res = T.responses(events)
        #expect(res.map(\.status) == [204, 304, 200])
        #expect(res.map(\.requestIndex) == [0, 1, 2])
        try #require(res.count > 2)
        #expect(res[0].body.isEmpty && res[1].body.isEmpty)
        #expect(res[2].body.bytes == b("z"))
    }

    @Test func threePipelinedRequestsPairInOrder() throws {
        let requests = b("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /3?q=1 HTTP/1.1\r\n\r\n")
        let responses = b(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree"
        )
        let events = T.decode([.data(.toServer, requests), .data(.toClient, responses)])
        let req = T.requests(events)
        let res = T.responses(events)
        #expect(req.map(\.head.path) == ["/1", "/2", "/3"])
        #expect(req.map(\.index) == [0, 1, 2])
        try #require(req.count > 2)
        #expect(req[1].body.bytes == b("abc"))
        #expect(res.map(\.requestIndex) == [0, 1, 2])
        #expect(res.map { String(decoding: $0.body.bytes, as: UTF8.self) } == ["one", "two", "three"])
        // The empty line between responses is skipped, not an error (RFC 9112 §2.2).
        #expect(T.errors(events).isEmpty)
        #expect(req[2].span.offset == requests.count - b("GET /3?q=1 HTTP/1.1\r\n\r\n").count)
    }

    @Test func manyRequestsOnOneKeepAliveConnection() throws {
        var steps: [T.Step] = []
        for k in 0..<20 {
            steps.append(.data(.toServer, b("GET /osd/\(k) HTTP/1.1\r\nConnection: keep-alive\r\n\r\n")))
            steps.append(.data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: \(String(k).utf8.count)\r\n\r\n\(k)")))
        }
        let events = T.decode(steps)
        let res = T.responses(events)
        #expect(res.count == 20)
        #expect(res.map(\.requestIndex) == Array(0..<20))
        #expect(res.map { String(decoding: $0.body.bytes, as: UTF8.self) } == (0..<20).map(String.init))
        #expect(res.allSatisfy { $0.keepAlive })
        #expect(T.requests(events).map(\.span.firstByteAt) == (0..<20).map { T.time(2 * $0) })
    }

    @Test func http10KeepAliveSemantics() throws {
        let events = T.decode([
            .data(.toServer, b("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")),
            .data(.toClient, b("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\naHTTP/1.0 200 OK\r\n\r\nbody until close")),
            .end(.toClient),
        ])
        let req = T.requests(events)
        let res = T.responses(events)
        #expect(req.map(\.keepAlive) == [true, false])
        #expect(req.map(\.head.version) == [.http10, .http10])
        #expect(res.map(\.keepAlive) == [true, false])
        try #require(res.count > 1)
        #expect(res[1].framing == .untilClose)
        #expect(res[1].body.bytes == b("body until close"))
    }

    @Test func connectionCloseIsNotKeepAlive() throws {
        let events = T.decode([.data(.toServer, b("GET / HTTP/1.1\r\nConnection: Upgrade-Insecure, close\r\n\r\n"))])
        #expect(T.requests(events).first?.keepAlive == false)
    }

    @Test func transferEncodingWithContentLengthUsesChunkedAndFlags() throws {
        let events = T.decode([
            .data(
                .toServer,
                b("POST /smuggle HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n"))
        ])
        let req = T.requests(events)
        try #require(req.count == 2)
        #expect(req[0].framing == .chunked)
        #expect(req[0].body.bytes == b("hi"))
        #expect(req[0].anomalies.contains(.transferEncodingWithContentLength))
        #expect(req[1].head.path == "/next")
    }

    @Test func requestWithoutLengthHasNoBody() throws {
        let events = T.decode([.data(.toServer, b("POST /empty HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\n\r\n"))])
        let req = T.requests(events)
        #expect(req.map(\.head.path) == ["/empty", "/after"])
        try #require(req.count > 0)
        #expect(req[0].body.isEmpty)
    }

    @Test func bareLineFeedsAreToleratedAndFlagged() throws {
        let events = T.decode([.data(.toClient, b("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"))])
        let res = try #require(T.responses(events).first)
        #expect(res.body.bytes == b("ok"))
        #expect(res.anomalies.contains(.bareLineFeed))
    }

    @Test func repeatedIdenticalContentLengthIsAcceptedConflictingIsAnError() throws {
        let ok = T.decode([.data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc"))])
        let res = try #require(T.responses(ok).first)
        #expect(res.body.bytes == b("abc"))
        #expect(res.anomalies.contains(.repeatedContentLength))

        let bad = T.decode([.data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"))])
        #expect(T.errors(bad).map(\.code) == [.invalidContentLength])
        #expect(T.responses(bad).first?.incomplete?.reason == .malformed)
    }

    @Test func absoluteFormTargetIsSplit() throws {
        let events = T.decode([.data(.toServer, b("GET http://Proxy.example:8080/a/b?x=1&y HTTP/1.1\r\n\r\nCONNECT cloud.example:443 HTTP/1.1\r\n\r\n"))])
        let req = T.requests(events)
        try #require(req.count > 1)
        #expect(req[0].head.path == "/a/b")
        #expect(req[0].head.query == "x=1&y")
        #expect(req[0].head.queryItems.map(\.name) == ["x", "y"])
        #expect(req[0].head.queryItems.map(\.value) == ["1", nil])
        #expect(req[1].head.path == "cloud.example:443")
        #expect(req[1].head.query == nil)
    }

    @Test func statusLineWithoutReason() throws {
        let events = T.decode([.data(.toClient, b("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"))])
        let res = try #require(T.responses(events).first)
        #expect(res.status == 200)
        #expect(res.head.reason == "")
    }

    @Test func connectTunnelStopsHTTPDecoding() throws {
        let events = T.decode([
            .data(.toServer, b("CONNECT cloud.example:443 HTTP/1.1\r\nHost: cloud.example:443\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 Connection established\r\n\r\n")),
            .data(.toServer, [0x16, 0x03, 0x01, 0x02, 0x00]),
            .data(.toClient, [0x16, 0x03, 0x03, 0x00, 0x5A]),
        ])
        #expect(T.errors(events).isEmpty)
        let upgrades = events.compactMap { if case .upgrade(let u) = $0 { u } else { nil } }
        #expect(upgrades.map(\.protocolName) == ["connect"])
        #expect(T.requests(events).count == 1)
        #expect(T.responses(events).count == 1)
    }
}

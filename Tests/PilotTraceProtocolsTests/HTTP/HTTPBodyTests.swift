import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Body storage, caps, Content-Encoding and JSON.
@Suite struct HTTPBodyTests {
    typealias T = HTTPTestSupport
    let b = HTTPTestSupport.bytes

    let json = #"{"code":0,"message":"success","data":{"workspace_id":"e3dea0f5","devices":[{"sn":"1581F5FHB22A","online":true}]}}"#

    func response(_ headers: String, _ body: [UInt8]) -> [T.Step] {
        [
            .data(.toServer, b("GET /manage/api/v1/devices HTTP/1.1\r\nAccept-Encoding: gzip, deflate\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\n\(headers)Content-Length: \(body.count)\r\n\r\n") + body),
        ]
    }

    @Test(arguments: [("gzip", Int32(31)), ("x-gzip", 31), ("deflate", 15), ("deflate", -15)])
    func compressedBodiesAreDecoded(coding: String, windowBits: Int32) throws {
        let compressed = T.deflate(b(json), windowBits: windowBits)
        let events = T.decode(response("Content-Type: application/json; charset=utf-8\r\nContent-Encoding: \(coding)\r\n", compressed))
        let res = try #require(T.responses(events).first)
        #expect(res.body.bytes == compressed)
        #expect(res.body.contentCodings == [coding])
        #expect(res.body.decoded == b(json))
        #expect(res.body.decodingFailure == nil)
        #expect(res.body.json?["data"]?["devices"]?[0]?["sn"]?.stringValue == "1581F5FHB22A")
        #expect(res.anomalies.isEmpty)
    }

    @Test func deflateWithZlibHeaderFromCompress2() throws {
        let compressed = T.compress(b(json))
        #expect(compressed[0] == 0x78)
        let events = T.decode(response("Content-Encoding: deflate\r\n", compressed))
        let res = try #require(T.responses(events).first)
        #expect(res.body.decoded == b(json))
        // No media type, but the decoded body starts with '{'.
        #expect(res.body.json?["code"]?.int64Value == 0)
    }

    @Test func chunkedGzipBody() throws {
        let compressed = T.deflate(b(json), windowBits: 31)
        let half = compressed.count / 2
        func hex(_ n: Int) -> String { String(n, radix: 16) }
        let body = b("\(hex(half))\r\n") + compressed[..<half] + b("\r\n\(hex(compressed.count - half))\r\n") + compressed[half...] + b("\r\n0\r\n\r\n")
        let events = T.decode([
            .data(.toServer, b("GET / HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n") + body),
        ])
        let res = try #require(T.responses(events).first)
        #expect(res.body.decoded == b(json))
        #expect(res.body.length == compressed.count)
    }

    @Test func corruptCompressedBodyKeepsRawAndSaysWhy() throws {
        var compressed = T.deflate(b(json), windowBits: 31)
        compressed[compressed.count / 2] ^= 0xFF
        compressed[compressed.count / 2 + 1] ^= 0xFF
        let events = T.decode(response("Content-Encoding: gzip\r\n", compressed))
        let res = try #require(T.responses(events).first)
        #expect(res.body.bytes == compressed)
        #expect(res.body.decoded == nil)
        #expect(res.body.decodingFailure != nil)
        #expect(res.anomalies.contains(.contentDecodingFailed))
    }

    @Test func unsupportedCodingIsRecorded() throws {
        let events = T.decode(response("Content-Encoding: br\r\n", [1, 2, 3]))
        let res = try #require(T.responses(events).first)
        #expect(res.body.decodingFailure == "unsupported content coding 'br'")
        #expect(res.body.bytes == [1, 2, 3])
    }

    @Test func gzipStreamEndingEarlyIsAFailure() throws {
        let compressed = T.deflate(b(json), windowBits: 31)
        let events = T.decode(response("Content-Encoding: gzip\r\n", Array(compressed.prefix(compressed.count - 10))))
        let res = try #require(T.responses(events).first)
        #expect(res.body.decoded == nil)
        #expect(res.body.decodingFailure?.contains("ends before") == true)
    }

    @Test func bodyCapTruncatesButCountsTheTrueLength() throws {
        let config = HTTPDecoderConfiguration(maxBodyBytes: 10)
        let body = b(String(repeating: "0123456789", count: 10))
        let events = T.decode(
            [
                .data(.toServer, b("POST /big HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n") + body),
                .data(.toServer, b("GET /next HTTP/1.1\r\n\r\n")),
            ], configuration: config)
        let req = T.requests(events)
        try #require(req.count == 2)
        #expect(req[0].body.bytes == b("0123456789"))
        #expect(req[0].body.length == 100)
        #expect(req[0].body.truncated)
        #expect(req[0].isComplete)
        // A truncated body is not parsed as JSON (it would fail for the wrong reason).
        #expect(req[0].body.json == nil && req[0].body.jsonError == nil)
        #expect(req[1].head.path == "/next")
    }

    @Test func decodedBodyIsCappedToo() throws {
        let plain = [UInt8](repeating: UInt8(ascii: "a"), count: 100_000)
        let compressed = T.deflate(plain, windowBits: 31)
        let config = HTTPDecoderConfiguration(maxDecodedBodyBytes: 1000)
        let events = T.decode(response("Content-Encoding: gzip\r\n", compressed), configuration: config)
        let res = try #require(T.responses(events).first)
        #expect(res.body.decoded?.count == 1000)
        #expect(res.body.decodedTruncated)
        #expect(res.body.decodingFailure == nil)
    }

    @Test func truncatedCompressedBodyDecodesItsPrefix() throws {
        var rng = T.SplitMix64(seed: 42)
        let plain = (0..<50_000).map { _ in UInt8.random(in: 0x61...0x66, using: &rng) }
        let compressed = T.deflate(plain, windowBits: 31)
        let config = HTTPDecoderConfiguration(maxBodyBytes: compressed.count / 2)
        let events = T.decode(response("Content-Encoding: gzip\r\n", compressed), configuration: config)
        let res = try #require(T.responses(events).first)
        #expect(res.body.truncated)
        #expect(res.body.decodedTruncated)
        let decoded = try #require(res.body.decoded)
        #expect(!decoded.isEmpty)
        #expect(Array(plain.prefix(decoded.count)) == decoded)
    }

    @Test func jsonByMediaTypeAndBySniffing() throws {
        let events = T.decode([
            .data(.toServer, b("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Type: application/problem+json\r\nContent-Length: 13\r\n\r\n{\"title\":\"x\"}")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n \n[1,2.5]")),
            .data(.toClient, b("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 6\r\n\r\n{\"a\":}")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n[not js")),
        ])
        let res = T.responses(events)
        try #require(res.count == 4)
        #expect(res[0].body.json == .object([("title", .string("x"))]))
        #expect(res[1].body.json == .array([.number(1), .number(2.5)]))
        #expect(res[2].body.json == nil)
        #expect(res[2].body.jsonError?.code == .unexpectedCharacter)
        #expect(res[2].anomalies.contains(.invalidJSONBody))
        // Sniffed but not JSON: no error recorded.
        #expect(res[3].body.json == nil && res[3].body.jsonError == nil)
        #expect(res[3].anomalies.isEmpty)
    }
}

import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Gaps, resynchronisation, pairing after losses, and typed errors.
@Suite struct HTTPGapAndErrorTests {
    typealias T = HTTPTestSupport
    let b = HTTPTestSupport.bytes

    @Test func gapInsideAContentLengthBodyKeepsTheFraming() throws {
        let events = T.decode([
            .data(.toServer, b("POST /telemetry HTTP/1.1\r\nContent-Length: 10\r\n\r\nabcd")),
            .gap(.toServer, 3),
            .data(.toServer, b("hij") + b("GET /next HTTP/1.1\r\n\r\n")),
        ])
        let req = T.requests(events)
        try #require(req.count == 2)
        #expect(req[0].incomplete == HTTPIncompleteness(reason: .gap, lostBytes: 3))
        #expect(req[0].body.length == 10)
        #expect(req[0].body.bytes == b("abcdhij"))
        #expect(req[0].span.lastByteAt == T.time(2))
        #expect(req[1].isComplete)
        #expect(req[1].span.offset == 48 + 10)
        #expect(!events.contains { if case .resynchronised = $0 { true } else { false } })
    }

    @Test func gapInAHeadThenResyncAtTheNextRequestLine() throws {
        let partial = b("GET /a?x=1 HTTP/1.1\r\nHost: cloud\r\nUser-Ag")
        let garbage = b("ent: lost\r\n\r\nlost body bytes \r\n")
        let next = b("GET /c HTTP/1.1\r\n\r\n")
        let events = T.decode([
            .data(.toServer, partial), .gap(.toServer, 50), .data(.toServer, garbage + next),
        ])
        guard events.count == 3, case .request(let a) = events[0], case .resynchronised(let resync) = events[1],
            case .request(let c) = events[2]
        else {
            Issue.record("unexpected events \(events)")
            return
        }
        #expect(a.head.path == "/a")
        #expect(a.headers["host"] == "cloud")
        #expect(a.incomplete?.reason == .gap)
        #expect(resync.direction == .toServer)
        #expect(resync.skippedBytes == garbage.count)
        #expect(resync.offset == partial.count + 50 + garbage.count)
        #expect(c.head.path == "/c")
        #expect(c.index == 1)
        #expect(c.span.offset == resync.offset)
        var decoder = HTTPConnectionDecoder()
        decoder.feed(.toServer, partial, at: T.time(0))
        decoder.gap(.toServer, length: 50, at: T.time(1))
        decoder.feed(.toServer, garbage + next, at: T.time(2))
        #expect(decoder.statistics.toServer.skippedBytes == garbage.count)
        #expect(decoder.statistics.toServer.lostBytes == 50)
        #expect(decoder.statistics.toServer.resynchronisations == 1)
    }

    @Test func theFirstByteAfterAGapIsTriedAsAStartLine() throws {
        let events = T.decode([
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")),
            .gap(.toClient, 200),
            .data(.toClient, b("HTTP/1.1 204 No Content\r\n\r\n")),
        ])
        let res = T.responses(events)
        try #require(res.count == 2)
        #expect(res[0].incomplete == HTTPIncompleteness(reason: .gap, lostBytes: 95))
        #expect(res[0].span.length == 40 + 100)
        #expect(res[1].status == 204)
        #expect(res[1].isComplete)
        let resync = events.compactMap { if case .resynchronised(let r) = $0 { r } else { nil } }
        #expect(resync.map(\.skippedBytes) == [0])
    }

    @Test func responseToALostRequestIsUnpaired() throws {
        let events = T.decode([
            .data(.toServer, b("GET /1 HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")),
            .gap(.toServer, 19),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")),
            .data(.toServer, b("GET /3 HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3")),
        ])
        let res = T.responses(events)
        #expect(res.map(\.requestIndex) == [0, nil, 1])
        try #require(res.count > 2)
        #expect(res[1].anomalies.contains(.unpairedResponse))
        #expect(res[2].anomalies.contains(.pairedAfterGap))
        #expect(T.requests(events).map(\.head.path) == ["/1", "/3"])
    }

    @Test func aLostResponseDoesNotShiftThePairing() throws {
        let events = T.decode([
            .data(.toServer, b("GET /1 HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")),
            .data(.toServer, b("GET /2 HTTP/1.1\r\n\r\n")),
            .gap(.toClient, 40),
            .data(.toServer, b("GET /3 HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3")),
            .data(.toServer, b("GET /4 HTTP/1.1\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n4")),
        ])
        let res = T.responses(events)
        #expect(res.map(\.requestIndex) == [0, 2, 3])
        try #require(res.count > 2)
        #expect(res[1].anomalies == [.pairedAfterGap])
        #expect(res[2].anomalies.isEmpty)
    }

    @Test func chunkSizeOverflowIsATypedError() throws {
        for size in ["10000000000000000", "FFFFFFFFFFFFFFFF", "8000000000000000", String(repeating: "f", count: 300)] {
            let events = T.decode([
                .data(.toServer, b("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")),
                .data(.toClient, b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n\(size)\r\nxyz\r\n")),
                .data(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")),
            ])
            let errors = T.errors(events)
            #expect(errors.map(\.code) == [.chunkSizeOverflow], "size \(size)")
            #expect(errors.first?.offset == 47 + 9)
            #expect(errors.first?.messageOffset == 0)
            let res = T.responses(events)
            try #require(res.count == 2)
            #expect(res[0].incomplete?.reason == .malformed)
            #expect(res[0].body.bytes == b("abcd"))
            #expect(res[1].requestIndex == 1)
        }
        // The largest size that fits is not an error (the body simply never completes here).
        let big = T.decode([.data(.toClient, b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7FFFFFFFFFFFFFFF\r\nabc"))])
        #expect(T.errors(big).isEmpty)
    }

    @Test func headerSectionTooLargeIsATypedErrorAndBufferingStaysBounded() throws {
        let config = HTTPDecoderConfiguration(maxHeaderSectionBytes: 4096)
        let huge = b("GET /big HTTP/1.1\r\n") + Array(repeating: b("X-Filler: 0123456789012345678901234567890123456789\r\n"), count: 200).flatMap { $0 }
        let next = b("\r\nGET /ok HTTP/1.1\r\n\r\n")
        let events = T.decode([.data(.toServer, huge + next)], configuration: config)
        let errors = T.errors(events)
        #expect(errors.map(\.code) == [.headerSectionTooLarge])
        #expect(errors.first?.offset == 0)
        #expect(T.requests(events).map(\.head.path) == ["/ok"])

        var decoder = HTTPConnectionDecoder(configuration: config)
        var peak = 0
        for byte in huge {
            decoder.feed(.toServer, [byte], at: T.time(0))
            peak = max(peak, decoder.bufferedByteCount)
        }
        #expect(peak <= 4096 + 16)
    }

    @Test func invalidStartLinesAreSkippedUntilTheNextOne() throws {
        let junk = b("\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}binary junk\r\nmore junk\r\n")
        let events = T.decode([.data(.toServer, junk + b("POST /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nz"))])
        #expect(T.errors(events).map(\.code) == [.invalidRequestLine])
        let resync = events.compactMap { if case .resynchronised(let r) = $0 { r } else { nil } }
        #expect(resync.map(\.skippedBytes) == [junk.count])
        #expect(T.requests(events).first?.body.bytes == b("z"))
    }

    @Test func unsupportedVersionAndBadStatusLines() throws {
        let events = T.decode([
            .data(.toServer, b("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")),
            .data(.toClient, b("HTTP/1.1 2OO OK\r\n\r\n")),
        ])
        #expect(T.errors(events).map(\.code) == [.unsupportedVersion, .invalidStatusLine])
        #expect(T.errors(events).map(\.direction) == [.toServer, .toClient])
    }

    @Test func missingChunkTerminatorIsAnError() throws {
        let events = T.decode([.data(.toClient, b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"))])
        #expect(T.errors(events).map(\.code) == [.missingChunkTerminator])
        #expect(T.responses(events).first?.incomplete?.reason == .malformed)
    }

    @Test func invalidChunkSizeAndRequestTransferEncoding() throws {
        let events = T.decode([
            .data(.toClient, b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")),
            .data(.toServer, b("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET /after HTTP/1.1\r\n\r\n")),
        ])
        #expect(T.errors(events).map(\.code) == [.invalidChunkSize, .unsupportedTransferEncoding])
        #expect(T.requests(events).map(\.head.path) == ["/", "/after"])
    }

    @Test func endInsideABodyIsIncompleteWithWhatIsMissing() throws {
        let events = T.decode([
            .data(.toServer, b("PUT /f HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123")),
            .end(.toServer),
            .data(.toServer, b("ignored after FIN")),
        ])
        let req = try #require(T.requests(events).first)
        #expect(req.incomplete == HTTPIncompleteness(reason: .endOfStream, lostBytes: 0, missingBodyBytes: 6))
        #expect(req.body.bytes == b("0123"))
        #expect(T.requests(events).count == 1)
    }

    @Test func endInsideAHeadEmitsWhatWasParsed() throws {
        let events = T.decode([.data(.toServer, b("GET /cut HTTP/1.1\r\nHost: a\r\nAcc")), .end(.toServer)])
        let req = try #require(T.requests(events).first)
        #expect(req.head.path == "/cut")
        #expect(req.headers["host"] == "a")
        #expect(req.incomplete?.reason == .endOfStream)
    }

    @Test func timestampsAreThoseOfTheFirstAndLastBytes() throws {
        let events = T.decode([
            .data(.toServer, b("POST /t HTTP/1.1\r\nContent-")),
            .data(.toServer, b("Length: 4\r\n\r\nab")),
            .data(.toServer, b("cdGET /u HTTP/1.1\r\n")),
            .data(.toServer, b("\r\n")),
        ])
        let req = T.requests(events)
        #expect(req.map(\.span.firstByteAt) == [T.time(0), T.time(2)])
        #expect(req.map(\.span.lastByteAt) == [T.time(2), T.time(3)])
        #expect(req.map(\.span.offset) == [0, 43])
        #expect(req.map(\.span.length) == [43, 19])
    }

    @Test func pendingRequestsAreBounded() throws {
        var decoder = HTTPConnectionDecoder(configuration: HTTPDecoderConfiguration(maxPendingRequests: 8))
        for k in 0..<100 { decoder.feed(.toServer, b("GET /\(k) HTTP/1.1\r\n\r\n"), at: T.time(k)) }
        decoder.feed(.toClient, b("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), at: T.time(200))
        let res = T.responses(decoder.drainEvents())
        #expect(res.map(\.requestIndex) == [92])
        #expect(decoder.statistics.droppedPendingRequests == 92)
    }
}

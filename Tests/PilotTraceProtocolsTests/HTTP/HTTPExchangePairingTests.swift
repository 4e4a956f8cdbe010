import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// One pairing of requests and responses for every consumer: by request index, per connection, 1xx left waiting.
@Suite struct HTTPExchangePairingTests {
    static func decoded(_ up: String, _ down: String) -> (requests: [HTTPRequest], responses: [HTTPResponse]) {
        var d = HTTPConnectionDecoder()
        d.feed(.toServer, Array(up.utf8), at: Timestamp(nanoseconds: 1))
        d.feed(.toClient, Array(down.utf8), at: Timestamp(nanoseconds: 2))
        var requests: [HTTPRequest] = [], responses: [HTTPResponse] = []
        for e in d.drainEvents() {
            if case .request(let r) = e { requests.append(r) }
            if case .response(let r) = e { responses.append(r) }
        }
        return (requests, responses)
    }

    @Test func pipelinedResponsesMeetTheirRequestsAndOneIsLeftUnanswered() throws {
        let (requests, responses) = Self.decoded(
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 404 X\r\nContent-Length: 0\r\n\r\n")
        #expect(requests.count == 3 && responses.count == 2)
        let c1 = ConnectionID(rawValue: 1), c2 = ConnectionID(rawValue: 2)
        var p = HTTPExchangePairing<String>()
        for (i, r) in requests.enumerated() { p.request(r, on: c1, "row\(i)") }
        p.request(requests[0], on: c2, "other")  // another connection's request with the same index stays apart
        #expect(p.response(responses[0], on: c1)?.attachment == "row0")
        #expect(p.response(responses[0], on: c1) == nil)  // taken once
        #expect(p.response(responses[1], on: c1)?.request.head.path == "/b")
        #expect(p.close(c1).map(\.attachment) == ["row2"])
        #expect(p.close(c1).isEmpty)
        #expect(p.close(c2).map(\.attachment) == ["other"])
        #expect(p.connectionCount == 0)
    }

    @Test("A connection whose requests were all answered holds nothing until its close")
    func anAnsweredConnectionIsForgotten() throws {
        let (requests, responses) = Self.decoded(
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        let c = ConnectionID(rawValue: 3)
        var p = HTTPExchangePairing<Int>()
        // Given out of order, a request still waits in its place; given again, it replaces the first.
        p.request(requests[1], on: c, 2)
        p.request(requests[0], on: c, 0)
        p.request(requests[0], on: c, 1)
        #expect(p.connectionCount == 1)
        #expect(p.response(responses[0], on: c)?.attachment == 1)
        #expect(p.connectionCount == 1)
        #expect(p.response(responses[1], on: c)?.request.head.path == "/b")
        #expect(p.connectionCount == 0)
        #expect(p.close(c).isEmpty)
    }

    @Test func anInformationalResponseLeavesTheRequestWaiting() throws {
        let (requests, responses) = Self.decoded(
            "POST /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        #expect(responses.count == 2)
        let c = ConnectionID(rawValue: 7)
        var p = HTTPExchangePairing<Int>()
        p.request(requests[0], on: c, 42)
        #expect(p.response(responses[0], on: c)?.attachment == 42)
        #expect(p.response(responses[1], on: c)?.attachment == 42)
        #expect(p.close(c).isEmpty)
    }
}

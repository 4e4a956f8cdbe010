import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One keep-alive HTTP/1.1 connection, used from a plain thread: each ``send(_:_:headers:body:)`` writes a request
/// and blocks until its response (or the timeout). Pilot 2's webview reuses its connection the same way.
public final class HTTPClientConnection: @unchecked Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    struct Outgoing: Sendable {
        var head: HTTPRequestHead
        var body: [UInt8]
        var promise: EventLoopPromise<Response>
    }

    let channel: Channel
    let host: String
    let timeout: TimeAmount
    let defaultHeaders: Bool

    /// Connects to `host:port`, from the local address `bindTo` if given.
    ///
    /// - Parameters:
    ///   - defaultHeaders: Add `Host` and `User-Agent` to each request (off: the caller's headers go out as given, as
    ///     a replay sends the recorded ones).
    ///   - bytes: A handler to put first in the pipeline, under HTTP: it sees the bytes as sent and received (a replay
    ///     records its own traffic this way).
    public init(
        host: String, port: Int, group: EventLoopGroup, timeout: Double = 10, bindTo source: String? = nil,
        defaultHeaders: Bool = true, bytes: (@Sendable () -> any ChannelHandler)? = nil
    ) throws {
        self.host = host
        self.defaultHeaders = defaultHeaders
        self.timeout = .milliseconds(Int64(timeout * 1000))
        do {
            var bootstrap = ClientBootstrap(group: group)
            if let source { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0)) }
            channel =
                try bootstrap
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .channelOption(.allowRemoteHalfClosure, value: bytes != nil)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let bytes { try channel.pipeline.syncOperations.addHandler(bytes()) }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ExchangeHandler())
                    }
                }
                .connect(host: host, port: port).wait()
        } catch {
            throw Failure(description: "cannot connect to http://\(host):\(port): \(error)")
        }
    }

    /// Sends one request on the connection and waits for its response.
    public func send(_ method: HTTPMethod, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil) throws -> Response {
        var h = HTTPHeaders()
        if defaultHeaders {
            h.add(name: "Host", value: host)
            h.add(name: "User-Agent", value: "pilottrace-lab-pilot")
        }
        for (name, value) in headers { h.add(name: name, value: value) }
        if let body { h.add(name: "Content-Length", value: String(body.count)) }
        let promise = channel.eventLoop.makePromise(of: Response.self)
        let timeout = self.timeout
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(Failure(description: "no response to \(method.rawValue) \(target) within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        channel.writeAndFlush(
            Outgoing(
                head: HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: h), body: body ?? [],
                promise: promise), promise: nil)
        defer { deadline.cancel() }
        return try promise.futureResult.wait()
    }

    public func close() { try? channel.close().wait() }

    /// The local and the remote address of the connection.
    public var addresses: (local: SocketAddress?, remote: SocketAddress?) { (channel.localAddress, channel.remoteAddress) }

    /// Writes each request and answers the oldest outstanding promise with each complete response.
    final class ExchangeHandler: ChannelDuplexHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundIn = Outgoing
        typealias OutboundOut = HTTPClientRequestPart

        var waiting: [EventLoopPromise<Response>] = []
        var head: HTTPResponseHead?
        var body: [UInt8] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            let out = unwrapOutboundIn(data)
            waiting.append(out.promise)
            context.write(wrapOutboundOut(.head(out.head)), promise: nil)
            if !out.body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: out.body)))), promise: nil) }
            context.write(wrapOutboundOut(.end(nil)), promise: promise)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h; body.removeAll()
            case .body(let b): body += b.readableBytesView
            case .end:
                guard let h = head, !waiting.isEmpty else { return }
                head = nil
                if h.status.code < 200 { return }  // 1xx: the final response follows
                waiting.removeFirst().succeed(Response(status: Int(h.status.code), headers: h.headers.map { ($0.name, $0.value) }, body: body))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            for p in waiting { p.fail(Failure(description: "the server closed the connection")) }
            waiting.removeAll()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            for p in waiting { p.fail(error) }
            waiting.removeAll()
            context.close(promise: nil)
        }
    }
}

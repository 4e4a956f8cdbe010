import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PilotTraceFlow
import PilotTraceRelay

/// What the HTTP side shares across connections: settings, TLS towards the upstream, the broker address the
/// cloud handed out (remembered for the MQTT side), and the log.
final class HTTPProxyContext: @unchecked Sendable {
    let configuration: ProxyConfiguration
    let upstreamTLS: NIOSSLContext?
    /// The MQTT listener's bound port (nil: MQTT not proxied, no rewriting).
    let mqttPort: Int?
    let memory: BrokerMemory
    let log: @Sendable (String) -> Void

    init(configuration: ProxyConfiguration, upstreamTLS: NIOSSLContext?, mqttPort: Int?, memory: BrokerMemory, log: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.upstreamTLS = upstreamTLS
        self.mqttPort = mqttPort
        self.memory = memory
        self.log = log
    }
}

/// The broker address the cloud last handed out, before rewriting (the MQTT side's default upstream).
public final class BrokerMemory: @unchecked Sendable {
    let lock = NSLock()
    var value: BrokerAddress?
    public init() {}
    public var original: BrokerAddress? { lock.lock(); defer { lock.unlock() }; return value }
    func remember(_ a: BrokerAddress) { lock.lock(); value = a; lock.unlock() }
}

/// Serves one app-side HTTP connection: each request goes to the upstream over one kept-alive upstream connection,
/// in order (pipelined requests wait their turn); bodies stream through, except JSON and HTML responses that are
/// held (up to a cap) to rewrite `mqtt_addr` or inject the bridge script. A WebSocket upgrade the upstream accepts
/// turns both connections into a raw relay. When the upstream fails before answering, the app gets a 502.
/// Bridge reports to the reserved path are answered here (204) and never forwarded.
final class HTTPProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum Held { case json, html }

    let shared: HTTPProxyContext
    var context: ChannelHandlerContext!
    var upstream: Channel?
    var connecting: EventLoopFuture<Channel>?
    /// Request parts that arrived while an earlier exchange was still going on.
    var waiting: [HTTPServerRequestPart] = []
    /// The exchange in progress.
    var request: HTTPRequestHead?
    var requestEnded = false
    var local = false
    var discardRequest = false
    var responseStarted = false
    var held: (head: HTTPResponseHead, body: ByteBuffer, kind: Held)?
    var started: NIODeadline = .now()
    var upgrading = false
    var switching: HTTPResponseHead?
    /// The last response's final write (a close waits for it).
    var lastWrite: EventLoopFuture<Void>?
    var closeAfterResponse = false
    var inputClosed = false

    init(shared: HTTPProxyContext) {
        self.shared = shared
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    var busy: Bool { request != nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if busy, requestEnded || upgrading {
            // Pipelined requests wait their turn; stop reading meanwhile, so what waits stays bounded.
            waiting.append(part)
            if waiting.count == 1 { context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
            return
        }
        handle(part)
    }

    func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            begin(head)
        case .body(let b):
            guard !local, !discardRequest else { return }
            forward(.body(.byteBuffer(b)))
        case .end(let trailers):
            requestEnded = true
            if local {
                respondLocally(status: .noContent, body: nil)
            } else if !discardRequest {
                forward(.end(trailers))
            } else if responseDone {
                finishExchange()
            }
        }
    }

    var responseDone = false

    func begin(_ head: HTTPRequestHead) {
        request = head
        requestEnded = false
        responseStarted = false
        responseDone = false
        held = nil
        local = false
        discardRequest = false
        started = .now()
        closeAfterResponse = !head.isKeepAlive
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        if head.method == .POST, path == BridgeReport.path {
            local = true  // the bridge script's report: answered here, never forwarded
            return
        }
        upgrading = head.headers.contains(name: "upgrade")
        var up = head
        let u = shared.configuration.httpUpstream
        up.headers.replaceOrAdd(name: "host", value: u.hostHeader)
        if shared.configuration.rewrite || shared.configuration.bridge {
            // Held bodies must be readable: ask the upstream for identity encoding (the app's own header is what
            // the recording shows).
            up.headers.replaceOrAdd(name: "accept-encoding", value: "identity")
        }
        forward(.head(up))
    }

    // MARK: - Upstream

    func forward(_ part: HTTPClientRequestPart) {
        if let upstream {
            upstream.writeAndFlush(part, promise: nil)
            return
        }
        let future = connecting ?? connectUpstream()
        future.whenSuccess { ch in ch.writeAndFlush(part, promise: nil) }
    }

    func connectUpstream() -> EventLoopFuture<Channel> {
        let u = shared.configuration.httpUpstream
        let tls = shared.upstreamTLS
        let bootstrap = ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { [weak self] ch in
                ch.eventLoop.makeCompletedFuture {
                    if let tls {
                        let h = try NIOSSLClientHandler(context: tls, serverHostname: u.host.isIPAddress ? nil : u.host)
                        try ch.pipeline.syncOperations.addHandler(h)
                    }
                    // The codec pair by hand (no header validator: the relay after an upgrade removes exactly these).
                    try ch.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
                    try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)))
                    try ch.pipeline.syncOperations.addHandler(UpstreamHandler(owner: self))
                }
            }
        let f = bootstrap.connect(host: u.host, port: u.port)
        connecting = f
        f.whenComplete { [weak self] result in
            guard let self else { return }
            self.connecting = nil
            switch result {
            case .success(let ch):
                self.upstream = ch
            case .failure(let error):
                self.upstreamFailed("upstream \(u) unreachable: \(Self.describe(error))")
            }
        }
        return f
    }

    static func describe(_ error: Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
        if let c = error as? NIOConnectionError, let first = c.connectionErrors.first { return describe(first.error) }
        return "\(error)"
    }

    /// The upstream connection failed or closed before the exchange finished.
    func upstreamFailed(_ reason: String) {
        upstream = nil
        guard request != nil, !local, !appGone else { return }
        if !responseStarted {
            shared.log("502 \(request!.method) \(pathOnly(request!.uri)): \(reason)")
            discardRequest = !requestEnded
            upgrading = false
            respondLocally(status: .badGateway, body: "pilottrace proxy: \(reason)\n", proxyError: "upstream-error")
        } else if !responseDone {
            // Part of the response went out: the app sees the connection end, as it would have.
            context.close(promise: nil)
        }
    }

    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard let request else { return }
        switch part {
        case .head(let head):
            if head.status == .switchingProtocols, upgrading {
                switching = head  // relayed at the end of this response (the decoder then holds only new-protocol bytes)
                return
            }
            if head.status.code < 200 {
                context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
                return
            }
            upgrading = false
            responseStarted = true
            if !head.isKeepAlive { closeAfterResponse = true }
            if let kind = holdKind(head, request) {
                held = (head, context.channel.allocator.buffer(capacity: 4096), kind)
            } else {
                context.write(wrapOutboundOut(.head(head)), promise: nil)
            }
        case .body(var b):
            if held != nil {
                if held!.body.readableBytes + b.readableBytes > shared.configuration.maxRewriteBody {
                    // Too big to hold: send what we have unchanged and stream the rest.
                    let h = held!
                    held = nil
                    context.write(wrapOutboundOut(.head(h.head)), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(h.body))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
                } else {
                    held!.body.writeBuffer(&b)
                }
            } else {
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
            }
        case .end(let trailers):
            if let head = switching {
                switching = nil
                switchToRelay(head)
                return
            }
            if let h = held {
                held = nil
                let (head, body) = transform(h.head, h.body, h.kind, request)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                if body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
                lastWrite = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            } else {
                lastWrite = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
            }
            responseDone = true
            if requestEnded { finishExchange() }
        }
    }

    func pathOnly(_ uri: String) -> String { uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri }

    /// Which responses are held: JSON when rewriting (and MQTT is proxied), HTML to GET when injecting.
    func holdKind(_ head: HTTPResponseHead, _ request: HTTPRequestHead) -> Held? {
        let type = head.headers.first(name: "content-type")?.lowercased() ?? ""
        let encoding = head.headers.first(name: "content-encoding")?.lowercased() ?? "identity"
        guard encoding == "identity", request.method != .HEAD, head.status != .noContent, head.status != .notModified else { return nil }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > shared.configuration.maxRewriteBody { return nil }
        if shared.configuration.rewrite, shared.mqttPort != nil, type.contains("json") || type.isEmpty { return .json }
        if shared.configuration.bridge, request.method == .GET, type.contains("text/html") { return .html }
        return nil
    }

    func transform(_ head: HTTPResponseHead, _ body: ByteBuffer, _ kind: Held, _ request: HTTPRequestHead) -> (HTTPResponseHead, ByteBuffer) {
        let bytes = Array(body.readableBytesView)
        var out: [UInt8]?
        switch kind {
        case .json:
            guard let port = shared.mqttPort else { break }
            let host = advertisedHost(request)
            let tls = shared.configuration.appTLS
            let memory = shared.memory
            let result = MQTTAddressRewriter.rewrite(bytes) { original in
                guard let a = BrokerAddress(original) else { return nil }
                memory.remember(a)
                return a.through(host: host, port: port, tls: tls).description
            }
            if !result.replacements.isEmpty {
                out = result.body
                for r in result.replacements { shared.log("rewrote \(r.key) \(r.original) → \(r.rewritten) in \(pathOnly(request.uri))") }
            }
        case .html:
            out = BridgeScript.inject(into: bytes)
        }
        guard let out else { return (head, body) }
        var h = head
        h.headers.remove(name: "transfer-encoding")
        h.headers.replaceOrAdd(name: "content-length", value: String(out.count))
        var b = context.channel.allocator.buffer(capacity: out.count)
        b.writeBytes(out)
        return (h, b)
    }

    /// The host Pilot 2 should use for the MQTT listener.
    func advertisedHost(_ request: HTTPRequestHead) -> String {
        if let h = shared.configuration.advertiseHost { return h }
        if let l = shared.configuration.mqttListen, !l.isWildcard { return l.host }
        if let host = request.headers.first(name: "host"), let a = BrokerAddress("tcp://" + host) { return a.host }
        return context.channel.localAddress?.ipAddress ?? "127.0.0.1"
    }

    func respondLocally(status: HTTPResponseStatus, body: String?, proxyError: String? = nil) {
        var headers = HTTPHeaders()
        if let proxyError { headers.add(name: "x-pilottrace-proxy", value: proxyError) }
        let bytes = body.map { Array($0.utf8) } ?? []
        if body != nil { headers.add(name: "content-type", value: "text/plain; charset=utf-8") }
        if status != .noContent { headers.add(name: "content-length", value: String(bytes.count)) }
        let version = request?.version ?? .http1_1
        responseStarted = true
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if !bytes.isEmpty {
            var b = context.channel.allocator.buffer(capacity: bytes.count)
            b.writeBytes(bytes)
            context.write(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
        }
        lastWrite = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        responseDone = true
        if requestEnded { finishExchange() }
    }

    func finishExchange() {
        if let r = request, !local {
            let ms = Double((NIODeadline.now() - started).nanoseconds) / 1e6
            shared.log(String(format: "%@ %@ (%.1f ms)", "\(r.method)", pathOnly(r.uri), ms))
        }
        request = nil
        local = false
        discardRequest = false
        if closeAfterResponse || (inputClosed && waiting.isEmpty) {
            // After the response has gone out: a close drops writes still queued.
            let context = self.context!
            if let lastWrite { lastWrite.whenComplete { _ in context.close(promise: nil) } } else { context.close(promise: nil) }
            return
        }
        while request == nil || !requestEnded, !waiting.isEmpty {
            handle(waiting.removeFirst())
        }
        if waiting.isEmpty, !context.channel.isAutoReadOn {
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
    }

    // MARK: - WebSocket upgrade

    /// The upstream accepted the upgrade: pass its 101 on, then relay raw bytes both ways (the recording, below
    /// the HTTP codec, keeps seeing every byte).
    func switchToRelay(_ head: HTTPResponseHead) {
        guard let upstream else { return }
        let app = context.channel
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        let (appGlue, upGlue) = GlueHandler.pair()
        do {
            let ops = app.pipeline.syncOperations
            try ops.addHandler(appGlue)
            let encoder = try ops.handler(type: HTTPResponseEncoder.self)
            let decoder = try ops.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let errors = try? ops.handler(type: HTTPServerProtocolErrorHandler.self)
            // Pending request parts would be bytes of the new protocol already; the decoder holds those.
            waiting.removeAll()
            // Every HTTP handler above the decoder goes first: it forwards the bytes it holds when removed.
            ops.removeHandler(context: context, promise: nil)
            if let errors { ops.removeHandler(errors, promise: nil) }
            ops.removeHandler(encoder, promise: nil)
            ops.removeHandler(decoder, promise: nil)
            let uops = upstream.pipeline.syncOperations
            try uops.addHandler(upGlue)
            let uh = try uops.handler(type: UpstreamHandler.self)
            let uenc = try uops.handler(type: HTTPRequestEncoder.self)
            let udec = try uops.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self)
            uops.removeHandler(uh, promise: nil)
            uops.removeHandler(uenc, promise: nil)
            uops.removeHandler(udec, promise: nil)
            shared.log("\(request!.method) \(pathOnly(request!.uri)) upgraded: relaying")
            app.read()
            upstream.read()
        } catch {
            shared.log("upgrade failed: \(error)")
            app.close(promise: nil)
            upstream.close(promise: nil)
        }
    }

    // MARK: - App side lifecycle

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            inputClosed = true
            if request == nil { context.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    var appGone = false

    func channelInactive(context: ChannelHandlerContext) {
        appGone = true
        upstream?.close(promise: nil)
        connecting?.whenSuccess { $0.close(promise: nil) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The upstream connection's end: response parts go back to the app-side handler (same event loop).
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    weak var owner: HTTPProxyHandler?

    init(owner: HTTPProxyHandler?) { self.owner = owner }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        owner?.upstreamRead(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let owner, owner.upstream === context.channel { owner.upstreamFailed("upstream closed the connection before answering") }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        owner?.upstreamFailed("upstream error: \(HTTPProxyHandler.describe(error))")
        context.close(promise: nil)
    }
}

extension Channel {
    var isAutoReadOn: Bool { (try? syncOptions?.getOption(ChannelOptions.autoRead)) ?? true }
}

extension String {
    var isIPAddress: Bool { contains(":") || allSatisfy { $0.isNumber || $0 == "." } }
}

// Handlers are used only on their channel's event loop; the upstream channel is bootstrapped on that same loop.
extension HTTPProxyHandler: @unchecked Sendable {}
extension UpstreamHandler: @unchecked Sendable {}

import NIOCore
import PilotTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// Sits right above TLS (or first, without TLS) on an app-side connection and records the plain bytes that pass
/// in each direction, the peer's FIN, its reset, and the proxy's own close, through the ``ProxyRecorder``.
final class RecordingHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let recorder: ProxyRecorder
    var id: Int?
    var clientClosed = false
    var serverClosed = false
    var reset = false

    init(recorder: ProxyRecorder) {
        self.recorder = recorder
    }

    static func endpoint(_ a: SocketAddress?) -> Endpoint? {
        guard let a, var ip = a.ipAddress, let port = a.port else { return nil }
        if let pct = ip.firstIndex(of: "%") { ip = String(ip[..<pct]) }
        if ip.hasPrefix("::ffff:"), ip.contains(".") { ip = String(ip.dropFirst(7)) }
        guard let address = IPAddress(ip) else { return nil }
        return Endpoint(address: address, port: UInt16(port))
    }

    func start(_ context: ChannelHandlerContext) {
        guard id == nil, let client = Self.endpoint(context.channel.remoteAddress), let server = Self.endpoint(context.channel.localAddress) else {
            return
        }
        id = recorder.open(client: client, server: server)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if let id, buffer.readableBytes > 0 { recorder.data(id, Array(buffer.readableBytesView), from: .toServer) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        if let id, buffer.readableBytes > 0, !serverClosed { recorder.data(id, Array(buffer.readableBytesView), from: .toClient) }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed, let id, !clientClosed, !reset {
            clientClosed = true
            recorder.fin(id, from: .toServer)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input, let id, !serverClosed, !reset {
            serverClosed = true
            recorder.fin(id, from: .toClient)
        }
        context.close(mode: mode, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let io = error as? IOError, [ECONNRESET, EPIPE].contains(io.errnoCode), let id, !reset {
            reset = true
            recorder.rst(id, from: .toServer)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let id {
            recorder.close(id, serverFirst: !clientClosed)
            self.id = nil
        }
        context.fireChannelInactive()
    }
}

/// Relays raw bytes between two channels (after a WebSocket upgrade, and for MQTT): what one reads, the other
/// writes, unchanged; a half-close is passed on; when one side goes, the other is closed.
final class GlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    var partner: GlueHandler?
    var context: ChannelHandlerContext?
    var pendingRead = false

    static func pair() -> (GlueHandler, GlueHandler) {
        let a = GlueHandler(), b = GlueHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    /// The last write to this side: closing waits for it (a close drops writes the socket has not taken yet).
    var lastWrite: EventLoopFuture<Void>?

    func partnerWrite(_ data: NIOAny) { lastWrite = context?.write(data) }
    func partnerFlush() { context?.flush() }
    func partnerWriteEOF() { afterWrites { $0.close(mode: .output, promise: nil) } }
    func partnerCloseFull() { afterWrites { $0.close(promise: nil) } }

    func afterWrites(_ body: @escaping (ChannelHandlerContext) -> Void) {
        guard let context else { return }
        context.flush()
        if let lastWrite { lastWrite.whenComplete { _ in body(context) } } else { body(context) }
    }
    func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
    var partnerWritable: Bool { context?.channel.isWritable ?? false }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.partnerCloseFull() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { partner?.partnerWriteEOF() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable { context.read() } else { pendingRead = true }
    }
}

// Partners live on one event loop (the upstream is bootstrapped on the app channel's loop).
extension GlueHandler: @unchecked Sendable {}

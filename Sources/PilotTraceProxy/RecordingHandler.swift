import NIOCore

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

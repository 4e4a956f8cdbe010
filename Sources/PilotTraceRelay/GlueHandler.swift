import NIOCore

/// Relays raw bytes between two channels on one event loop, one half of a ``pair()`` last in each pipeline: what
/// one side reads, the other writes, unchanged. The proxy glues an app connection to its upstream with it (MQTT,
/// and HTTP after a WebSocket upgrade); the replay, libmosquitto's connection to the target broker.
///
/// - Backpressure: a side asks its channel for more only while the partner's channel is writable, and asks again
///   when it becomes writable.
/// - Closing waits for the writes already issued (a close drops what the socket has not taken yet). A half-close
///   (`ChannelEvent.inputClosed`) closes the partner's output; when one side goes, the other is closed.
/// - Until the partner is in its pipeline, what a side reads, its half-close and its going are kept for the
///   partner, which carries them out when it is added (a client's first bytes may come before its upstream is
///   connected). Once a partner has been removed, what would go to it is dropped.
public final class GlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny
    public typealias OutboundIn = NIOAny
    public typealias OutboundOut = NIOAny

    var partner: GlueHandler?
    var context: ChannelHandlerContext?
    /// Whether this side has been added to a pipeline (until then it keeps what its partner sends it).
    var added = false
    /// What the partner read before this side was added, in order.
    var kept: [NIOAny] = []
    /// The partner half-closed before this side was added.
    var keptHalfClose = false
    /// The partner went before this side was added.
    var keptClose = false
    /// A read this side's channel asked for while the partner could not take more.
    var pendingRead = false
    /// The last write to this side: closing waits for it.
    var lastWrite: EventLoopFuture<Void>?

    /// Two handlers, each the other's partner: one for each channel.
    public static func pair() -> (GlueHandler, GlueHandler) {
        let a = GlueHandler(), b = GlueHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        added = true
        // The partner read, half-closed or went before this side existed.
        if !kept.isEmpty {
            for d in kept { partnerWrite(d) }
            kept.removeAll()
            partnerFlush()
        }
        if keptClose { partnerCloseFull() } else if keptHalfClose { partnerWriteEOF() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    // What the partner asks of this side.

    func partnerWrite(_ data: NIOAny) {
        if let context { lastWrite = context.write(data) } else if !added { kept.append(data) }
    }

    func partnerFlush() { context?.flush() }

    func partnerWriteEOF() {
        if context != nil { afterWrites { $0.close(mode: .output, promise: nil) } } else if !added { keptHalfClose = true }
    }

    func partnerCloseFull() {
        if context != nil { afterWrites { $0.close(promise: nil) } } else if !added { keptClose = true }
    }

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

    /// Whether the partner may read more: this side's channel is writable, or this side is not added yet (what is
    /// read is kept for it).
    var partnerWritable: Bool {
        if let context { return context.channel.isWritable }
        return !added
    }

    // This side's channel.

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }

    public func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }

    public func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerCloseFull()
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { partner?.partnerWriteEOF() }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable { context.read() } else { pendingRead = true }
    }
}

// Partners live on one event loop (each user bootstraps the second channel on the first one's loop).
extension GlueHandler: @unchecked Sendable {}

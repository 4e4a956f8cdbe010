import NIOCore
import NIOEmbedded
import Testing

@testable import PilotTraceRelay

/// Below a glue handler: counts reads asked for, writes down closes, and can hold writes back (a socket that has
/// not taken them yet).
final class Spy: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer

    var reads = 0
    var closes: [CloseMode] = []
    var holdWrites = false
    var held: [EventLoopPromise<Void>] = []

    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard holdWrites else { return context.write(data, promise: promise) }
        let p = context.eventLoop.makePromise(of: Void.self)
        held.append(p)
        promise.map { p.futureResult.cascade(to: $0) }
        context.write(data, promise: nil)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        closes.append(mode)
        context.close(mode: mode, promise: promise)
    }
}

struct GlueHandlerTests {
    /// An active channel with a spy and, unless `glue` is nil, a glue handler on top.
    func channel(_ glue: GlueHandler?) throws -> (EmbeddedChannel, Spy) {
        let spy = Spy()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(spy)
        if let glue { try channel.pipeline.syncOperations.addHandler(glue) }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, spy)
    }

    func string(_ b: ByteBuffer?) -> String? { b.map { String(buffer: $0) } }

    @Test func whatOneSideReadsTheOtherWrites() throws {
        let (a, b) = GlueHandler.pair()
        let (left, _) = try channel(a), (right, _) = try channel(b)
        try left.writeInbound(ByteBuffer(string: "ping"))
        #expect(string(try right.readOutbound(as: ByteBuffer.self)) == "ping")
        try right.writeInbound(ByteBuffer(string: "pong"))
        #expect(string(try left.readOutbound(as: ByteBuffer.self)) == "pong")
    }

    @Test func beforeThePartnerIsAddedItsBytesAndHalfCloseAreKept() throws {
        let (a, b) = GlueHandler.pair()
        let (left, leftSpy) = try channel(a)
        left.read()
        #expect(leftSpy.reads == 1)  // reading goes on: what is read is kept
        try left.writeInbound(ByteBuffer(string: "CONNECT"))
        left.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let (right, rightSpy) = try channel(nil)
        try right.pipeline.syncOperations.addHandler(b)
        #expect(string(try right.readOutbound(as: ByteBuffer.self)) == "CONNECT")
        // (An EmbeddedChannel closes whole on an output close, and the glue then closes the other side too.)
        #expect(rightSpy.closes.first == .output)
    }

    @Test func aSideThatGoesBeforeThePartnerIsAddedClosesIt() throws {
        let (a, b) = GlueHandler.pair()
        let (left, _) = try channel(a)
        try left.close().wait()
        let (right, rightSpy) = try channel(nil)
        try right.pipeline.syncOperations.addHandler(b)
        #expect(rightSpy.closes == [.all])
    }

    @Test func closingWaitsForTheWritesAlreadyIssued() throws {
        let (a, b) = GlueHandler.pair()
        let (left, _) = try channel(a), (right, rightSpy) = try channel(b)
        rightSpy.holdWrites = true
        try left.writeInbound(ByteBuffer(string: "last words"))
        left.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        try left.close().wait()
        #expect(rightSpy.closes.isEmpty)
        for p in rightSpy.held { p.succeed(()) }
        #expect(rightSpy.closes == [.output, .all])
        #expect(string(try right.readOutbound(as: ByteBuffer.self)) == "last words")
    }

    @Test func aSideReadsOnlyWhileThePartnerIsWritable() throws {
        let (a, b) = GlueHandler.pair()
        let (left, leftSpy) = try channel(a), (right, _) = try channel(b)
        let before = leftSpy.reads
        right.isWritable = false
        left.read()
        #expect(leftSpy.reads == before)
        right.isWritable = true
        right.pipeline.fireChannelWritabilityChanged()
        #expect(leftSpy.reads == before + 1)
    }
}

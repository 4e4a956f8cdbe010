import NIOCore
import PilotTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// Where a replay's connections report their bytes: the frame recorder, which turns them into TCP frames for the
/// live analysis.
public protocol TrafficRecording: AnyObject, Sendable {
    /// A connection from `client` to `server` opened: its handle.
    func open(client: Endpoint, server: Endpoint) -> Int
    func data(_ id: Int, _ bytes: [UInt8], from direction: Direction)
    func fin(_ id: Int, from direction: Direction)
    func rst(_ id: Int, from direction: Direction)
    /// The connection is gone: whatever half is still open closes.
    func close(_ id: Int, serverFirst: Bool)
}

/// First in a client connection's pipeline: reports the bytes the replay sends (to the server) and receives, the
/// server's FIN or reset, and the replay's own close. The connection is seen from the replay's side: `client` is
/// its local address, `server` the target.
final class ByteTap: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let recorder: any TrafficRecording
    /// Close the channel when the server half-closes (the HTTP client pipeline expects a full close then).
    let closeOnInputClosed: Bool
    var id: Int?
    var serverClosed = false
    var clientClosed = false
    var reset = false

    init(recorder: any TrafficRecording, closeOnInputClosed: Bool) {
        self.recorder = recorder
        self.closeOnInputClosed = closeOnInputClosed
    }

    static func endpoint(_ a: SocketAddress?) -> Endpoint? {
        guard let a, var ip = a.ipAddress, let port = a.port else { return nil }
        if let pct = ip.firstIndex(of: "%") { ip = String(ip[..<pct]) }
        if ip.hasPrefix("::ffff:"), ip.contains(".") { ip = String(ip.dropFirst(7)) }
        guard let address = IPAddress(ip) else { return nil }
        return Endpoint(address: address, port: UInt16(port))
    }

    func start(_ context: ChannelHandlerContext) {
        guard id == nil, let client = Self.endpoint(context.channel.localAddress), let server = Self.endpoint(context.channel.remoteAddress) else {
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
        if let id, buffer.readableBytes > 0 { recorder.data(id, Array(buffer.readableBytesView), from: .toClient) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        if let id, buffer.readableBytes > 0, !clientClosed { recorder.data(id, Array(buffer.readableBytesView), from: .toServer) }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            if let id, !serverClosed, !reset {
                serverClosed = true
                recorder.fin(id, from: .toClient)
            }
            if closeOnInputClosed { context.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input, let id, !clientClosed, !reset {
            clientClosed = true
            recorder.fin(id, from: .toServer)
        }
        context.close(mode: mode, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let io = error as? IOError, [ECONNRESET, EPIPE].contains(io.errnoCode), let id, !reset {
            reset = true
            recorder.rst(id, from: .toClient)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let id {
            recorder.close(id, serverFirst: serverClosed && !clientClosed)
            self.id = nil
        }
        context.fireChannelInactive()
    }
}

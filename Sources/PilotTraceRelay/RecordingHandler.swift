import NIOCore
import PilotTraceWire

#if canImport(Glibc)
import Glibc
#endif

/// Reports what passes over one connection to a ``TrafficRecording``: the plain bytes in each direction, the
/// peer's FIN, a reset, and this end's own close. It sits right above TLS (or first, without TLS), so it sees
/// what the application reads and writes.
///
/// The recording is of a TCP connection from a client to a server; ``Side`` says which of the two this end is.
/// The proxy records its app-side connections as ``Side/accepted`` (the app is the client), the replay its
/// connections to the target as ``Side/initiated`` (the replay is the client).
public final class RecordingHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Which end of the connection this channel is.
    public enum Side: Sendable {
        /// A connection this end accepted: the peer is the client, this end the server.
        case accepted
        /// A connection this end opened: this end is the client, the peer the server.
        case initiated
    }

    let recorder: any TrafficRecording
    let side: Side
    /// Close the channel when the peer half-closes (an HTTP client pipeline expects a full close then).
    let closeOnInputClosed: Bool
    var id: Int?
    /// The peer's FIN was reported.
    var peerClosed = false
    /// This end's FIN was reported (it closed its output).
    var localClosed = false
    var reset = false

    /// - Parameters:
    ///   - recorder: where the connection is reported.
    ///   - side: which end of the connection this channel is.
    ///   - closeOnInputClosed: close the channel when the peer half-closes.
    public init(recorder: any TrafficRecording, side: Side, closeOnInputClosed: Bool = false) {
        self.recorder = recorder
        self.side = side
        self.closeOnInputClosed = closeOnInputClosed
    }

    /// The direction the peer's bytes (and its FIN or reset) travel in.
    var fromPeer: Direction { side == .accepted ? .toServer : .toClient }
    /// The direction this end's bytes (and its FIN) travel in.
    var fromLocal: Direction { side == .accepted ? .toClient : .toServer }

    /// Which half the recorder closes first when the connection goes with halves still open. Accepted: this end
    /// (the server) first, unless the client had closed. Initiated: the server (the peer) first only when it had
    /// closed and this end had not.
    var serverFirst: Bool {
        switch side {
        case .accepted: !peerClosed
        case .initiated: peerClosed && !localClosed
        }
    }

    /// A socket address as an endpoint: the IPv6 zone is dropped, an IPv4-mapped IPv6 address becomes IPv4.
    static func endpoint(_ a: SocketAddress?) -> Endpoint? {
        guard let a, var ip = a.ipAddress, let port = a.port else { return nil }
        if let pct = ip.firstIndex(of: "%") { ip = String(ip[..<pct]) }
        if ip.hasPrefix("::ffff:"), ip.contains(".") { ip = String(ip.dropFirst(7)) }
        guard let address = IPAddress(ip) else { return nil }
        return Endpoint(address: address, port: UInt16(port))
    }

    func start(_ context: ChannelHandlerContext) {
        guard id == nil, let local = Self.endpoint(context.channel.localAddress), let peer = Self.endpoint(context.channel.remoteAddress) else {
            return
        }
        switch side {
        case .accepted: id = recorder.open(client: peer, server: local)
        case .initiated: id = recorder.open(client: local, server: peer)
        }
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if let id, buffer.readableBytes > 0 { recorder.data(id, Array(buffer.readableBytesView), from: fromPeer) }
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        if let id, buffer.readableBytes > 0, !localClosed { recorder.data(id, Array(buffer.readableBytesView), from: fromLocal) }
        context.write(data, promise: promise)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            if let id, !peerClosed, !reset {
                peerClosed = true
                recorder.fin(id, from: fromPeer)
            }
            if closeOnInputClosed { context.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input, let id, !localClosed, !reset {
            localClosed = true
            recorder.fin(id, from: fromLocal)
        }
        context.close(mode: mode, promise: promise)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let io = error as? IOError, [ECONNRESET, EPIPE].contains(io.errnoCode), let id, !reset {
            reset = true
            recorder.rst(id, from: fromPeer)
        }
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if let id {
            recorder.close(id, serverFirst: serverFirst)
            self.id = nil
        }
        context.fireChannelInactive()
    }
}

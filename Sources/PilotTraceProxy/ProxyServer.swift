import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PilotTraceRelay

/// Why the proxy could not start.
public struct ProxyError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The proxy's listeners: HTTP (reverse proxy with rewriting and bridge injection) and MQTT (byte-exact relay),
/// each optionally terminating TLS towards the app and speaking TLS to its upstream. Every app-side connection
/// is recorded by a ``RecordingHandler`` into the recorder it is given (the command's `TrafficRecorder`).
public final class ProxyServer: @unchecked Sendable {
    public let configuration: ProxyConfiguration
    let recorder: any TrafficRecording
    let log: @Sendable (String) -> Void
    let group: MultiThreadedEventLoopGroup
    let memory = BrokerMemory()
    var listeners: [Channel] = []
    let children = NIOLockedValueBox<[ObjectIdentifier: Channel]>([:])
    public private(set) var httpAddress: SocketAddress?
    public private(set) var mqttAddress: SocketAddress?

    public init(
        configuration: ProxyConfiguration, recorder: any TrafficRecording, threads: Int = System.coreCount,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.configuration = configuration
        self.recorder = recorder
        self.log = log
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
    }

    /// The HTTP listener's bound address (its port when 0 was asked for).
    public var httpBound: HostPort? { httpAddress.flatMap(Self.hostPort) }
    public var mqttBound: HostPort? { mqttAddress.flatMap(Self.hostPort) }

    static func hostPort(_ a: SocketAddress) -> HostPort? {
        guard let ip = a.ipAddress, let port = a.port else { return nil }
        return HostPort(host: ip, port: port)
    }

    /// The broker address the cloud last handed out (before rewriting).
    public var originalBroker: BrokerAddress? { memory.original }

    static func loadAppTLS(_ c: ProxyConfiguration) throws -> NIOSSLContext? {
        guard let cert = c.tlsCertificate else { return nil }
        guard let key = c.tlsKey else { throw ProxyError("--tls-cert needs --tls-key") }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(cert).map { NIOSSLCertificateSource.certificate($0) }
            let config = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            return try NIOSSLContext(configuration: config)
        } catch {
            throw ProxyError("cannot load the TLS certificate \(cert) or its key \(key): not PEM, encrypted, or unreadable")
        }
    }

    static func upstreamTLS(_ c: ProxyConfiguration) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        if c.upstreamInsecure { config.certificateVerification = .none }
        if let ca = c.upstreamCA {
            do {
                config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            } catch {
                throw ProxyError("cannot load the upstream CA \(ca): \(error)")
            }
        }
        return try NIOSSLContext(configuration: config)
    }

    /// Loads the certificates (a missing or bad file is an error before anything is bound or stored).
    public static func preflight(_ c: ProxyConfiguration) throws {
        _ = try loadAppTLS(c)
        _ = try upstreamTLS(c)
    }

    /// Binds the listeners. Throws when a certificate cannot be loaded or an address cannot be bound.
    public func start() throws {
        let appTLS = try Self.loadAppTLS(configuration)
        let upTLS = try Self.upstreamTLS(configuration)
        let recorder = self.recorder
        let children = self.children

        var mqttPort: Int?
        if let listen = configuration.mqttListen {
            let mqttUpstreamTLS = configuration.upstreamTLS
            let fixed = configuration.mqttUpstream
            let memory = self.memory
            let log = self.log
            let channel = try bind(listen, "MQTT") { ch in
                try Self.addCommon(ch, appTLS: appTLS, recorder: recorder, children: children)
                try ch.pipeline.syncOperations.addHandler(
                    MQTTRelayHandler(
                        fixed: fixed, memory: memory, upstreamTLS: upTLS,
                        forceTLS: mqttUpstreamTLS, log: log))
            }
            mqttAddress = channel.localAddress
            mqttPort = channel.localAddress?.port
            listeners.append(channel)
        }
        let httpTLS = configuration.httpUpstream.tls || configuration.upstreamTLS ? upTLS : nil
        let shared = HTTPProxyContext(configuration: configuration, upstreamTLS: httpTLS, mqttPort: mqttPort, memory: memory, log: log)
        let channel = try bind(configuration.httpListen, "HTTP") { ch in
            try Self.addCommon(ch, appTLS: appTLS, recorder: recorder, children: children)
            let ops = ch.pipeline.syncOperations
            try ops.addHandler(HTTPResponseEncoder())
            try ops.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
            try ops.addHandler(HTTPServerProtocolErrorHandler())
            try ops.addHandler(HTTPProxyHandler(shared: shared))
        }
        httpAddress = channel.localAddress
        listeners.append(channel)
    }

    static func addCommon(
        _ ch: Channel, appTLS: NIOSSLContext?, recorder: any TrafficRecording, children: NIOLockedValueBox<[ObjectIdentifier: Channel]>
    ) throws {
        let key = ObjectIdentifier(ch)
        children.withLockedValue { $0[key] = ch }
        ch.closeFuture.whenComplete { _ in _ = children.withLockedValue { $0.removeValue(forKey: key) } }
        if let appTLS { try ch.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: appTLS)) }
        try ch.pipeline.syncOperations.addHandler(RecordingHandler(recorder: recorder, side: .accepted))
    }

    func bind(_ address: HostPort, _ what: String, _ initialize: @escaping @Sendable (Channel) throws -> Void) throws -> Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try initialize(ch) } }
        do {
            return try bootstrap.bind(host: address.host, port: address.port).wait()
        } catch {
            throw ProxyError("cannot listen for \(what) on \(address): \(HTTPProxyHandler.describe(error))")
        }
    }

    /// Stops accepting, closes every connection (their closes are recorded), and stops the event loops.
    public func stop() {
        for l in listeners { try? l.close().wait() }
        listeners.removeAll()
        let open = children.withLockedValue { Array($0.values) }
        for ch in open { try? ch.close().wait() }
        try? group.syncShutdownGracefully()
    }
}

/// One app-side MQTT connection: connects its upstream (the fixed one, else the broker the cloud handed out),
/// then relays bytes unchanged both ways. MQTT is never altered; the recording decodes it.
final class MQTTRelayHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    let fixed: HostPort?
    let memory: BrokerMemory
    let upstreamTLS: NIOSSLContext
    let forceTLS: Bool
    let log: @Sendable (String) -> Void
    var buffered: [NIOAny] = []
    var upstream: Channel?
    var inputClosed = false

    init(fixed: HostPort?, memory: BrokerMemory, upstreamTLS: NIOSSLContext, forceTLS: Bool, log: @escaping @Sendable (String) -> Void) {
        self.fixed = fixed
        self.memory = memory
        self.upstreamTLS = upstreamTLS
        self.forceTLS = forceTLS
        self.log = log
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        let target: (host: String, port: Int, tls: Bool)
        if let fixed {
            target = (fixed.host, fixed.port, forceTLS)
        } else if let original = memory.original {
            target = (original.host, original.port, forceTLS || original.usesTLS)
        } else {
            log("MQTT connection from \(context.channel.remoteAddress?.description ?? "?") closed: no --mqtt-upstream, and no mqtt_addr seen yet")
            context.close(promise: nil)
            return
        }
        let tls = target.tls ? upstreamTLS : nil
        let (appGlue, upGlue) = GlueHandler.pair()
        let app = context.channel
        let log = self.log
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connectTimeout(.seconds(10))
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    if let tls {
                        try ch.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: target.host.isIPAddress ? nil : target.host))
                    }
                    try ch.pipeline.syncOperations.addHandler(upGlue)
                }
            }
            .connect(host: target.host, port: target.port)
            .hop(to: context.eventLoop)
            .whenComplete { [self] result in
                switch result {
                case .success(let ch):
                    upstream = ch
                    do {
                        try app.pipeline.syncOperations.addHandler(appGlue)
                        // What the app sent meanwhile goes to the glue (next in the pipeline) as if read now.
                        for d in buffered { context.fireChannelRead(d) }
                        if !buffered.isEmpty { context.fireChannelReadComplete() }
                        buffered.removeAll()
                        if inputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
                        app.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                    } catch {
                        ch.close(promise: nil)
                        app.close(promise: nil)
                    }
                    if !app.isActive { ch.close(promise: nil) }
                case .failure(let error):
                    log("MQTT upstream \(target.host):\(target.port) unreachable: \(HTTPProxyHandler.describe(error)); closing the app's connection")
                    app.close(promise: nil)
                }
            }
    }

    var bufferedBytes = 0
    /// What an app may send before its upstream is connected (a CONNECT, usually).
    static let maxBuffered = 1 << 20

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bufferedBytes += unwrapInboundIn(data).readableBytes
        guard bufferedBytes <= Self.maxBuffered else {
            log("MQTT connection from \(context.channel.remoteAddress?.description ?? "?") closed: over 1 MiB before the upstream answered")
            context.close(promise: nil)
            return
        }
        buffered.append(data)  // until the upstream is connected
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { inputClosed = true }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        upstream?.close(promise: nil)
        context.fireChannelInactive()
    }
}

// Used only on the app channel's event loop (the upstream is bootstrapped on the same loop).
extension MQTTRelayHandler: @unchecked Sendable {}

import NIOCore
import NIOPosix
import PilotTraceRelay

/// A one-connection TCP relay on loopback between libmosquitto and the target broker, so the replay sees the MQTT
/// bytes exactly as the target does (libmosquitto offers no hook on its socket). The upstream side carries the
/// ``RecordingHandler``: what is recorded is the connection the target saw.
final class MQTTRelay: @unchecked Sendable {
    let listener: Channel
    let upstreamClosed: EventLoopPromise<Void>
    /// The port libmosquitto connects to.
    var port: Int { listener.localAddress?.port ?? 0 }

    init(group: EventLoopGroup, targetHost: String, targetPort: Int, recorder: (any TrafficRecording)?) throws {
        let loop = group.next()
        let upstreamClosed = loop.makePromise(of: Void.self)
        self.upstreamClosed = upstreamClosed
        listener = try ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { inbound in
                let (a, b) = GlueHandler.pair()
                // What the client sends before `b` is in the upstream's pipeline, the glue keeps for it.
                do { try inbound.pipeline.syncOperations.addHandler(a) } catch { return inbound.eventLoop.makeFailedFuture(error) }
                return ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .connectTimeout(.seconds(5))
                    .channelInitializer { upstream in
                        upstream.eventLoop.makeCompletedFuture {
                            if let recorder { try upstream.pipeline.syncOperations.addHandler(RecordingHandler(recorder: recorder, side: .initiated)) }
                            try upstream.pipeline.syncOperations.addHandler(b)
                        }
                    }
                    .connect(host: targetHost, port: targetPort)
                    .flatMap { upstream in
                        upstream.closeFuture.whenComplete { _ in upstreamClosed.succeed(()) }
                        return inbound.eventLoop.makeSucceededVoidFuture()
                    }
                    .flatMapError { error in
                        upstreamClosed.succeed(())
                        return inbound.close()
                    }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    /// Stops listening, and waits (up to `timeout` seconds) for the relayed connection to end.
    func finish(timeout: Double) {
        _ = try? listener.close().wait()
        let loop = listener.eventLoop
        let deadline = loop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) { self.upstreamClosed.succeed(()) }
        try? upstreamClosed.futureResult.wait()
        deadline.cancel()
    }
}

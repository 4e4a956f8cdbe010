import NIOCore
import NIOEmbedded
import PilotTraceWire
import Testing

@testable import PilotTraceRelay

#if canImport(Glibc)
import Glibc
#endif

/// Writes down what a ``RecordingHandler`` reports, one line per call.
final class Reports: TrafficRecording, @unchecked Sendable {
    var lines: [String] = []

    func open(client: Endpoint, server: Endpoint) -> Int {
        lines.append("open \(client) → \(server)")
        return 1
    }
    func data(_ id: Int, _ bytes: [UInt8], from direction: Direction) { lines.append("data \(String(decoding: bytes, as: UTF8.self)) \(direction)") }
    func fin(_ id: Int, from direction: Direction) { lines.append("fin \(direction)") }
    func rst(_ id: Int, from direction: Direction) { lines.append("rst \(direction)") }
    func close(_ id: Int, serverFirst: Bool) { lines.append("close serverFirst=\(serverFirst)") }
}

/// The handler on an accepted connection (the proxy's app side) and on an initiated one (the replay's), fed through
/// an `EmbeddedChannel` whose local address is 10.0.0.1:8080 and peer 10.0.0.2:50123.
struct RecordingHandlerTests {
    func channel(_ side: RecordingHandler.Side, closeOnInputClosed: Bool = false) throws -> (EmbeddedChannel, Reports) {
        let reports = Reports()
        let channel = EmbeddedChannel()
        channel.localAddress = try SocketAddress(ipAddress: "10.0.0.1", port: 8080)
        channel.remoteAddress = try SocketAddress(ipAddress: "10.0.0.2", port: 50_123)
        try channel.pipeline.syncOperations.addHandler(RecordingHandler(recorder: reports, side: side, closeOnInputClosed: closeOnInputClosed))
        try channel.connect(to: channel.remoteAddress!).wait()
        return (channel, reports)
    }

    @Test func acceptedThePeerIsTheClient() throws {
        let (channel, reports) = try channel(.accepted)
        try channel.writeInbound(ByteBuffer(string: "up"))
        try channel.writeOutbound(ByteBuffer(string: "down"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        try channel.close().wait()
        #expect(
            reports.lines == [
                "open 10.0.0.2:50123 → 10.0.0.1:8080", "data up toServer", "data down toClient", "fin toServer", "fin toClient",
                "close serverFirst=false",
            ])
    }

    /// Gone with both halves open: accepted, the server (this end) closes first; initiated, the client (this end).
    @Test func goneWithBothHalvesOpenThisEndClosesFirst() throws {
        for (side, serverFirst) in [(RecordingHandler.Side.accepted, true), (.initiated, false)] {
            let (channel, reports) = try channel(side)
            channel.pipeline.fireChannelInactive()
            #expect(reports.lines.last == "close serverFirst=\(serverFirst)")
            _ = try? channel.finish()
        }
    }

    @Test func initiatedThisEndIsTheClient() throws {
        let (channel, reports) = try channel(.initiated)
        try channel.writeOutbound(ByteBuffer(string: "up"))
        try channel.writeInbound(ByteBuffer(string: "down"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(channel.isActive)  // closeOnInputClosed is off
        channel.pipeline.fireChannelInactive()
        #expect(
            reports.lines == [
                "open 10.0.0.1:8080 → 10.0.0.2:50123", "data up toServer", "data down toClient", "fin toClient", "close serverFirst=true",
            ])
        _ = try? channel.finish()
    }

    @Test func initiatedClosesOnThePeersFINWhenAsked() throws {
        let (channel, reports) = try channel(.initiated, closeOnInputClosed: true)
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(!channel.isActive)
        // Its own close goes below the handler: the server's FIN came first.
        #expect(reports.lines == ["open 10.0.0.1:8080 → 10.0.0.2:50123", "fin toClient", "close serverFirst=true"])
    }

    @Test func aResetIsThePeersAndEndsTheFINs() throws {
        for (side, direction) in [(RecordingHandler.Side.accepted, "toServer"), (.initiated, "toClient")] {
            let (channel, reports) = try channel(side)
            channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read"))
            #expect(throws: IOError.self) { try channel.throwIfErrorCaught() }
            channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            try channel.close().wait()
            #expect(reports.lines.dropFirst() == ["rst \(direction)", "close serverFirst=\(side == .accepted)"])
        }
    }
}

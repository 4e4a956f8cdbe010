import PilotTraceTestSupport
import Testing

@testable import PilotTraceWire

/// Frame numbers travel with the bytes: each `.data` event names the frame that carried its bytes, out-of-order
/// bytes keep theirs while they wait, and the pipeline numbers frames from 1 in each capture file, as Wireshark does.
@Suite struct CaptureFrameTests {
    func dataFrames(_ h: borrowing ReassemblyHarness, _ dir: Direction) -> [(bytes: [UInt8], frame: CaptureFrame)] {
        h.events.compactMap { e in
            if case let .data(_, d, bytes, _, frame) = e, d == dir { return (bytes, frame) }
            return nil
        }
    }

    @Test func inOrderSegmentsCarryTheirFrames() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("abc".utf8), frame: CaptureFrame(number: 4))
        h.send(.toClient, seq: 5001, Array("xy".utf8), frame: CaptureFrame(number: 5))
        h.send(.toServer, seq: 104, Array("def".utf8), frame: CaptureFrame(number: 6))
        #expect(dataFrames(h, .toServer).map(\.frame) == [CaptureFrame(number: 4), CaptureFrame(number: 6)])
        #expect(dataFrames(h, .toClient).map(\.frame) == [CaptureFrame(number: 5)])
    }

    @Test func outOfOrderBytesKeepTheFrameThatCarriedThem() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("aaaa".utf8), frame: CaptureFrame(number: 10))
        h.send(.toServer, seq: 109, Array("cccc".utf8), frame: CaptureFrame(number: 11))  // ahead of a hole
        h.send(.toServer, seq: 113, Array("dd".utf8), frame: CaptureFrame(number: 12))
        h.send(.toServer, seq: 105, Array("bbbb".utf8), frame: CaptureFrame(number: 13))  // fills it
        let data = dataFrames(h, .toServer)
        #expect(data.map { String(decoding: $0.bytes, as: UTF8.self) } == ["aaaa", "bbbb", "cccc", "dd"])
        #expect(data.map(\.frame.number) == [10, 13, 11, 12])
    }

    @Test func aRetransmissionOverlappingNewBytesGivesTheNewBytesItsFrame() {
        var h = ReassemblyHarness()
        h.handshake()
        h.send(.toServer, seq: 101, Array("abcd".utf8), frame: CaptureFrame(number: 4))
        h.send(.toServer, seq: 103, Array("cdef".utf8), frame: CaptureFrame(number: 5))  // "cd" again, then "ef"
        let data = dataFrames(h, .toServer)
        #expect(data.map { String(decoding: $0.bytes, as: UTF8.self) } == ["abcd", "ef"])
        #expect(data.map(\.frame.number) == [4, 5])
    }

    /// One raw-IPv4 TCP frame from 10.0.0.1:50000 to 10.0.0.2:1883.
    static func frame(seq: UInt32, flags: TCPFlags, _ payload: [UInt8] = []) -> [UInt8] {
        Frame.ipv4(payload: Frame.tcp(src: 50000, dst: 1883, seq: seq, flags: flags, payload: payload))
    }

    @Test func thePipelineNumbersFramesFromOneInEachFile() {
        var pipeline = TCPPipeline()
        var events: [StreamEvent] = []
        func feed(_ bytes: [UInt8], at t: Int64) {
            bytes.withUnsafeBytes { raw in
                pipeline.process(
                    CaptureRecord(
                        timestamp: Timestamp(seconds: t, nanoseconds: 0), linkType: .raw, data: raw,
                        originalLength: bytes.count), into: &events)
            }
        }
        pipeline.beginFile(0)
        feed(Self.frame(seq: 100, flags: .syn), at: 1)
        feed(Self.frame(seq: 101, flags: .ack, Array("one".utf8)), at: 2)
        #expect(pipeline.frame == CaptureFrame(file: 0, number: 2))
        pipeline.beginFile(1)  // a rotated capture's next piece
        feed(Self.frame(seq: 104, flags: .ack, Array("two".utf8)), at: 3)
        feed(Self.frame(seq: 107, flags: .ack, Array("three".utf8)), at: 4)
        let frames = events.compactMap { e -> CaptureFrame? in if case let .data(_, _, _, _, f) = e { f } else { nil } }
        #expect(frames == [CaptureFrame(file: 0, number: 2), CaptureFrame(file: 1, number: 1), CaptureFrame(file: 1, number: 2)])
        #expect(pipeline.counters.frames == 4)
    }

    @Test func spansRunFromARequestToItsResponse() {
        let request = FrameSpan(first: CaptureFrame(number: 4), last: CaptureFrame(number: 5))
        let response = FrameSpan(first: CaptureFrame(number: 7), last: CaptureFrame(number: 9))
        #expect(request.through(response) == FrameSpan(first: CaptureFrame(number: 4), last: CaptureFrame(number: 9)))
        #expect(FrameSpan.unknown.through(response) == response)
        #expect(request.through(.unknown) == request)
    }
}

import PilotTraceWire

/// Frames run through Wire's ``TCPPipeline`` as the analysis of a capture of them would run them: what each
/// connection carried in each direction, the gaps, how each connection ended. For the tests of whatever makes frames
/// (the TCP frame synthesiser, the traffic recorder).
public struct Reassembled {
    public var events: [StreamEvent] = []
    public var counters: PacketCounters
    /// Each connection's bytes in each direction, in order.
    public var bytes: [ConnectionID: [Direction: [UInt8]]] = [:]
    /// Gaps the reassembler reported (a synthesised stream has none).
    public var gaps = 0
    /// Each connection's summary, in the order the connections ended.
    public var closed: [ConnectionSummary] = []

    /// - Parameters:
    ///   - frames: the frames and their times, in time order.
    ///   - linkType: the link type of every frame.
    public init(_ frames: [(time: Timestamp, bytes: [UInt8])], linkType: LinkType) {
        var pipeline = TCPPipeline()
        var events: [StreamEvent] = []
        for f in frames {
            f.bytes.withUnsafeBytes { raw in
                pipeline.process(CaptureRecord(timestamp: f.time, linkType: linkType, data: raw, originalLength: raw.count), into: &events)
            }
        }
        pipeline.finish(into: &events)
        self.events = events
        counters = pipeline.counters
        for e in events {
            switch e {
            case .data(let id, let d, let b, _, _): bytes[id, default: [:]][d, default: []] += b
            case .gap: gaps += 1
            case .closed(let s): closed.append(s)
            default: break
            }
        }
    }

    /// Frames 1 µs apart.
    public init(_ frames: [[UInt8]], linkType: LinkType) {
        self.init(frames.enumerated().map { (Timestamp(nanoseconds: Int64($0.offset) * 1000), $0.element) }, linkType: linkType)
    }
}

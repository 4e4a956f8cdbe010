/// Counters of what the packet layer saw.
public struct PacketCounters: Hashable, Sendable, Codable {
    public var frames = 0
    public var frameBytes = 0
    public var tcpSegments = 0
    public var otherIP = 0
    public var notIP = 0
    public var fragmentsHeld = 0
    public var unsupportedLinkType = 0
    public var malformed = 0
    /// Frames whose captured length is below their wire length (cut by the snapshot length).
    public var snaplenCut = 0
    public init() {}
}

/// Frames in, stream events out: the packet decoder and the TCP reassembler, chained.
///
/// This is the pure pipeline offline analysis, live capture and benchmarks share.
public struct TCPPipeline: ~Copyable {
    public var decoder = PacketDecoder()
    public var reassembler: TCPReassembler
    public private(set) var counters = PacketCounters()
    /// The first few malformed frames, for diagnostics: (frame number, counted over all files, reason).
    public private(set) var malformedSamples: [(frame: Int, problem: MalformedPacket)] = []
    /// The last frame processed, numbered as Wireshark does: from 1 in each capture file (see ``beginFile(_:)``).
    public private(set) var frame = CaptureFrame.unknown

    public init(configuration: TCPReassembler.Configuration = .init()) {
        reassembler = TCPReassembler(configuration: configuration)
    }

    /// The next frames come from capture file `ordinal` (its position in the run, from 0): they are numbered from 1
    /// again, as Wireshark numbers each file's frames. A run that never calls this (a live capture) is file 0.
    public mutating func beginFile(_ ordinal: Int) {
        frame = CaptureFrame(file: ordinal, number: 0)
    }

    /// Decodes one frame and appends the stream events it causes; its bytes carry its ``frame`` number.
    public mutating func process(_ record: CaptureRecord, into events: inout [StreamEvent]) {
        counters.frames += 1
        frame.number &+= 1
        counters.frameBytes += record.originalLength
        if record.data.count < record.originalLength { counters.snaplenCut += 1 }
        let ordinal = counters.frames
        let captured = frame
        // Take the decoder out of `self` so the closure may mutate the rest of `self` (no copy: moved back below).
        var decoder = self.decoder
        self.decoder = PacketDecoder.empty
        defer { self.decoder = decoder }
        decoder.decode(record) { outcome in
            switch outcome {
            case .tcp(let segment):
                counters.tcpSegments += 1
                reassembler.process(segment, at: record.timestamp, frame: captured, frameLength: record.originalLength, into: &events)
            case .otherIP: counters.otherIP += 1
            case .notIP: counters.notIP += 1
            case .fragmentHeld: counters.fragmentsHeld += 1
            case .unsupportedLinkType: counters.unsupportedLinkType += 1
            case .malformed(let problem):
                counters.malformed += 1
                if malformedSamples.count < 20 { malformedSamples.append((ordinal, problem)) }
            }
        }
        reassembler.advance(to: record.timestamp, into: &events)
    }

    /// The capture ended: releases every connection.
    public mutating func finish(into events: inout [StreamEvent]) {
        reassembler.finish(into: &events)
    }
}

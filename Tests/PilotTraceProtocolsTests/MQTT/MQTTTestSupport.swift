import PilotTraceTestSupport
import Testing

@testable import PilotTraceProtocols

/// The shared seeded generator (PilotTraceTestSupport), under the name these tests use.
typealias MQTTTestRNG = SplitMix64

/// Everything a decode produced: the records and the error that stopped it, if any.
struct MQTTOutcome: Equatable {
    var records: [MQTTPacketRecord] = []
    var error: MQTTError?
    var packetsDecoded = 0
    var desyncBytes = 0
    var consumed = 0
}

enum MQTTHarness {
    /// Feeds the chunks in order, draining after each.
    static func decode(_ chunks: [[UInt8]], _ configuration: MQTTStreamDecoder.Configuration) -> MQTTOutcome {
        var decoder = MQTTStreamDecoder(configuration: configuration)
        var out = MQTTOutcome()
        for chunk in chunks {
            decoder.feed(chunk)
            var guardCount = 0
            while true {
                guardCount += 1
                if guardCount > chunk.count + 2 {
                    Issue.record("next() did not stop")
                    break
                }
                do {
                    guard let r = try decoder.next() else { break }
                    out.records.append(r)
                } catch {
                    out.error = error
                    break
                }
            }
            if decoder.bufferedByteCount > decoder.maximumBufferedBytes {
                Issue.record("buffered \(decoder.bufferedByteCount) > \(decoder.maximumBufferedBytes)")
            }
        }
        out.packetsDecoded = decoder.packetsDecoded
        out.desyncBytes = decoder.desyncBytes
        out.consumed = decoder.offset
        return out
    }

    static func randomSplit(_ bytes: [UInt8], _ rng: inout MQTTTestRNG, maxChunk: Int) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let n = min(bytes.count - i, rng.int(0...maxChunk))
            chunks.append(Array(bytes[i..<(i + n)]))  // empty chunks are allowed on purpose
            i += n
        }
        return chunks
    }

    /// Decodes byte by byte, all at once and in many seeded random splits; expects identical outcomes and that
    /// each record re-parses identically through the two-stage API. Returns the all-at-once outcome.
    static func decodeAllWays(
        _ bytes: [UInt8], _ configuration: MQTTStreamDecoder.Configuration = .init(), rounds: Int = 40,
        seed: UInt64 = 0x5EED, sourceLocation: SourceLocation = #_sourceLocation
    ) -> MQTTOutcome {
        let whole = decode([bytes], configuration)
        let single = decode(bytes.map { [$0] }, configuration)
        #expect(single == whole, "byte-by-byte differs from all-at-once", sourceLocation: sourceLocation)
        var rng = MQTTTestRNG(seed: seed)
        for round in 0..<rounds {
            let maxChunk = [1, 2, 3, 7, 16, 64, 1000][round % 7]
            let split = decode(randomSplit(bytes, &rng, maxChunk: maxChunk), configuration)
            if split != whole {
                Issue.record("random split round \(round) differs", sourceLocation: sourceLocation)
                break
            }
        }
        // Accounting: every fed byte is consumed, still buffered, or dropped after a desync.
        #expect(whole.consumed + whole.desyncBytes <= bytes.count, sourceLocation: sourceLocation)
        // Records are contiguous from offset 0.
        var expected = 0
        for r in whole.records {
            #expect(r.offset == expected, sourceLocation: sourceLocation)
            expected = r.offset + r.length
        }
        // Stage 1 + stage 2 give the same packet as the stream decoder.
        var aliases = MQTTTopicAliases(maxBytes: configuration.maxTopicAliasBytes)
        for r in whole.records {
            do {
                let frame = try #require(
                    try MQTTFrame.read(
                        bytes, at: r.offset, streamOffset: r.offset,
                        maxRemainingLength: configuration.maxRemainingLength),
                    sourceLocation: sourceLocation)
                #expect(frame.header.frameLength == r.length, sourceLocation: sourceLocation)
                let packet = try MQTTPacket.parse(
                    frame, version: r.version, maxStoredPayload: configuration.maxStoredPayload, topicAliases: &aliases)
                #expect(packet == r.packet, sourceLocation: sourceLocation)
            } catch {
                Issue.record("two-stage parse failed: \(error)", sourceLocation: sourceLocation)
            }
        }
        return whole
    }

    /// Decodes one packet (all ways) and returns it.
    static func single(
        _ bytes: [UInt8], version: MQTTVersion = .v3_1_1, sourceLocation: SourceLocation = #_sourceLocation
    ) -> MQTTPacket? {
        let out = decodeAllWays(bytes, .init(defaultVersion: version), sourceLocation: sourceLocation)
        #expect(out.error == nil, "unexpected \(String(describing: out.error))", sourceLocation: sourceLocation)
        #expect(out.records.count == 1, sourceLocation: sourceLocation)
        #expect(out.records.first?.length == bytes.count, sourceLocation: sourceLocation)
        return out.records.first?.packet
    }

    /// Decodes a PINGREQ followed by `bad` (all ways) and expects exactly one error with this code and offset.
    @discardableResult
    static func expectError(
        _ bad: [UInt8], version: MQTTVersion = .v3_1_1, _ code: MQTTError.Code, at offsetInPacket: Int,
        configuration: MQTTStreamDecoder.Configuration? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) -> MQTTError? {
        var config = configuration ?? .init()
        config.defaultVersion = version
        let bytes = MQTTWire.pingReq + bad + MQTTWire.pingReq
        let out = decodeAllWays(bytes, config, sourceLocation: sourceLocation)
        #expect(out.records.map(\.packet) == [.pingReq], sourceLocation: sourceLocation)
        #expect(out.error?.code == code, "got \(String(describing: out.error))", sourceLocation: sourceLocation)
        #expect(
            out.error?.offset == 2 + offsetInPacket, "got \(String(describing: out.error))",
            sourceLocation: sourceLocation)
        #expect(out.error?.packetOffset == 2, sourceLocation: sourceLocation)
        // Desynchronised: the trailing PINGREQ is not decoded; everything after the first packet is dropped.
        #expect(out.consumed + out.desyncBytes == bytes.count, sourceLocation: sourceLocation)
        return out.error
    }
}

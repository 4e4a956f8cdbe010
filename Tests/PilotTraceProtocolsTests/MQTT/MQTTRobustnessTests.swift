import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Seeded random and mutated streams: the decoders must not crash, must stop (bounded iterations), must keep
/// their buffers within the configured bound and must account for every byte fed.
@Suite struct MQTTRobustnessTests {
    typealias W = MQTTWire

    /// Valid packets of every type and version, used as mutation seeds.
    static let corpus: [[UInt8]] = {
        var c: [[UInt8]] = [
            W.connect311(), W.connect5(properties: W.props(W.sessionExpiry(5), W.userProperty("a", "b"))),
            W.packet(0x10, W.str("MQIsdp") + [3, 0xC2] + W.u16(10) + W.str("c") + W.str("u") + W.bin([1, 2])),
            W.packet(0x10, W.str("MQTT") + [4, 0x2E] + W.u16(10) + W.str("c") + W.str("w/t") + W.bin([9, 9])),
            W.hex("20 02 01 00"), W.packet(0x20, [0, 0x86] + W.props(W.reasonString("no"))),
            W.publish("a/b", [1, 2, 3]), W.publish("a/b", Array(repeating: 0xAA, count: 150), qos: 1, id: 3),
            W.publish("x", [4], qos: 2, id: 9, dup: true, retain: true),
            W.publish("t", [5], v5props: W.props(W.topicAlias(1))), W.publish("", [6], v5props: W.props(W.topicAlias(1))),
            W.hex("40 02 0001"), W.hex("50 02 0002"), W.hex("62 02 0003"), W.hex("70 02 0004"), W.hex("40 03 0001 10"),
            W.packet(0x50, W.u16(2) + [0x80] + W.props(W.reasonString("q"))),
            W.hex("82 0e 0001 0003 612f23 01 0003 622f2b 02"), W.hex("90 04 0001 01 80"),
            W.packet(0x82, W.u16(10) + W.props([0x0B, 0x01]) + W.str("a/#") + [0x2D]),
            W.hex("a2 07 0002 0003 612f23"), W.hex("b0 02 0002"), W.packet(0xB0, W.u16(11) + W.props() + [0x00, 0x11]),
            W.pingReq, W.pingResp, W.hex("e0 00"), W.hex("e0 01 8e"),
            W.packet(0xF0, [0x18] + W.props([0x15] + W.str("M"), [0x16] + W.bin([1]))),
        ]
        c.append(W.publish("big", Array(repeating: 0x55, count: 300), qos: 1, id: 4))
        return c
    }()

    static func mutate(_ input: [UInt8], _ rng: inout MQTTTestRNG) -> [UInt8] {
        var b = input
        for _ in 0..<rng.int(0...4) {
            if b.isEmpty { b = [rng.byte()]; continue }
            let i = rng.int(0...(b.count - 1))
            switch rng.int(0...7) {
            case 0: b[i] ^= UInt8.random(in: 1...255, using: &rng)  // flip bits
            case 1: b[i] = rng.byte()  // replace a byte
            case 2: b.removeSubrange(i...)  // truncate
            case 3: b.insert(contentsOf: (0..<rng.int(1...8)).map { _ in rng.byte() }, at: i)
            case 4:  // extend a length field
                b[i] = [0xFF, 0x7F, 0x80][rng.int(0...2)]
                if i + 1 < b.count { b[i + 1] = 0xFF }
            case 5: b.removeSubrange(i..<min(b.count, i + rng.int(1...6)))
            case 6: b.insert(contentsOf: b[i..<min(b.count, i + rng.int(1...20))], at: i)  // duplicate
            default: b[i] |= 0x80  // continuation bit
            }
        }
        return b
    }

    static func randomStream(_ rng: inout MQTTTestRNG) -> [UInt8] {
        if rng.int(0...9) == 0 { return (0..<rng.int(0...300)).map { _ in rng.byte() } }
        var s: [UInt8] = []
        for _ in 0..<rng.int(1...10) { s += corpus[rng.int(0...(corpus.count - 1))] }
        return mutate(s, &rng)
    }

    static func randomConfiguration(_ rng: inout MQTTTestRNG) -> MQTTStreamDecoder.Configuration {
        MQTTStreamDecoder.Configuration(
            defaultVersion: MQTTVersion.allCases[rng.int(0...2)], maxStoredPayload: rng.int(0...64),
            maxRemainingLength: rng.int(16...4096), maxTopicAliasBytes: rng.int(0...64))
    }

    @Test func corpusIsValid() {
        // Every seed decodes on its own under some version, so mutations start from real packets.
        for packet in Self.corpus {
            let ok = MQTTVersion.allCases.contains { v in
                let out = MQTTHarness.decode([packet], .init(defaultVersion: v))
                return out.error == nil && out.records.count == 1
            }
            #expect(ok, "\(packet)")
        }
    }

    @Test func streamDecoderSurvivesMutatedStreams() {
        var rng = MQTTTestRNG(seed: 0xD15C0)
        var decodedPackets = 0, errors = 0
        for _ in 0..<4000 {
            let stream = Self.randomStream(&rng)
            var d = MQTTStreamDecoder(configuration: Self.randomConfiguration(&rng))
            var fed = 0, gaps = false
            for chunk in MQTTHarness.randomSplit(stream, &rng, maxChunk: rng.int(1...64)) {
                if rng.int(0...199) == 0 {
                    d.gap(length: rng.int(1...10))
                    gaps = true
                }
                d.feed(chunk)
                fed += chunk.count
                var iterations = 0
                while iterations <= chunk.count + 2 {
                    iterations += 1
                    do {
                        guard let r = try d.next() else { break }
                        #expect(r.length >= 2 && r.offset + r.length <= fed)
                    } catch {
                        #expect(error.offset >= error.packetOffset && error.offset <= fed + 4)
                        break
                    }
                }
                #expect(iterations <= chunk.count + 2, "next() kept returning")
                #expect(d.bufferedByteCount <= d.maximumBufferedBytes)
                if !gaps { #expect(d.offset + d.bufferedByteCount + d.desyncBytes == fed) }
            }
            #expect(d.errorCount <= 1)
            decodedPackets += d.packetsDecoded
            errors += d.errorCount
        }
        // The corpus yields a mix of good packets and errors.
        #expect(decodedPackets > 4000 && errors > 1000)
    }

    @Test func mutatedStreamsDecodeIdenticallyWhateverTheSplit() {
        var rng = MQTTTestRNG(seed: 0xC0FFEE)
        for i in 0..<400 {
            let stream = Self.randomStream(&rng)
            _ = MQTTHarness.decodeAllWays(stream, Self.randomConfiguration(&rng), rounds: 6, seed: UInt64(i))
        }
    }

    @Test func connectionDecoderSurvivesRandomTraffic() {
        var rng = MQTTTestRNG(seed: 0xBEEF)
        for _ in 0..<1000 {
            var c = MQTTConnectionDecoder(configuration: Self.randomConfiguration(&rng))
            let up = Self.randomStream(&rng), down = Self.randomStream(&rng)
            var i = 0, j = 0, events = 0
            while i < up.count || j < down.count {
                if i < up.count && (j >= down.count || rng.int(0...1) == 0) {
                    let n = rng.int(1...40)
                    c.feed(direction: .toServer, bytes: Array(up[i..<min(up.count, i + n)]))
                    i += n
                } else {
                    let n = rng.int(1...40)
                    c.feed(direction: .toClient, bytes: Array(down[j..<min(down.count, j + n)]))
                    j += n
                }
                if rng.int(0...99) == 0 { c.gap(direction: rng.int(0...1) == 0 ? .toServer : .toClient, length: 3) }
                events += c.drain(direction: .toServer).count + c.drain(direction: .toClient).count
                for dir in Direction.allCases {
                    #expect(c.decoder(dir).bufferedByteCount <= c.decoder(dir).maximumBufferedBytes)
                }
            }
            #expect(events <= (up.count + down.count) / 2 + 2)
        }
    }
}

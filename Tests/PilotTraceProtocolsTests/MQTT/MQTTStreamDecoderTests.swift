import PilotTraceTestSupport
import Testing

@testable import PilotTraceProtocols

@Suite struct MQTTStreamDecoderTests {
    typealias W = MQTTWire

    @Test func severalPacketsInOneChunkAndOnePacketOverManyChunks() throws {
        let big = W.publish("a/b", (0..<3000).map { UInt8($0 & 0xFF) }, qos: 1, id: 77)
        let stream = W.connect311() + W.pingReq + big + W.pingResp + W.publish("x", [1, 2, 3])
        let out = MQTTHarness.decodeAllWays(stream, rounds: 100)
        #expect(out.error == nil)
        #expect(out.records.map(\.packet.type) == [.connect, .pingReq, .publish, .pingResp, .publish])
        #expect(out.records.map(\.length) == [W.connect311().count, 2, big.count, 2, 8])
        #expect(out.consumed == stream.count)

        // One packet fed over 1 000+ chunks: nothing until the last byte.
        var d = MQTTStreamDecoder()
        for b in big.dropLast() {
            d.feed([b])
            #expect(try d.next() == nil)
        }
        d.feed([big.last!])
        let record = try #require(try d.next())
        #expect(record.offset == 0 && record.length == big.count && record.packet.packetIdentifier == 77)
        #expect(try d.next() == nil)
    }

    @Test func largePublishIsStreamedCappedAndTheNextPacketDecodes() throws {
        let payload = (0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let publish = W.publish("thing/product/SN/osd", payload, qos: 1, id: 9)
        let stream = publish + W.pingReq
        let config = MQTTStreamDecoder.Configuration(maxStoredPayload: 1 << 20)
        for chunkSize in [65_536, 1_000_003, stream.count] {
            var d = MQTTStreamDecoder(configuration: config)
            var records: [MQTTPacketRecord] = []
            var maxBuffered = 0
            var i = 0
            while i < stream.count {
                let n = min(chunkSize, stream.count - i)
                d.feed(Array(stream[i..<(i + n)]))
                i += n
                while let r = try d.next() { records.append(r) }
                maxBuffered = max(maxBuffered, d.bufferedByteCount)
            }
            try #require(records.count == 2)
            guard case .publish(let p) = records[0].packet else { Issue.record("not PUBLISH"); return }
            #expect(p.payload.length == 5 << 20)
            #expect(p.payload.stored.count == 1 << 20)
            #expect(p.payload.truncated)
            #expect(p.payload.stored.elementsEqual(payload.prefix(1 << 20)))  // a Bool: no megabyte dump on failure
            #expect(p.topic == "thing/product/SN/osd" && p.packetIdentifier == 9)
            #expect(records[0].length == publish.count)
            #expect(records[1].packet == .pingReq && records[1].offset == publish.count)
            // The payload is consumed as it arrives: at most a few header bytes wait between chunks.
            #expect(maxBuffered < 64)
            #expect(records[0].summary().contains("payload=5242880B(kept 1048576B)"))
        }
    }

    @Test func payloadExactlyAtTheCapIsNotTruncatedAndCapZeroKeepsNothing() throws {
        let publish = W.publish("t", [1, 2, 3, 4])
        let atCap = MQTTHarness.decodeAllWays(publish, .init(maxStoredPayload: 4))
        guard case .publish(let p)? = atCap.records.first?.packet else { Issue.record("no PUBLISH"); return }
        #expect(!p.payload.truncated && p.payload.stored == [1, 2, 3, 4])
        let zero = MQTTHarness.decodeAllWays(publish, .init(maxStoredPayload: 0))
        guard case .publish(let z)? = zero.records.first?.packet else { Issue.record("no PUBLISH"); return }
        #expect(z.payload == MQTTPayload(stored: [], length: 4) && z.payload.truncated)
        // The password is capped the same way.
        let connect = W.packet(0x10, W.str("MQTT") + [4, 0xC2] + W.u16(0) + W.str("c") + W.str("u") + W.bin([1, 2, 3]))
        let capped = MQTTHarness.decodeAllWays(connect, .init(maxStoredPayload: 2))
        guard case .connect(let c)? = capped.records.first?.packet else { Issue.record("no CONNECT"); return }
        #expect(c.password == MQTTPayload(stored: [1, 2], length: 3))
    }

    @Test func gapDesynchronisesTheDirection() throws {
        var d = MQTTStreamDecoder()
        d.feed(W.pingReq + [0x30, 0x05, 0x00])  // a PINGREQ, then 3 bytes of a PUBLISH
        #expect(try d.next()?.packet == .pingReq)
        #expect(try d.next() == nil)
        d.gap(length: 100)
        #expect(d.isDesynchronised)
        #expect(d.gapBytes == 100)
        #expect(d.desyncBytes == 3)  // the partial PUBLISH
        d.feed(W.pingReq)
        #expect(try d.next() == nil)  // no guessing where packets resume
        #expect(d.desyncBytes == 5)
        #expect(d.bufferedByteCount == 0)
        #expect(d.packetsDecoded == 1 && d.errorCount == 0)
        d.gap(length: 0)
        #expect(d.gapBytes == 100)
    }

    @Test func gapInsideAStreamingPublishDropsIt() throws {
        var d = MQTTStreamDecoder()
        let publish = W.publish("t", [UInt8](repeating: 1, count: 500))
        d.feed(Array(publish.prefix(100)))
        #expect(try d.next() == nil)
        #expect(d.bufferedByteCount == 0)  // payload bytes were consumed, not held
        d.gap(length: 50)
        d.feed(Array(publish.suffix(350)) + W.pingReq)
        #expect(try d.next() == nil)
        #expect(d.packetsDecoded == 0 && d.desyncBytes == 352)
    }

    @Test func errorDesynchronisesAndIsCountedOnce() throws {
        var d = MQTTStreamDecoder()
        d.feed(W.pingReq + W.hex("00 00") + W.pingReq)
        #expect(try d.next()?.packet == .pingReq)
        #expect(throws: MQTTError.self) { _ = try d.next() }
        #expect(try d.next() == nil)
        d.feed(W.pingResp)
        #expect(try d.next() == nil)
        #expect(d.isDesynchronised && d.errorCount == 1 && d.lastError?.code == .reservedPacketType)
        #expect(d.lastError?.offset == 2)
        #expect(d.desyncBytes == 6 && d.offset == 2 && d.packetsDecoded == 1)
    }

    @Test func bufferStaysWithinTheBoundForLargeNonPublishPackets() throws {
        let config = MQTTStreamDecoder.Configuration(maxRemainingLength: 1000)
        var d = MQTTStreamDecoder(configuration: config)
        #expect(d.maximumBufferedBytes == 1005)
        let connect = W.packet(0x10, W.str("MQTT") + [4, 0x02] + W.u16(0) + W.str(String(repeating: "c", count: 980)))
        for b in connect {
            d.feed([b])
            if let r = try d.next() { #expect(r.packet.type == .connect) }
            #expect(d.bufferedByteCount <= d.maximumBufferedBytes)
        }
        #expect(d.packetsDecoded == 1 && d.bufferedByteCount == 0)
        // A longer one is refused as soon as its fixed header is read, not buffered.
        d.feed([0x10, 0xE9, 0x07])  // Remaining Length 1001
        #expect(throws: MQTTError.self) { _ = try d.next() }
        #expect(d.bufferedByteCount == 0)
    }

    @Test func compactionKeepsOffsetsRight() throws {
        var d = MQTTStreamDecoder()
        var expected = 0
        for i in 0..<2000 {
            let p = W.publish("t/\(i)", [UInt8(i & 0xFF)])
            d.feed(Array(p.prefix(3)))
            #expect(try d.next() == nil)
            d.feed(Array(p.dropFirst(3)))
            let r = try #require(try d.next())
            #expect(r.offset == expected)
            expected += p.count
            #expect(d.offset == expected && d.bufferedByteCount == 0)
        }
    }

    @Test func versionIsAssumedUntilAConnect() throws {
        var d = MQTTStreamDecoder(configuration: .init(defaultVersion: .v5))
        d.feed(W.hex("40 03 0001 10") + W.connect311() + W.hex("40 02 0002"))
        let first = try #require(try d.next())
        #expect(first.version == .v5 && first.versionAssumed)
        #expect(
            first.packet
                == .pubAck(
                    MQTTPublishResponse(
                        packetIdentifier: 1, reasonCode: .v5(0x10, in: .pubAck),
                        properties: .init())))
        let connect = try #require(try d.next())
        #expect(connect.version == .v3_1_1 && !connect.versionAssumed)
        let after = try #require(try d.next())
        #expect(after.version == .v3_1_1 && !after.versionAssumed)
        #expect(after.packet == .pubAck(MQTTPublishResponse(packetIdentifier: 2, reasonCode: nil, properties: .init())))
    }

    @Test func emptyFeedsAndNextBeforeAnyBytes() throws {
        var d = MQTTStreamDecoder()
        #expect(try d.next() == nil)
        d.feed([])
        #expect(try d.next() == nil)
        #expect(d.bufferedByteCount == 0 && !d.isDesynchronised)
    }
}

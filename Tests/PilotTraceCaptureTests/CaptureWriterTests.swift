import Foundation
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceCapture

/// The live capture's writers: pcapng with the capture's end time, classic pcap, rotation by size.
struct CaptureWriterTests {
    static func frame(_ i: Int, size: Int = 200) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ i) } }

    static func records(_ path: String) throws -> (frames: [[UInt8]], times: [Timestamp], end: Timestamp?, originals: [Int]) {
        let reader = try CaptureFileReader(path: path)
        var frames: [[UInt8]] = [], times: [Timestamp] = [], originals: [Int] = []
        try reader.forEach {
            frames.append(Array($0.data))
            times.append($0.timestamp)
            originals.append($0.originalLength)
        }
        return (frames, times, reader.endTime, originals)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-writer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func pcapngKeepsFramesNanosecondsAndTheEndTime() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.pcapng").path
        let w = try RotatingCaptureWriter(path: path, linkType: .ethernet, snaplen: 65_535, interfaceName: "lo", application: "test")
        #expect(w.format == .pcapng)
        let start = Timestamp(seconds: 1_800_000_000, nanoseconds: 123_456_789)
        for i in 0..<5 {
            let f = Self.frame(i, size: 61 + i)  // odd sizes exercise the 32-bit padding
            try f.withUnsafeBytes {
                try w.write(CaptureRecord(timestamp: start.adding(seconds: Double(i)), linkType: .ethernet, data: $0, originalLength: f.count + 7))
            }
        }
        let end = start.adding(seconds: 40)
        try w.close(end: end, received: 10, dropped: 0)
        let r = try Self.records(path)
        #expect(r.frames == (0..<5).map { Self.frame($0, size: 61 + $0) })
        #expect(r.times.first == start)
        #expect(r.originals == (0..<5).map { 61 + $0 + 7 })
        #expect(r.end == end)
        // Wireshark's reader agrees: five frames, the interface name, the statistics block.
        let tshark = try #require(TestPaths.which("tshark"), "make test installs tshark (scripts/bootstrap)")
        let out = try runProcess(tshark, ["-r", path, "-T", "fields", "-e", "frame.len", "-e", "frame.cap_len"])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.split(separator: "\n").map(String.init) == (0..<5).map { "\(61 + $0 + 7)\t\(61 + $0)" })
    }

    @Test func aPcapNameWritesClassicPcap() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.pcap").path
        let w = try RotatingCaptureWriter(path: path, linkType: .ethernet, snaplen: 65_535, interfaceName: nil, application: "test")
        #expect(w.format == .pcap)
        let f = Self.frame(1)
        try f.withUnsafeBytes {
            try w.write(CaptureRecord(timestamp: Timestamp(seconds: 5, nanoseconds: 7), linkType: .ethernet, data: $0, originalLength: 300))
        }
        try w.close(end: Timestamp(seconds: 60, nanoseconds: 0))
        let r = try Self.records(path)
        #expect(r.frames == [f])
        #expect(r.originals == [300])
        #expect(r.end == nil)  // classic pcap has no place for it
    }

    @Test func rotationKeepsTheNewestFilesAndLosesNoFrameInThem() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("ring.pcapng").path
        let w = try RotatingCaptureWriter(
            path: base, linkType: .ethernet, snaplen: 65_535, interfaceName: "lo", application: "test",
            rotateBytes: 4_096, maxFiles: 3)
        for i in 0..<100 {
            let f = Self.frame(i)
            try f.withUnsafeBytes {
                try w.write(
                    CaptureRecord(
                        timestamp: Timestamp(seconds: 1_000 + Int64(i), nanoseconds: 0), linkType: .ethernet, data: $0,
                        originalLength: f.count))
            }
        }
        try w.close(end: Timestamp(seconds: 2_000, nanoseconds: 0))
        #expect(w.files.count == 3)
        #expect(w.files.map { URL(fileURLWithPath: $0).lastPathComponent } == w.files.map { URL(fileURLWithPath: $0).lastPathComponent }.sorted())
        #expect(w.files.allSatisfy { $0.hasSuffix(".pcapng") && $0.contains("ring_0") })
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == w.files.map { URL(fileURLWithPath: $0).lastPathComponent })
        // Each kept file is whole, under the size limit but for one frame, and they continue one another to the last frame.
        var frames: [[UInt8]] = []
        for f in w.files {
            let size = try FileManager.default.attributesOfItem(atPath: f)[.size] as! Int
            #expect(size <= 4_096 + 300)
            frames += try Self.records(f).frames
        }
        #expect(frames == (100 - frames.count..<100).map { Self.frame($0) })
        // The writer's account of each kept file matches the file.
        #expect(w.written.map(\.records) == (try w.files.map { try Self.records($0).frames.count }))
        #expect(w.written.last?.lastTime == Timestamp(seconds: 1_099, nanoseconds: 0))
        #expect(w.written.last?.endTime == Timestamp(seconds: 2_000, nanoseconds: 0))
        #expect(try Self.records(w.files.last!).end == Timestamp(seconds: 2_000, nanoseconds: 0))
    }
}

/// The key log a live capture writes into its pcapng file (Decryption Secrets Blocks).
struct CaptureWriterSecretsTests {
    @Test func secretsComeBeforeThePacketsNotYetFlushedAndSurviveRotation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-dsb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("live.pcapng").path
        let w = try RotatingCaptureWriter(
            path: path, linkType: .ethernet, snaplen: 65_535, interfaceName: "lo", application: "test", rotateBytes: 2000, maxFiles: 5)
        let t = Timestamp(seconds: 1_800_000_000, nanoseconds: 0)
        let first = Array("CLIENT_RANDOM \(String(repeating: "aa", count: 32)) \(String(repeating: "01", count: 48))\n".utf8)
        let second = Array("CLIENT_RANDOM \(String(repeating: "bb", count: 32)) \(String(repeating: "02", count: 48))\n".utf8)
        func packet(_ i: Int) throws {
            let f = CaptureWriterTests.frame(i, size: 301)
            try f.withUnsafeBytes {
                try w.write(CaptureRecord(timestamp: t.adding(seconds: Double(i)), linkType: .ethernet, data: $0, originalLength: f.count))
            }
        }
        w.writeTLSKeyLog(first)
        try packet(0)
        w.writeTLSKeyLog(second)  // read while packet 0 (its handshake) is still buffered
        for i in 1..<10 { try packet(i) }
        try w.close(end: t.adding(seconds: 20))
        #expect(w.files.count > 1)
        for (n, file) in w.files.enumerated() {
            let reader = try CaptureFileReader(path: file)
            var events: [String] = []
            reader.secrets = { type, data in
                #expect(type == CaptureFileReader.tlsKeyLogSecrets)
                events.append("secrets \(data.count)")
            }
            try reader.forEach { _ in events.append("packet") }
            // Every file starts with the lines read so far: the first with both (the second went before packet 0).
            #expect(
                events.prefix(2) == ["secrets \(first.count)", "secrets \(second.count)"] || n > 0 && events.first == "secrets \(first.count + second.count)")
            #expect(events.filter { $0 == "packet" }.count == w.written[n].records)
        }
        // tshark reads the blocks as Wireshark's own.
        let tshark = try #require(TestPaths.which("tshark"), "make test installs tshark (scripts/bootstrap)")
        let out = try runProcess(tshark, ["-r", w.files[0], "-c", "1"])
        #expect(out.status == 0, "\(out.stderr)")
    }
}

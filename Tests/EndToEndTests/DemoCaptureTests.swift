import Foundation
import PilotTraceTestSupport
import Testing

/// `pilottrace flows` on the captures the project recorded itself.
@Suite struct DemoCaptureTests {
    let pcap = TestPaths.captures.appendingPathComponent("pilot2-login.pcap").path
    let pcapng = TestPaths.captures.appendingPathComponent("pilot2-login-any.pcapng").path

    /// The byte offset of record `n` (from 0) of a little-endian classic pcap file.
    static func offset(ofRecord n: Int, in bytes: [UInt8]) -> Int {
        var at = 24
        for _ in 0..<n {
            let caplen = Int(bytes[at + 8]) | Int(bytes[at + 9]) << 8 | Int(bytes[at + 10]) << 16 | Int(bytes[at + 11]) << 24
            at += 16 + caplen
        }
        return at
    }

    @Test func tableListsTheThreeConnections() throws {
        let r = try pilottrace("flows", pcap)
        #expect(r.status == 0)
        #expect(r.stderr.isEmpty)
        #expect(
            r.stdout == """
                #  client           server           first seen (UTC)             dur s  →pkts  →bytes  ←pkts  ←bytes  handshake  close  notes
                1  127.0.0.1:45564  127.0.0.1:11883  2026-11-27T08:44:48.898611Z  1.013     13    1316     11    1578  complete   fin
                2  127.0.0.1:51658  127.0.0.1:16789  2026-11-27T08:44:48.899647Z  0.130     17    2040     12    2407  complete   fin
                3  127.0.0.1:45568  127.0.0.1:11883  2026-11-27T08:44:49.029582Z  0.445     15    2571     13    1250  complete   fin

                3 TCP connections in 81 frames (81 TCP, 0 other IP, 0 not IP)

                """)
    }

    @Test func jsonCarriesTheSameFactsForTheCookedV2Pcapng() throws {
        let r = try pilottrace("flows", "--json", pcapng)
        #expect(r.status == 0)
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let files = doc["files"] as! [[String: Any]]
        #expect(files[0]["format"] as? String == "pcapng")
        #expect(files[0]["link_types"] as? [String] == ["linux-sll2"])
        let flows = doc["flows"] as! [[String: Any]]
        #expect(flows.count == 3)
        #expect(flows.map { ($0["server"] as! String).hasSuffix(":11883") } == [true, false, true])
        for f in flows {
            #expect(f["close_reason"] as? String == "fin")
            #expect((f["handshake"] as! [String: Bool])["complete"] == true)
            #expect(f["completeness"] as? Int == 31)
            let up = f["to_server"] as! [String: Any]
            #expect(up["gaps"] as? Int == 0)
            #expect(up["retransmissions"] as? Int == 0)
        }
        // The H5 connection carries the four requests: 2,074 frame bytes up, of which the HTTP payload is the rest.
        let http = flows[1]["to_server"] as! [String: Any]
        #expect(http["packets"] as? Int == 17)
        #expect((http["payload_bytes"] as! Int) > 400)
        let counters = doc["counters"] as! [String: Any]
        #expect(counters["frames"] as? Int == 81)
    }

    @Test func aFileCutMidRecordIsAnalyzedUpToTheCutWithAWarning() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: pcap)))
        bytes.removeLast(40)
        let path = try temporaryFile("cut.pcap", bytes)
        let r = try pilottrace("flows", path)
        #expect(r.status == 0)
        #expect(r.stdout.contains("3 TCP connections in 80 frames"))
        #expect(r.stderr.contains("warning: \(path): offset "))
        #expect(r.stderr.contains("cut short in the middle of a record"))
    }

    @Test func aCorruptRecordStopsWithTheOffsetButKeepsWhatWasRead() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: pcap)))
        // Corrupt the 11th record's captured length (its top byte).
        let at = Self.offset(ofRecord: 10, in: bytes)
        bytes[at + 11] = 0x7f
        let path = try temporaryFile("corrupt.pcap", bytes)
        let r = try pilottrace("flows", path)
        #expect(r.status == 2)
        #expect(r.stderr.contains("error: \(path): offset \(at): record claims"))
        #expect(r.stdout.contains("in 10 frames"))
        #expect(r.stdout.contains("127.0.0.1:16789"))
    }

    @Test func rotatedPiecesReadInOrderAreOneTrace() throws {
        // Split the capture after its 40th record, as a rotating capture would: the pieces give the same flows.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: pcap)))
        let at = Self.offset(ofRecord: 40, in: bytes)
        let first = try temporaryFile("part1.pcap", Array(bytes[0..<at]))
        let second = try temporaryFile("part2.pcap", Array(bytes[0..<24] + bytes[at...]))
        let whole = try pilottrace("flows", pcap)
        let pieces = try pilottrace("flows", first, second)
        #expect(pieces.status == 0)
        #expect(pieces.stdout == whole.stdout)
        let alone = try pilottrace("flows", second)
        #expect(alone.stdout.contains("mid-stream"))
    }
}

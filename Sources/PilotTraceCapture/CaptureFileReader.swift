import PilotTraceWire

/// Reads pcap and pcapng files (optionally gzip-compressed) record by record, with bounded memory.
///
/// The formats are read directly: pcap (microsecond and nanosecond magic, both byte orders, and the "modified"
/// format of Kuznetzov's patched libpcap) and pcapng
/// (several sections and interfaces, per-interface link type, `if_tsresol` and `if_tsoffset`). libpcap cannot
/// read pcapng files whose interfaces have different link types; this reader can.
///
/// Corrupt input throws ``CaptureFileError`` naming the file and offset after the records before it were
/// delivered; a file cut short in the middle of a record ends with a warning instead.
public final class CaptureFileReader {
    public enum Format: String, Sendable {
        case pcap, pcapNanosecond = "pcap-nanosecond", pcapModified = "pcap-modified", pcapng
    }

    public let path: String
    public private(set) var format: Format
    public private(set) var compressed: Bool
    /// Problems that did not stop reading (a file cut short, skipped blocks).
    public private(set) var warnings: [String] = []
    /// The link types of the file's interfaces, in order.
    public private(set) var linkTypes: [LinkType] = []
    /// When the capture stopped, from a pcapng interface statistics block (`isb_endtime`), if the file has one.
    public private(set) var endTime: Timestamp?
    /// The file's size on disk, for progress.
    public let fileSize: UInt64?
    /// Called with each pcapng Decryption Secrets Block (type 0x0A) as it is read, before the packets after it: its
    /// secrets type (``tlsKeyLogSecrets``: a TLS key log) and its data. The reader keeps nothing of it.
    public var secrets: ((_ type: UInt32, _ data: [UInt8]) -> Void)?
    /// The Decryption Secrets Block's type for a TLS key log in NSS format ("TLSK", pcapng §4.7).
    public static let tlsKeyLogSecrets: UInt32 = 0x544C_534B

    let source: ByteSource
    var buffer: UnsafeMutableRawBufferPointer
    var start = 0  // first unread byte in `buffer`
    var end = 0  // one past the last valid byte
    var bufferOffset: UInt64 = 0  // file offset of buffer[0]
    var eof = false

    // pcap state
    var bigEndian = false
    var nanosecond = false
    /// The record header's size: 16, or 24 in Kuznetzov's modified format (ifindex, protocol, packet type).
    var recordHeader = 16
    var snaplen = 0
    // pcapng state
    struct Interface {
        var linkType: LinkType
        var snaplen: Int
        var resolutionIsPower10 = true
        var resolutionExponent: UInt8 = 6
        var offsetSeconds: Int64 = 0
    }
    var interfaces: [Interface] = []
    var interfaceBase = 0  // interfaces of earlier sections, for unique numbering

    /// Records longer than this are corrupt (Wireshark's and libpcap's limit, raised for large snap lengths).
    static let maxRecord = 262_144
    /// pcapng blocks longer than this are corrupt.
    static let maxBlock = 16 << 20

    /// Opens `path` and reads its file header.
    /// - Throws: ``CaptureFileError`` when the file is missing, unreadable, or not a capture.
    public init(path: String) throws {
        self.path = path
        let file = try FileSource(path: path)
        fileSize = file.size
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
        var magic = [UInt8](repeating: 0, count: 2)
        let n = try magic.withUnsafeMutableBytes { try file.read(into: $0) }
        try file.rewind()
        if n == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
            source = try GzipSource(file: file)
            compressed = true
        } else {
            source = file
            compressed = false
        }
        format = .pcap
        try readFileHeader()
    }

    deinit { buffer.deallocate() }

    /// Bytes of the file on disk consumed so far (for progress).
    public var consumedBytes: UInt64 { source.consumed }

    // MARK: - Buffer

    var offset: UInt64 { bufferOffset + UInt64(start) }

    /// Makes `count` bytes available from `start`; false at the end of the file.
    func ensure(_ count: Int) throws -> Bool {
        if end - start >= count { return true }
        if start > 0 {
            let live = end - start
            if live > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: live) }
            bufferOffset += UInt64(start)
            start = 0
            end = live
        }
        if count > buffer.count {
            let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, buffer.count * 2), alignment: 8)
            bigger.baseAddress!.copyMemory(from: buffer.baseAddress!, byteCount: end)
            buffer.deallocate()
            buffer = bigger
        }
        while end < count && !eof {
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            if n == 0 { eof = true } else { end += n }
        }
        return end - start >= count
    }

    func u16(_ at: Int, bigEndian be: Bool) -> UInt16 {
        let a = UInt16(buffer[start + at]), b = UInt16(buffer[start + at + 1])
        return be ? a << 8 | b : b << 8 | a
    }

    func u32(_ at: Int, bigEndian be: Bool) -> UInt32 {
        let p = start + at
        let b0 = UInt32(buffer[p]), b1 = UInt32(buffer[p + 1]), b2 = UInt32(buffer[p + 2]), b3 = UInt32(buffer[p + 3])
        return be ? b0 << 24 | b1 << 16 | b2 << 8 | b3 : b3 << 24 | b2 << 16 | b1 << 8 | b0
    }

    func error(_ kind: CaptureFileError.Kind, _ message: String, at offset: UInt64? = nil) -> CaptureFileError {
        CaptureFileError(path: path, offset: offset ?? self.offset, kind: kind, message: message)
    }

    // MARK: - File header

    func readFileHeader() throws {
        guard try ensure(4) else {
            if end == start { throw error(.notACapture, "empty file: not a pcap or pcapng capture", at: 0) }
            throw error(.notACapture, "only \(end - start) bytes: not a pcap or pcapng capture", at: 0)
        }
        let magic = u32(0, bigEndian: true)
        switch magic {
        case 0xA1B2_C3D4: format = .pcap; bigEndian = true; nanosecond = false
        case 0xD4C3_B2A1: format = .pcap; bigEndian = false; nanosecond = false
        case 0xA1B2_3C4D: format = .pcapNanosecond; bigEndian = true; nanosecond = true
        case 0x4D3C_B2A1: format = .pcapNanosecond; bigEndian = false; nanosecond = true
        case 0xA1B2_CD34: format = .pcapModified; bigEndian = true; recordHeader = 24
        case 0x34CD_B2A1: format = .pcapModified; bigEndian = false; recordHeader = 24
        case 0x0A0D_0D0A: format = .pcapng; return  // blocks are read as records come
        default:
            throw error(.notACapture, "not a pcap or pcapng capture (magic 0x\(String(magic, radix: 16, uppercase: true)))", at: 0)
        }
        guard try ensure(24) else { throw error(.corruptHeader, "pcap file header cut short (\(end - start) of 24 bytes)", at: 0) }
        let major = u16(4, bigEndian: bigEndian), minor = u16(6, bigEndian: bigEndian)
        guard major == 2 else { throw error(.unsupportedVersion, "unsupported pcap version \(major).\(minor) (expected 2.4)", at: 4) }
        snaplen = Int(u32(16, bigEndian: bigEndian))
        let network = u32(20, bigEndian: bigEndian)
        // pcap-linktype(7) §2: bits 16-25 are reserved and must be zero; 26-31 carry FCS information.
        guard network & 0x03FF_0000 == 0 else {
            throw error(.corruptHeader, "link-type field 0x\(String(network, radix: 16)) has reserved bits set", at: 20)
        }
        linkTypes = [LinkType(rawValue: network & 0xFFFF)]
        start += 24
    }

    // MARK: - Records

    /// Calls `body` for every record, in file order.
    /// - Throws: ``CaptureFileError`` for corrupt input (after the records before it), or what `body` throws.
    public func forEach(_ body: (CaptureRecord) throws -> Void) throws {
        switch format {
        case .pcap, .pcapNanosecond, .pcapModified: try readPcapRecords(body)
        case .pcapng: try readPcapngBlocks(body)
        }
    }

    func truncated(_ what: String, have: Int, need: Int) {
        warnings.append("\(path): offset \(offset): file cut short in the middle of \(what) (\(have) of \(need) bytes); analyzed up to the cut")
    }

    func readPcapRecords(_ body: (CaptureRecord) throws -> Void) throws {
        // The header's snapshot length may raise the limit (some link types record large frames), but not past what a
        // pcapng block may hold: a crafted 4 GiB snaplen would otherwise make any length "cut short", not corrupt.
        let limit = max(Self.maxRecord, min(snaplen, Self.maxBlock))
        let link = linkTypes[0]
        let header = recordHeader
        while true {
            guard try ensure(header) else {
                if end > start { truncated("a record header", have: end - start, need: header) }
                return
            }
            let sec = u32(0, bigEndian: bigEndian), frac = u32(4, bigEndian: bigEndian)
            let caplen = Int(u32(8, bigEndian: bigEndian)), origlen = Int(u32(12, bigEndian: bigEndian))
            guard caplen <= limit else {
                throw error(.absurdLength, "record claims \(caplen) captured bytes, more than the maximum of \(limit): the file is corrupt")
            }
            guard try ensure(header + caplen) else {
                truncated("a record", have: end - start, need: header + caplen)
                return
            }
            let fracNs = nanosecond ? Int64(frac) : Int64(frac) * 1000
            let record = CaptureRecord(
                timestamp: Timestamp(seconds: Int64(sec), nanoseconds: fracNs),
                linkType: link,
                data: UnsafeRawBufferPointer(rebasing: buffer[(start + header)..<(start + header + caplen)]),
                originalLength: max(origlen, caplen),
                interface: 0
            )
            start += header + caplen
            try body(record)
        }
    }

    func readPcapngBlocks(_ body: (CaptureRecord) throws -> Void) throws {
        var be = bigEndian
        while true {
            guard try ensure(12) else {
                if end > start { truncated("a block header", have: end - start, need: 12) }
                return
            }
            let type = u32(0, bigEndian: be)
            if type == 0x0A0D_0D0A {
                // Section header: the byte-order magic decides this section's endianness.
                let bom = u32(8, bigEndian: true)
                switch bom {
                case 0x1A2B_3C4D: be = true
                case 0x4D3C_2B1A: be = false
                default: throw error(.corruptHeader, "pcapng section header has a bad byte-order magic 0x\(String(bom, radix: 16))")
                }
                bigEndian = be
            }
            let length = Int(u32(4, bigEndian: be))
            guard length >= 12, length % 4 == 0 else {
                throw error(.corruptHeader, "pcapng block of type 0x\(String(type, radix: 16)) has an invalid length \(length)")
            }
            guard length <= Self.maxBlock else {
                throw error(.absurdLength, "pcapng block claims \(length) bytes, more than the maximum of \(Self.maxBlock): the file is corrupt")
            }
            guard try ensure(length) else {
                truncated("a block", have: end - start, need: length)
                return
            }
            guard Int(u32(length - 4, bigEndian: be)) == length else {
                throw error(.corruptHeader, "pcapng block length \(length) does not match its trailing copy \(u32(length - 4, bigEndian: be))")
            }
            switch type {
            case 0x0A0D_0D0A: try sectionHeader(length)
            case 1: try interfaceDescription(length)
            case 6: try enhancedPacket(length, body)
            case 3: try simplePacket(length, body)
            case 2: try obsoletePacket(length, body)
            case 5: try interfaceStatistics(length)
            case 0x0A: try decryptionSecrets(length)
            default: break  // name resolution, custom: not needed
            }
            start += length
        }
    }

    /// Decryption Secrets (type 0x0A, pcapng §4.7): secrets type, secrets length, the secrets (padded to 4 bytes).
    func decryptionSecrets(_ length: Int) throws {
        guard let secrets else { return }
        guard length >= 20 else { throw error(.corruptHeader, "pcapng decryption secrets block too short (\(length) bytes)") }
        let type = u32(8, bigEndian: bigEndian), n = Int(u32(12, bigEndian: bigEndian))
        guard n <= length - 20 else { throw error(.corruptHeader, "pcapng decryption secrets of \(n) bytes in a block of \(length)") }
        let from = buffer.baseAddress! + start + 16
        secrets(type, Array(UnsafeRawBufferPointer(start: from, count: n)))
    }

    /// Interface statistics (type 5): `isb_endtime` says when the capture stopped, which may be well after its
    /// last packet (a silent device is evidence too).
    func interfaceStatistics(_ length: Int) throws {
        guard length >= 24 else { throw error(.corruptHeader, "pcapng interface statistics block too short (\(length) bytes)") }
        let i = try interface(Int(u32(8, bigEndian: bigEndian)))
        try forEachOption(from: 20, blockLength: length) { code, at, len in
            guard code == 3, len == 8 else { return }  // isb_endtime
            let t = timestamp(i, high: u32(at, bigEndian: bigEndian), low: u32(at + 4, bigEndian: bigEndian))
            endTime = max(endTime ?? t, t)
        }
    }

    func sectionHeader(_ length: Int) throws {
        guard length >= 28 else { throw error(.corruptHeader, "pcapng section header too short (\(length) bytes)") }
        let major = u16(12, bigEndian: bigEndian), minor = u16(14, bigEndian: bigEndian)
        guard major == 1 else { throw error(.unsupportedVersion, "unsupported pcapng version \(major).\(minor) (expected 1.0)") }
        try forEachOption(from: 24, blockLength: length) { _, _, _ in }
        interfaceBase += interfaces.count
        interfaces = []
    }

    func interfaceDescription(_ length: Int) throws {
        guard length >= 20 else { throw error(.corruptHeader, "pcapng interface description too short (\(length) bytes)") }
        var i = Interface(linkType: LinkType(rawValue: UInt32(u16(8, bigEndian: bigEndian))), snaplen: Int(u32(12, bigEndian: bigEndian)))
        try forEachOption(from: 16, blockLength: length) { code, at, len in
            if code == 9 && len >= 1 {  // if_tsresol
                let v = buffer[start + at]
                i.resolutionIsPower10 = v & 0x80 == 0
                i.resolutionExponent = v & 0x7f
            } else if code == 14 && len >= 8 {  // if_tsoffset (seconds)
                let hi = UInt64(u32(at, bigEndian: bigEndian)), lo = UInt64(u32(at + 4, bigEndian: bigEndian))
                i.offsetSeconds = Int64(bitPattern: bigEndian ? hi << 32 | lo : lo << 32 | hi)
            }
        }
        if i.resolutionIsPower10 ? i.resolutionExponent > 18 : i.resolutionExponent > 63 {
            throw error(.corruptHeader, "pcapng interface \(interfaces.count) has an unusable timestamp resolution")
        }
        interfaces.append(i)
        linkTypes.append(i.linkType)
    }

    /// Walks a block's options (code, value offset within the block, value length).
    func forEachOption(from first: Int, blockLength: Int, _ body: (UInt16, Int, Int) throws -> Void) throws {
        var at = first
        let limit = blockLength - 4
        while at + 4 <= limit {
            let code = u16(at, bigEndian: bigEndian), len = Int(u16(at + 2, bigEndian: bigEndian))
            if code == 0 { return }  // opt_endofopt
            guard at + 4 + len <= limit else {
                throw error(.corruptHeader, "pcapng option \(code) claims \(len) bytes, past the end of its block", at: offset + UInt64(at))
            }
            try body(code, at + 4, len)
            at += 4 + (len + 3) / 4 * 4
        }
    }

    func interface(_ id: Int) throws -> Interface {
        guard id < interfaces.count else {
            throw error(.unknownInterface, "packet names interface \(id), but only \(interfaces.count) were described")
        }
        return interfaces[id]
    }

    func timestamp(_ i: Interface, high: UInt32, low: UInt32) -> Timestamp {
        let ticks = UInt64(high) << 32 | UInt64(low)
        let e = Int(i.resolutionExponent)
        var ns: Int64
        if i.resolutionIsPower10 {
            if e <= 9 {
                var mul: UInt64 = 1
                for _ in 0..<(9 - e) { mul *= 10 }
                ns = Int64(truncatingIfNeeded: ticks &* mul)
            } else {
                var div: UInt64 = 1
                for _ in 0..<(e - 9) { div *= 10 }
                ns = Int64(truncatingIfNeeded: ticks / div)
            }
        } else {
            let (hi, lo) = ticks.multipliedFullWidth(by: 1_000_000_000)
            ns = e == 0 ? Int64(truncatingIfNeeded: lo) : Int64(truncatingIfNeeded: (lo >> UInt64(e)) | (e < 64 ? hi << UInt64(64 - e) : 0))
        }
        return Timestamp(nanoseconds: ns &+ i.offsetSeconds &* 1_000_000_000)
    }

    func packet(_ i: Interface, id: Int, ts: Timestamp, dataAt: Int, caplen: Int, origlen: Int, _ body: (CaptureRecord) throws -> Void) throws {
        let record = CaptureRecord(
            timestamp: ts, linkType: i.linkType,
            data: UnsafeRawBufferPointer(rebasing: buffer[(start + dataAt)..<(start + dataAt + caplen)]),
            originalLength: max(origlen, caplen), interface: interfaceBase + id)
        try body(record)
    }

    /// Enhanced packet block (type 6): a 32-bit interface id.
    func enhancedPacket(_ length: Int, _ body: (CaptureRecord) throws -> Void) throws {
        guard length >= 32 else { throw error(.corruptHeader, "pcapng enhanced packet block too short (\(length) bytes)") }
        try timedPacket(length, interfaceID: Int(u32(8, bigEndian: bigEndian)), body)
    }

    /// Obsolete packet block (type 2): a 16-bit interface id and a 16-bit drop count, otherwise the same layout.
    func obsoletePacket(_ length: Int, _ body: (CaptureRecord) throws -> Void) throws {
        guard length >= 32 else { throw error(.corruptHeader, "pcapng packet block too short (\(length) bytes)") }
        try timedPacket(length, interfaceID: Int(u16(8, bigEndian: bigEndian)), body)
    }

    /// The layout enhanced and obsolete packet blocks share from byte 12: timestamp, lengths, data.
    func timedPacket(_ length: Int, interfaceID id: Int, _ body: (CaptureRecord) throws -> Void) throws {
        let i = try interface(id)
        let caplen = Int(u32(20, bigEndian: bigEndian)), origlen = Int(u32(24, bigEndian: bigEndian))
        guard 28 + caplen <= length - 4 else {
            throw error(.absurdLength, "pcapng packet claims \(caplen) captured bytes, more than its \(length)-byte block holds")
        }
        let ts = timestamp(i, high: u32(12, bigEndian: bigEndian), low: u32(16, bigEndian: bigEndian))
        try packet(i, id: id, ts: ts, dataAt: 28, caplen: caplen, origlen: origlen, body)
    }

    func simplePacket(_ length: Int, _ body: (CaptureRecord) throws -> Void) throws {
        guard length >= 16 else { throw error(.corruptHeader, "pcapng simple packet block too short (\(length) bytes)") }
        let i = try interface(0)
        let origlen = Int(u32(8, bigEndian: bigEndian))
        var caplen = min(origlen, length - 16)
        if i.snaplen > 0 { caplen = min(caplen, i.snaplen) }
        // Simple packet blocks carry no timestamp.
        try packet(i, id: 0, ts: .zero, dataAt: 12, caplen: caplen, origlen: origlen, body)
    }
}

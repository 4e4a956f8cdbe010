import Foundation

/// Writes small capture files byte by byte for reader tests.
struct CaptureBytes {
    var bigEndian = false
    var bytes: [UInt8] = []

    mutating func u16(_ v: UInt16) { bytes += bigEndian ? [UInt8(v >> 8), UInt8(v & 0xff)] : [UInt8(v & 0xff), UInt8(v >> 8)] }
    mutating func u32(_ v: UInt32) {
        let b = [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
        bytes += bigEndian ? b : b.reversed()
    }

    /// A classic pcap file header.
    static func pcap(bigEndian: Bool = false, nanosecond: Bool = false, linkType: UInt32 = 1, snaplen: UInt32 = 65535) -> CaptureBytes {
        var c = CaptureBytes(bigEndian: bigEndian)
        c.u32(nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4)
        c.u16(2); c.u16(4); c.u32(0); c.u32(0); c.u32(snaplen); c.u32(linkType)
        return c
    }

    mutating func pcapRecord(seconds: UInt32, fraction: UInt32, data: [UInt8], originalLength: Int? = nil) {
        u32(seconds); u32(fraction); u32(UInt32(data.count)); u32(UInt32(originalLength ?? data.count))
        bytes += data
    }

    /// A pcapng section header block.
    mutating func sectionHeader() {
        block(type: 0x0A0D_0D0A) { c in
            c.u32(0x1A2B_3C4D); c.u16(1); c.u16(0); c.u32(0xFFFF_FFFF); c.u32(0xFFFF_FFFF)
        }
    }

    /// A pcapng interface description block with optional if_tsresol and if_tsoffset.
    mutating func interface(linkType: UInt16, tsresol: UInt8? = nil, tsoffset: Int64? = nil) {
        block(type: 1) { c in
            c.u16(linkType); c.u16(0); c.u32(0)
            if let tsresol { c.u16(9); c.u16(1); c.bytes += [tsresol, 0, 0, 0] }
            if let tsoffset {
                c.u16(14); c.u16(8)
                let v = UInt64(bitPattern: tsoffset)
                if c.bigEndian { c.u32(UInt32(v >> 32)); c.u32(UInt32(v & 0xffff_ffff)) } else { c.u32(UInt32(v & 0xffff_ffff)); c.u32(UInt32(v >> 32)) }
            }
            c.u16(0); c.u16(0)
        }
    }

    mutating func enhancedPacket(interface: UInt32, ticks: UInt64, data: [UInt8]) {
        block(type: 6) { c in
            c.u32(interface); c.u32(UInt32(ticks >> 32)); c.u32(UInt32(ticks & 0xffff_ffff))
            c.u32(UInt32(data.count)); c.u32(UInt32(data.count))
            c.bytes += data
            while c.bytes.count % 4 != 0 { c.bytes.append(0) }
        }
    }

    mutating func simplePacket(data: [UInt8]) {
        block(type: 3) { c in
            c.u32(UInt32(data.count))
            c.bytes += data
            while c.bytes.count % 4 != 0 { c.bytes.append(0) }
        }
    }

    mutating func block(type: UInt32, _ body: (inout CaptureBytes) -> Void) {
        var inner = CaptureBytes(bigEndian: bigEndian)
        body(&inner)
        let length = UInt32(12 + inner.bytes.count)
        u32(type); u32(length)
        bytes += inner.bytes
        u32(length)
    }

    /// Writes the bytes to a fresh temporary file and returns its path.
    func write(_ name: String = "capture") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }
}

import Foundation
import PilotTraceWire

/// Writes a pcapng file (one section, one interface, nanosecond timestamps, little-endian), buffered.
///
/// Blocks per the pcapng specification (draft-ietf-opsawg-pcapng): Section Header Block (§4.1), Interface
/// Description Block with `if_tsresol` = 9 (§4.2), Enhanced Packet Blocks (§4.3).
public final class PcapngWriter {
    let handle: FileHandle
    var buffer: [UInt8] = []
    public private(set) var records = 0
    public private(set) var bytes = 0

    /// Creates (or truncates) `path` and writes the section and interface blocks.
    public init(path: String, linkType: LinkType, snaplen: UInt32 = 262_144, application: String = "pilottrace",
                interfaceName: String = "pilottrace-proxy") throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CaptureFileError(path: path, offset: nil, kind: .cannotOpen, message: "cannot create the file")
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        buffer.reserveCapacity(1 << 20)
        // SHB: byte-order magic, version 1.0, section length unknown (-1), option shb_userappl (4).
        var shb: [UInt8] = []
        Self.put32(&shb, 0x1A2B_3C4D)
        Self.put16(&shb, 1); Self.put16(&shb, 0)
        shb += [UInt8](repeating: 0xFF, count: 8)
        Self.option(&shb, 4, Array(application.utf8))
        Self.option(&shb, 0, [])
        block(0x0A0D_0D0A, shb)
        // IDB: link type, reserved, snaplen, if_name (2), if_tsresol (9) = 9 (nanoseconds).
        var idb: [UInt8] = []
        Self.put16(&idb, UInt16(truncatingIfNeeded: linkType.rawValue)); Self.put16(&idb, 0)
        Self.put32(&idb, snaplen)
        Self.option(&idb, 2, Array(interfaceName.utf8))
        Self.option(&idb, 9, [9])
        Self.option(&idb, 0, [])
        block(1, idb)
    }

    static func put16(_ a: inout [UInt8], _ v: UInt16) { a.append(UInt8(v & 0xFF)); a.append(UInt8(v >> 8)) }
    static func put32(_ a: inout [UInt8], _ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { a.append(UInt8((v >> UInt32(s)) & 0xFF)) } }

    static func option(_ a: inout [UInt8], _ code: UInt16, _ value: [UInt8]) {
        put16(&a, code); put16(&a, UInt16(value.count))
        a += value
        a += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
    }

    func block(_ type: UInt32, _ body: [UInt8]) {
        let total = UInt32(12 + body.count)
        Self.put32(&buffer, type)
        Self.put32(&buffer, total)
        buffer += body
        Self.put32(&buffer, total)
    }

    /// Appends one Enhanced Packet Block.
    public func write(_ frame: [UInt8], at t: Timestamp) throws {
        let ns = UInt64(bitPattern: t.nanoseconds)
        let padded = (frame.count + 3) & ~3
        let total = UInt32(12 + 20 + padded)
        Self.put32(&buffer, 6)
        Self.put32(&buffer, total)
        Self.put32(&buffer, 0)  // interface 0
        Self.put32(&buffer, UInt32(ns >> 32))
        Self.put32(&buffer, UInt32(ns & 0xFFFF_FFFF))
        Self.put32(&buffer, UInt32(frame.count))
        Self.put32(&buffer, UInt32(frame.count))
        buffer += frame
        buffer += [UInt8](repeating: 0, count: padded - frame.count)
        Self.put32(&buffer, total)
        records += 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        bytes += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    public func close() throws {
        try flush()
        try handle.close()
    }
}

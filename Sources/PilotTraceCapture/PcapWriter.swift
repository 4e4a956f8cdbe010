import Foundation
import PilotTraceWire

/// Writes a classic pcap file (microsecond or nanosecond resolution, little-endian), buffered.
public final class PcapWriter {
    let handle: FileHandle
    var buffer: [UInt8] = []
    let nanosecond: Bool
    public private(set) var records = 0
    public private(set) var bytes = 0

    /// Creates (or truncates) `path` and writes the file header.
    public init(path: String, linkType: LinkType, snaplen: UInt32 = 262_144, nanosecond: Bool = true) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CaptureFileError(path: path, offset: nil, kind: .cannotOpen, message: "cannot create the file")
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        self.nanosecond = nanosecond
        buffer.reserveCapacity(1 << 20)
        append32(nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4)
        append16(2); append16(4); append32(0); append32(0); append32(snaplen); append32(linkType.rawValue)
    }

    func append16(_ v: UInt16) { buffer.append(UInt8(v & 0xff)); buffer.append(UInt8(v >> 8)) }
    func append32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8((v >> UInt32(s)) & 0xff)) } }

    /// Appends one record.
    public func write(_ frame: [UInt8], at t: Timestamp, originalLength: Int? = nil) throws {
        let secs = t.nanoseconds / 1_000_000_000, frac = t.nanoseconds % 1_000_000_000
        append32(UInt32(truncatingIfNeeded: secs))
        append32(UInt32(nanosecond ? frac : frac / 1000))
        append32(UInt32(frame.count)); append32(UInt32(max(originalLength ?? frame.count, frame.count)))
        buffer += frame
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

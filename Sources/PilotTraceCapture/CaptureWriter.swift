import Foundation
import PilotTraceWire

/// Writes a pcapng file (one section, one interface, nanosecond timestamps), buffered.
///
/// On ``close(end:received:dropped:)`` an Interface Statistics Block records when the capture ended and the kernel's
/// counts, so an analysis of the file later knows the capture ran past its last packet (a device that stayed silent
/// for the 30 s grace is offline in the file as it was live).
public final class PcapngWriter {
    let handle: FileHandle
    var buffer: [UInt8] = []
    public private(set) var records = 0
    public private(set) var bytes = 0
    public private(set) var firstTime: Timestamp?
    public private(set) var lastTime: Timestamp?
    /// Where in `buffer` a block may be inserted: after the section header until the first flush, then its start.
    var insertionPoint = 0

    public init(path: String, linkType: LinkType, snaplen: UInt32 = 262_144, interfaceName: String? = nil, application: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CaptureFileError(path: path, offset: nil, kind: .cannotOpen, message: "cannot create the file")
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        buffer.reserveCapacity(1 << 20)
        // Section header: byte-order magic, version 1.0, section length unknown (-1), shb_userappl.
        let shb: [UInt8] = [0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0] + [UInt8](repeating: 0xff, count: 8)
        block(0x0A0D_0D0A, body: shb, options: [(UInt16(4), Array(application.utf8))])
        insertionPoint = buffer.count
        // Interface description: link type, snaplen, if_name, if_tsresol = 10^-9.
        let idb = Self.le16(UInt16(truncatingIfNeeded: linkType.rawValue)) + [0, 0] + Self.le32(snaplen)
        var options: [(UInt16, [UInt8])] = []
        if let interfaceName { options.append((2, Array(interfaceName.utf8))) }
        options.append((9, [9]))
        block(1, body: idb, options: options)
    }

    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> UInt32($0 * 8)) & 0xff) } }
    static func le64(_ v: UInt64) -> [UInt8] { le32(UInt32(v & 0xffff_ffff)) + le32(UInt32(v >> 32)) }
    /// A timestamp as pcapng's high and low 32-bit words (nanoseconds).
    static func ts(_ t: Timestamp) -> [UInt8] {
        let v = UInt64(bitPattern: t.nanoseconds)
        return le32(UInt32(v >> 32)) + le32(UInt32(v & 0xffff_ffff))
    }

    func block(_ type: UInt32, body: [UInt8], options: [(UInt16, [UInt8])] = []) {
        var opts: [UInt8] = []
        for (code, value) in options {
            opts += Self.le16(code) + Self.le16(UInt16(value.count)) + value
            opts += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
        }
        if !options.isEmpty { opts += [0, 0, 0, 0] }
        let length = UInt32(12 + body.count + opts.count)
        buffer += Self.le32(type) + Self.le32(length) + body + opts + Self.le32(length)
    }

    /// Appends one enhanced packet block.
    public func write(_ frame: UnsafeRawBufferPointer, originalLength: Int, at t: Timestamp) throws {
        let padded = (frame.count + 3) / 4 * 4
        let length = UInt32(32 + padded)
        buffer +=
            Self.le32(6) + Self.le32(length) + Self.le32(0) + Self.ts(t) + Self.le32(UInt32(frame.count))
            + Self.le32(UInt32(originalLength))
        buffer.append(contentsOf: frame)
        buffer += [UInt8](repeating: 0, count: padded - frame.count) + Self.le32(length)
        records += 1
        if firstTime == nil { firstTime = t }
        lastTime = t
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Writes a Decryption Secrets Block (pcapng §4.7; `type` ``CaptureFileReader/tlsKeyLogSecrets`` for a TLS key log)
    /// as early as it can still go: before every packet not yet flushed to the file (at most a second's, live), so a
    /// reader meets the keys before the handshake they decrypt, as `editcap --inject-secrets` places them.
    public func writeDecryptionSecrets(type: UInt32 = CaptureFileReader.tlsKeyLogSecrets, _ data: [UInt8]) {
        guard !data.isEmpty else { return }
        let padding = (4 - data.count % 4) % 4
        let length = UInt32(12 + 8 + data.count + padding)
        let block =
            Self.le32(0x0A) + Self.le32(length) + Self.le32(type) + Self.le32(UInt32(data.count)) + data
            + [UInt8](repeating: 0, count: padding) + Self.le32(length)
        buffer.insert(contentsOf: block, at: insertionPoint)
        insertionPoint += block.count
    }

    /// Bytes in the file once what is buffered is written.
    public var size: Int { bytes + buffer.count }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        bytes += buffer.count
        buffer.removeAll(keepingCapacity: true)
        insertionPoint = 0
    }

    /// Writes the statistics block (isb_starttime, isb_endtime, isb_ifrecv, isb_ifdrop) and closes the file.
    public func close(end: Timestamp, received: UInt64? = nil, dropped: UInt64? = nil) throws {
        var options: [(UInt16, [UInt8])] = []
        if let firstTime { options.append((2, Self.ts(firstTime))) }
        options.append((3, Self.ts(end)))
        if let received { options.append((4, Self.le64(received))) }
        if let dropped { options.append((5, Self.le64(dropped))) }
        block(5, body: Self.le32(0) + Self.ts(end), options: options)
        try flush()
        try handle.close()
    }
}

/// Writes live frames to pcap or pcapng, optionally as a ring of files rotated by size (like `tcpdump -C -W`).
///
/// The format follows the name: `.pcap` writes classic pcap (nanoseconds), anything else pcapng. With rotation the
/// files are `NAME_00001.pcapng`, `NAME_00002.pcapng`, …; once `maxFiles` exist the oldest is removed.
public final class RotatingCaptureWriter {
    public enum Format: String, Sendable { case pcap, pcapng }

    public let format: Format
    let base: String
    let linkType: LinkType
    let snaplen: UInt32
    let interfaceName: String?
    let application: String
    let rotateBytes: Int?
    let maxFiles: Int?
    var pcap: PcapWriter?
    var pcapng: PcapngWriter?
    var index = 0
    /// The TLS key log lines written so far: each new file of a rotation starts with them all.
    var secrets: [UInt8] = []
    /// What one file holds.
    public struct File: Sendable {
        public var path: String
        public var records = 0
        public var firstTime: Timestamp?
        public var lastTime: Timestamp?
        /// When the file was closed (the rotation, or the capture's stop).
        public var endTime: Timestamp?
    }

    /// The files written so far that still exist, oldest first, with what each holds.
    public private(set) var written: [File] = []
    /// Their paths.
    public var files: [String] { written.map(\.path) }
    public private(set) var records = 0

    public init(
        path: String, linkType: LinkType, snaplen: UInt32, interfaceName: String?, application: String,
        rotateBytes: Int? = nil, maxFiles: Int? = nil
    ) throws {
        format = path.lowercased().hasSuffix(".pcap") ? .pcap : .pcapng
        base = path
        self.linkType = linkType
        self.snaplen = snaplen
        self.interfaceName = interfaceName
        self.application = application
        self.rotateBytes = rotateBytes
        self.maxFiles = maxFiles
        try open()
    }

    /// The name of the `n`th file (1-based) when rotating.
    public static func rotatedName(_ base: String, _ n: Int) -> String {
        let url = URL(fileURLWithPath: base)
        let ext = url.pathExtension
        let stem = ext.isEmpty ? base : String(base.dropLast(ext.count + 1))
        return stem + "_" + String(format: "%05d", n) + (ext.isEmpty ? "" : "." + ext)
    }

    func open() throws {
        index += 1
        let path = rotateBytes == nil ? base : Self.rotatedName(base, index)
        switch format {
        case .pcap: pcap = try PcapWriter(path: path, linkType: linkType, snaplen: snaplen)
        case .pcapng:
            let w = try PcapngWriter(path: path, linkType: linkType, snaplen: snaplen, interfaceName: interfaceName, application: application)
            w.writeDecryptionSecrets(secrets)
            pcapng = w
        }
        written.append(File(path: path))
        if let maxFiles, written.count > maxFiles {
            try? FileManager.default.removeItem(atPath: written.removeFirst().path)
        }
    }

    var currentSize: Int { pcap.map { $0.bytes + $0.buffer.count } ?? pcapng?.size ?? 0 }

    public func write(_ record: CaptureRecord) throws {
        if let rotateBytes, currentSize + record.data.count + 32 > rotateBytes, (pcap?.records ?? pcapng?.records ?? 0) > 0 {
            try closeCurrent(end: record.timestamp, received: nil, dropped: nil)
            try open()
        }
        if let pcap {
            try pcap.write(Array(record.data), at: record.timestamp, originalLength: record.originalLength)
        } else {
            try pcapng?.write(record.data, originalLength: record.originalLength, at: record.timestamp)
        }
        records += 1
        written[written.count - 1].records += 1
        if written[written.count - 1].firstTime == nil { written[written.count - 1].firstTime = record.timestamp }
        written[written.count - 1].lastTime = record.timestamp
    }

    /// TLS key log lines (NSS format) for the file: pcapng keeps them in a Decryption Secrets Block, so the saved
    /// capture carries its keys; classic pcap has no place for them.
    public func writeTLSKeyLog(_ lines: [UInt8]) {
        guard format == .pcapng, !lines.isEmpty else { return }
        secrets += lines
        pcapng?.writeDecryptionSecrets(lines)
    }

    public func flush() throws {
        try pcap?.flush()
        try pcapng?.flush()
    }

    func closeCurrent(end: Timestamp, received: UInt64?, dropped: UInt64?) throws {
        try pcap?.close()
        try pcapng?.close(end: end, received: received, dropped: dropped)
        if !written.isEmpty { written[written.count - 1].endTime = end }
        pcap = nil
        pcapng = nil
    }

    /// Closes the last file; for pcapng, `end` is when the capture stopped.
    public func close(end: Timestamp, received: UInt64? = nil, dropped: UInt64? = nil) throws {
        try closeCurrent(end: end, received: received, dropped: dropped)
    }
}

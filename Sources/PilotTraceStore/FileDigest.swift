import Foundation
import PilotTraceWire

/// Streaming file digests: a capture file's SHA-256 (the key that makes a re-analysis replace the earlier one), read in
/// chunks through PilotTraceWire's ``SHA256`` (swift-crypto's BoringSSL, with the processor's SHA instructions).
public enum FileDigest {
    /// The size of the chunks a file is read in.
    static let chunkSize = 1 << 20

    /// The SHA-256 of a file's bytes, read in 1 MiB chunks so the file never sits in memory.
    ///
    /// - Parameter path: The file to hash.
    /// - Returns: 64 lowercase hexadecimal digits.
    /// - Throws: ``PilotTraceStoreError`` (`.io`) naming `path` when the file cannot be opened or read.
    public static func sha256(path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw PilotTraceStoreError(kind: .io, path: path, message: "cannot open file to hash it: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var hasher = SHA256()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let count = read(fd, buffer, chunkSize)
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw PilotTraceStoreError(kind: .io, path: path, message: "cannot read file to hash it: \(String(cString: strerror(errno)))")
            }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: count))
        }
        return hasher.finalize().hex
    }

    /// The SHA-256 of bytes in memory, as 64 lowercase hexadecimal digits.
    public static func sha256<Bytes: Sequence>(bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var hasher = SHA256()
        hasher.update(Array(bytes))
        return hasher.finalize().hex
    }
}

extension Array where Element == UInt8 {
    fileprivate var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        for byte in self { out += [digits[Int(byte >> 4)], digits[Int(byte & 0xf)]] }
        return String(decoding: out, as: UTF8.self)
    }
}

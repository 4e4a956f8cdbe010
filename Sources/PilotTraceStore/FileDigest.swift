import CLibCrypto
import Foundation
import PilotTraceWire

/// Streaming file digests. A capture file's SHA-256 (the key that makes a re-analysis replace the earlier one) is
/// computed by libcrypto, whose SHA-NI code hashes about 2 GB/s here: the pure Swift ``SHA256`` of PilotTraceWire took
/// 0.35 s of a 127 MB analysis. Digests of bytes in memory (small) use ``SHA256``; the tests hold the two to each other.
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
        guard let context = EVP_MD_CTX_new() else {
            throw PilotTraceStoreError(kind: .io, path: path, message: "cannot hash it: libcrypto has no memory for a digest")
        }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            throw PilotTraceStoreError(kind: .io, path: path, message: "cannot hash it: libcrypto refused SHA-256")
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let count = read(fd, buffer, chunkSize)
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw PilotTraceStoreError(kind: .io, path: path, message: "cannot read file to hash it: \(String(cString: strerror(errno)))")
            }
            EVP_DigestUpdate(context, buffer, count)
        }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &digest, &length) == 1, length == 32 else {
            throw PilotTraceStoreError(kind: .io, path: path, message: "cannot hash it: libcrypto did not finish the digest")
        }
        return Array(digest.prefix(32)).hex
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

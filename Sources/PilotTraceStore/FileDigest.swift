import Foundation
import PilotTraceWire

/// Streaming file digests (SHA-256 from PilotTraceWire: the project takes no crypto dependency).
public enum FileDigest {
    /// The size of the chunks a file is read in.
    static let chunkSize = 1 << 20

    /// The SHA-256 of a file's bytes, read in 1 MiB chunks so the file never sits in memory.
    ///
    /// - Parameter path: The file to hash.
    /// - Returns: 64 lowercase hexadecimal digits.
    /// - Throws: ``PilotTraceStoreError`` (`.io`) naming `path` when the file cannot be opened or read.
    public static func sha256(path: String) throws -> String {
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        } catch {
            throw PilotTraceStoreError(kind: .io, path: path, message: "cannot open file to hash it: \(reason(error))")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        do {
            while let chunk = try handle.read(upToCount: chunkSize), !chunk.isEmpty {
                hasher.update(chunk)
            }
        } catch {
            throw PilotTraceStoreError(kind: .io, path: path, message: "cannot read file to hash it: \(reason(error))")
        }
        return hasher.finalize().hex
    }

    /// The SHA-256 of bytes in memory, as 64 lowercase hexadecimal digits.
    public static func sha256<Bytes: Sequence>(bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var hasher = SHA256()
        hasher.update(Array(bytes))
        return hasher.finalize().hex
    }

    private static func reason(_ error: any Error) -> String {
        (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
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

import CZlib

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A stream of bytes from a file, possibly through a decompressor.
protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Bytes consumed from the underlying file (for progress).
    var consumed: UInt64 { get }
}

/// A plain file, read with read(2).
final class FileSource: ByteSource {
    let fd: Int32
    let path: String
    private(set) var consumed: UInt64 = 0

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CaptureFileError(path: path, offset: nil, kind: .cannotOpen, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw CaptureFileError(path: path, offset: nil, kind: .cannotOpen, message: "is a directory, not a capture file")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    var size: UInt64? {
        var st = stat()
        return fstat(fd, &st) == 0 ? UInt64(st.st_size) : nil
    }

    func rewind() throws {
        guard lseek(fd, 0, SEEK_SET) == 0 else {
            throw CaptureFileError(path: path, offset: nil, kind: .io, message: "cannot seek: \(String(cString: strerror(errno)))")
        }
        consumed = 0
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { consumed += UInt64(n); return n }
            if errno == EINTR { continue }
            throw CaptureFileError(path: path, offset: consumed, kind: .io, message: "read failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// A gzip-compressed file (several concatenated members allowed), inflated with zlib.
final class GzipSource: ByteSource {
    let file: FileSource
    var stream = z_stream()
    var input: UnsafeMutableRawBufferPointer
    var finished = false
    var total: UInt64 = 0

    init(file: FileSource) throws {
        self.file = file
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 8)
        guard pilottrace_inflateInit2(&stream, 15 + 32) == Z_OK else {
            input.deallocate()
            throw CaptureFileError(path: file.path, offset: 0, kind: .compression, message: "zlib initialisation failed")
        }
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    var consumed: UInt64 { file.consumed }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !finished, buffer.count > 0 else { return 0 }
        stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = UInt32(buffer.count)
        while stream.avail_out > 0 {
            if stream.avail_in == 0 {
                let n = try file.read(into: input)
                if n == 0 {
                    finished = true
                    break
                }
                stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = UInt32(n)
            }
            let rc = inflate(&stream, Z_NO_FLUSH)
            if rc == Z_STREAM_END {
                // Another gzip member may follow.
                if stream.avail_in == 0 {
                    let n = try file.read(into: input)
                    if n == 0 { finished = true; break }
                    stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_in = UInt32(n)
                }
                inflateReset(&stream)
            } else if rc != Z_OK && rc != Z_BUF_ERROR {
                let produced = total + UInt64(buffer.count - Int(stream.avail_out))
                throw CaptureFileError(
                    path: file.path, offset: produced, kind: .compression,
                    message: "gzip data is corrupt (zlib error \(rc)) after \(produced) decompressed bytes")
            }
        }
        let produced = buffer.count - Int(stream.avail_out)
        total += UInt64(produced)
        return produced
    }
}

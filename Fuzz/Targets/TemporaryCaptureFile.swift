#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An input written to a file of its own, so the capture targets read it through ``CaptureFileReader/init(path:)``
/// exactly as `pilottrace analyze` reads a capture. In `/dev/shm` when there is one (no disk writes at thousands of
/// inputs a second), named by `mkstemp`, so tests replaying inputs in parallel never share a file.
enum TemporaryCaptureFile {
    /// Writes `bytes` to a new file, calls `body` with its path, and removes the file.
    static func with<T>(_ bytes: [UInt8], _ body: (String) throws -> T) rethrows -> T {
        var template = Array((access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp").utf8CString.dropLast())
        template += Array("/pilottrace-fuzz-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        precondition(fd >= 0, "mkstemp failed: \(String(cString: strerror(errno)))")
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { unlink(path) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            precondition(n > 0 || errno == EINTR, "cannot write \(path): \(String(cString: strerror(errno)))")
            if n > 0 { written += n }
        }
        close(fd)
        return try body(path)
    }
}

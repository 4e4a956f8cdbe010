import Foundation
import PilotTraceProtocols

/// Key log files (NSS `SSLKEYLOGFILE` format), read whole and then re-read from where they ended: a client or browser
/// appends a line per TLS session while a live capture runs, and a connection that finds no key asks again
/// (``refresh()``). Only complete lines are taken. The secrets stay in memory; nothing here prints or stores them.
public final class TLSKeyLogFiles {
    public let paths: [String]
    var offsets: [String: UInt64] = [:]
    /// Secrets from the files, plus any added (a pcapng file's Decryption Secrets Blocks).
    public private(set) var log = TLSKeyLog()
    /// Called with the lines each later read of the files finds (`capture --write` puts them into the pcapng file).
    public var onRead: (([UInt8]) -> Void)?
    /// The lines read from the files so far, as they were (for `capture --write`).
    public private(set) var linesRead: [UInt8] = []

    /// Reads every file once.
    /// - Throws: when a file cannot be read (a missing file is an error: it was named).
    public init(paths: [String]) throws {
        self.paths = paths
        for path in paths {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw CocoaError(.fileReadNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        refresh()
    }

    /// Adds secrets from elsewhere (a capture file's Decryption Secrets Block).
    public func add(_ secrets: TLSKeyLog) { log.merge(secrets) }

    /// Reads the lines appended to the files since the last read.
    /// - Returns: whether anything new was read.
    @discardableResult
    public func refresh() -> Bool {
        var grew = false
        for path in paths {
            guard let handle = FileHandle(forReadingAtPath: path) else { continue }
            defer { try? handle.close() }
            var offset = offsets[path] ?? 0
            if let size = try? handle.seekToEnd(), size < offset { offset = 0 }  // truncated or replaced: read it again
            guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.readToEnd(), !data.isEmpty,
                let lastNewline = data.lastIndex(of: 0x0A)
            else { continue }
            let whole = data[data.startIndex...lastNewline]
            log.add(whole)
            linesRead += whole
            onRead?(Array(whole))
            offsets[path] = offset + UInt64(whole.count)
            grew = true
        }
        return grew
    }
}

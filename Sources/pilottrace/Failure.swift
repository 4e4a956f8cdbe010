import ArgumentParser
import Foundation
import GRDB
import NIOCore
import NIOSSL
import PilotTraceCapture
import PilotTraceFlow
import PilotTraceReport
import PilotTraceStore

/// The exit status of every command (README, "Exit status"; `pilottrace --help`).
enum ExitStatus {
    /// The job was done, and nothing found at or above `--fail-on`.
    static let done: Int32 = 0
    /// Findings at or above `--fail-on` (analyze, capture, proxy), or regressions (replay).
    static let findings: Int32 = 1
    /// The job could not be done: an unreadable or corrupt capture, an unusable database, a bad target, an I/O error.
    static let failed: Int32 = 2
    /// Usage: an unknown option or a bad value (ArgumentParser's validation errors).
    static let usage: Int32 = 64
    /// `analyze` was stopped by Ctrl-C or SIGTERM: what was read is stored, the analysis marked interrupted
    /// (128 + SIGINT, as shells report it).
    static let interrupted: Int32 = 130

    /// The table, as README and `--help` show it.
    static let table = """
        Exit status: 0 done (nothing at or above --fail-on); 1 findings at or above --fail-on (analyze, capture, \
        proxy) or regressions (replay); 2 could not do the job (unreadable or corrupt capture, unusable database, bad \
        target, I/O error); 64 usage (unknown option, bad value); 130 analyze stopped by Ctrl-C or SIGTERM (what was \
        read is stored, the analysis marked interrupted).
        """
}

/// The command could not do its job: printed as one line on stderr (`error: …`), exit status 2.
struct Failure: Error, CustomStringConvertible {
    var message: String

    init(_ message: String) { self.message = message }

    /// `context: reason`, the reason in words whatever the error's type.
    init(_ context: String, _ error: any Error) {
        let reason = ErrorText.describe(error)
        message = reason.hasPrefix(context) ? reason : "\(context): \(reason)"
    }

    var description: String { message }
}

/// The findings reached `--fail-on`: exit status 1, after everything was printed and stored.
func checkFailOn(_ threshold: Severity?, _ severities: some Sequence<Severity>) throws {
    guard let threshold else { return }
    if severities.contains(where: { $0 >= threshold }) { throw ExitCode(ExitStatus.findings) }
}

/// Errors of the libraries below, in words: no Swift type, Foundation or NIO dump reaches the user.
enum ErrorText {
    static func describe(_ error: any Error) -> String {
        switch error {
        case let f as Failure:
            return f.message
        case let e as CaptureFileError:
            return oneLine(e.description)
        case let e as PilotTraceStoreError:
            return oneLine(e.description)
        case let e as DatabaseError:
            return database(e)
        case let e as IOError:
            return "\(posix(e.errnoCode)) (\(syscall(e)))"
        case let e as NIOSSLError:
            return tls(e)
        case let e as DecodingError:
            return decoding(e)
        case let e as ChannelError:
            return channel(e)
        case let e as CocoaError:
            return cocoa(e)
        default:
            break
        }
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return posix(Int32(ns.code)) }
        if ns.domain == NSCocoaErrorDomain { return cocoa(CocoaError(CocoaError.Code(rawValue: ns.code), userInfo: ns.userInfo)) }
        // A library error with its own text (LabCloud, the replay, the proxy): its description, on one line.
        let text = String(describing: error)
        if text.contains("Error Domain=") { return oneLine(ns.localizedDescription) }
        return oneLine(text)
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
    }

    static func posix(_ code: Int32) -> String { String(cString: strerror(code)) }

    static func syscall(_ e: IOError) -> String {
        // "bind(descriptor:ptr:bytes:): …": the call's name is what a user can place.
        let d = e.description
        if let paren = d.firstIndex(of: "(") { return String(d[..<paren]) }
        return "errno \(e.errnoCode)"
    }

    static func database(_ e: DatabaseError) -> String {
        switch e.resultCode {
        case .SQLITE_NOTADB: return "not an SQLite database (or it is encrypted or corrupt)"
        case .SQLITE_CORRUPT: return "the SQLite database is corrupt"
        case .SQLITE_READONLY: return "the database is read-only"
        case .SQLITE_CANTOPEN: return "cannot open the database file"
        case .SQLITE_BUSY, .SQLITE_LOCKED: return "the database is busy (another process holds it too long)"
        case .SQLITE_FULL: return "the disk is full"
        case .SQLITE_PERM, .SQLITE_AUTH: return "permission denied by the database"
        default: return "SQLite: \(e.message ?? "error \(e.resultCode.rawValue)")"
        }
    }

    static func tls(_ e: NIOSSLError) -> String {
        switch e {
        case .failedToLoadCertificate: return "cannot load the TLS certificate (not PEM or DER, or unreadable)"
        case .failedToLoadPrivateKey: return "cannot load the TLS private key (not PEM or DER, encrypted, or unreadable)"
        case .handshakeFailed(let reason): return "TLS handshake failed: \(oneLine(String(describing: reason)))"
        case .uncleanShutdown: return "the TLS peer closed the connection without close_notify"
        default: return "TLS: \(oneLine(String(describing: e)))"
        }
    }

    static func decoding(_ e: DecodingError) -> String {
        switch e {
        case .dataCorrupted(let c), .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c):
            let path = c.codingPath.map(\.stringValue).joined(separator: ".")
            let why: String
            if case .keyNotFound(let key, _) = e { why = "missing key \(key.stringValue)" } else { why = c.debugDescription }
            return "not valid\(path.isEmpty ? "" : " at \(path)"): \(oneLine(why))"
        @unknown default:
            return "not valid: \(oneLine(String(describing: e)))"
        }
    }

    static func channel(_ e: ChannelError) -> String {
        switch e {
        case .connectTimeout(let t): return "no answer within \(t.nanoseconds / 1_000_000_000) s"
        case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed, .eof: return "the connection closed"
        default: return oneLine(String(describing: e))
        }
    }

    static func cocoa(_ e: CocoaError) -> String {
        let path = (e.userInfo[NSFilePathErrorKey] as? String) ?? (e.userInfo[NSURLErrorKey] as? URL)?.path
        let what: String
        switch e.code {
        case .fileNoSuchFile, .fileReadNoSuchFile: what = "no such file or directory"
        case .fileWriteNoPermission, .fileReadNoPermission: what = "permission denied"
        case .fileWriteOutOfSpace: what = "the disk is full"
        case .fileWriteVolumeReadOnly: what = "the file system is read-only"
        case .fileWriteFileExists: what = "the file exists"
        case .fileReadCorruptFile: what = "the file is not in the expected format"
        default:
            if let underlying = e.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
                what = posix(Int32(underlying.code))
            } else {
                what = oneLine(e.localizedDescription)
            }
        }
        return path.map { "\($0): \(what)" } ?? what
    }
}

/// Prints text for a person: whatever came from a capture is shown, never obeyed (``SafeText/terminal(_:)``).
func printText(_ text: String, terminator: String = "\n") {
    print(SafeText.terminal(text), terminator: terminator)
}

/// `--fail-on` and `--verbose`, shared by the commands that end with an analysis summary (analyze, capture, proxy).
struct SummaryOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Exit 1 when there are findings at or above this severity (for CI): error, warning or info.", valueName: "severity"))
    var failOn: Severity?

    @Flag(name: .shortAndLong, help: "List every session in the summary (by default: counts, and the first failing sessions when there are many).")
    var verbose = false
}

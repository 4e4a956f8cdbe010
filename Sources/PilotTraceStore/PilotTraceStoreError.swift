/// Why the store could not open a database, write an analysis or hash a file, and where.
///
/// `kind` is a growable set of stable identifiers; `description` names the path so a command can print it as is.
public struct PilotTraceStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The database file or its folder could not be created or opened.
        case cannotOpen = "cannot-open"
        /// The file exists but is not an SQLite database, or is an SQLite database that pilottrace did not create.
        case notAPilotTraceDatabase = "not-a-pilottrace-database"
        /// The database was migrated by a newer pilottrace whose schema this one does not know.
        case newerSchema = "newer-schema"
        /// A read-only open found a database that an older pilottrace wrote: a writing command must migrate it first.
        case olderSchema = "older-schema"
        /// An analysis writer was used after `finish`.
        case writerFinished = "writer-finished"
        /// Writing rows failed (a constraint, a full disk, …); the batch being written was not stored.
        case writeFailed = "write-failed"
        /// A row given to the writer is inconsistent (for example an unknown capture ordinal).
        case invalidRow = "invalid-row"
        /// A file could not be read (hashing).
        case io = "io-error"
    }

    public var kind: Kind
    /// The database file, or the file being hashed.
    public var path: String
    public var message: String

    public init(kind: Kind, path: String, message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

import Foundation

/// Where a PostgreSQL database is: a `postgresql://` URL, parsed.
///
/// `postgresql://user[:password]@host[:port]/database[?sslmode=MODE[&sslrootcert=PATH]]` (or `postgres://…`), as libpq
/// reads URIs (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS): the user info ends
/// at the first `@` (so an `@` or `/` in a user name or password must be written `%40`, `%2F`), the password at the
/// first `:` of the user info; each part is percent-decoded; an IPv6 host is written in brackets (`[::1]`). Unlike
/// libpq, the user, the host and the database must be given (no defaults from the environment), one host only, and
/// only `sslmode` and `sslrootcert` are understood (any other parameter is refused rather than ignored).
///
/// **The password is never printed**: ``description``, ``redacted``, `dump` and every ``PilotTraceStoreError`` about
/// a location show `***` in its place.
public struct PostgresLocation: Sendable, Hashable {
    /// libpq's `sslmode`s that pilottrace supports. `prefer` and `require` encrypt without checking the server's
    /// certificate (libpq does the same when it has no root certificate); `verify-ca` checks the certificate against
    /// `sslrootcert` (else the system's trust roots), `verify-full` also checks that it names the host.
    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        case disable
        case prefer
        case require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var user: String
    /// A secret: never printed (see ``redacted``).
    public var password: String?
    /// A host name or an IP address (an IPv6 address without its brackets).
    public var host: String
    public var port: Int
    public var database: String
    /// `sslmode`; ``TLSMode/disable`` when the URL does not say.
    public var tls: TLSMode
    /// `sslrootcert`: PEM certificates to trust for `verify-ca`/`verify-full`; nil for the system's trust roots.
    public var rootCertificatePath: String?

    public static let defaultPort = 5432

    public init(
        user: String, password: String? = nil, host: String, port: Int = defaultPort, database: String,
        tls: TLSMode = .disable, rootCertificatePath: String? = nil
    ) {
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        self.tls = tls
        self.rootCertificatePath = rootCertificatePath
    }

    /// Whether `s` is meant as a PostgreSQL URL (it starts with `postgresql://` or `postgres://`, in any case), as
    /// opposed to an SQLite file path. Says nothing about whether the rest is valid: ``init(url:)`` does.
    public static func isURL(_ s: String) -> Bool {
        let lower = s.prefix(14).lowercased()
        return lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://")
    }

    /// Parses a `postgresql://` or `postgres://` URL.
    ///
    /// - Throws: ``PilotTraceStoreError`` `.cannotOpen` whose path is the URL with any password replaced by `***`,
    ///   and whose message says what is wrong and what the form is.
    public init(url: String) throws {
        func bad(_ why: String) -> PilotTraceStoreError {
            PilotTraceStoreError(
                kind: .cannotOpen, path: Self.redact(url),
                message: "not a usable PostgreSQL URL: \(why); the form is "
                    + "postgresql://user[:password]@host[:port]/database[?sslmode=disable|prefer|require|verify-ca|verify-full]")
        }
        func decoded(_ part: Substring, _ what: String) throws -> String {
            guard let s = String(part).removingPercentEncoding else { throw bad("the \(what) has an invalid %-escape") }
            return s
        }

        guard Self.isURL(url), let schemeEnd = url.range(of: "://") else {
            throw bad("it does not start with postgresql:// or postgres://")
        }
        var rest = url[schemeEnd.upperBound...]

        // User info: up to the first "@", unless a "/" comes first (libpq's rule).
        guard let at = rest.firstIndex(where: { $0 == "@" || $0 == "/" }), rest[at] == "@" else {
            throw bad("it names no user (user@host)")
        }
        let userInfo = rest[..<at]
        rest = rest[rest.index(after: at)...]
        let userPart: Substring, passwordPart: Substring?
        if let colon = userInfo.firstIndex(of: ":") {
            userPart = userInfo[..<colon]
            passwordPart = userInfo[userInfo.index(after: colon)...]
        } else {
            userPart = userInfo
            passwordPart = nil
        }
        let user = try decoded(userPart, "user name")
        guard !user.isEmpty else { throw bad("it names no user (user@host)") }
        let password = try passwordPart.map { try decoded($0, "password") }

        // Host: bracketed IPv6, else up to ":", "/" or "?".
        let host: String
        if rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { throw bad("the IPv6 host has no closing ]") }
            host = try decoded(rest[rest.index(after: rest.startIndex)..<close], "host")
            rest = rest[rest.index(after: close)...]
        } else {
            let end = rest.firstIndex(where: { $0 == ":" || $0 == "/" || $0 == "?" }) ?? rest.endIndex
            host = try decoded(rest[..<end], "host")
            rest = rest[end...]
        }
        guard !host.isEmpty else { throw bad("it names no host") }
        guard !host.contains(",") else { throw bad("it names several hosts; give one") }

        var port = Self.defaultPort
        if rest.first == ":" {
            rest = rest.dropFirst()
            let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            let digits = rest[..<end]
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let p = Int(digits), (1...65_535).contains(p) else {
                throw bad("the port \"\(digits)\" is not a number from 1 to 65535")
            }
            port = p
            rest = rest[end...]
        }

        guard rest.first == "/" else { throw bad("it names no database (…/database)") }
        rest = rest.dropFirst()
        let queryStart = rest.firstIndex(of: "?") ?? rest.endIndex
        let database = try decoded(rest[..<queryStart], "database name")
        guard !database.isEmpty else { throw bad("it names no database (…/database)") }

        var tls = TLSMode.disable
        var rootCertificatePath: String?
        if queryStart < rest.endIndex {
            for pair in rest[rest.index(after: queryStart)...].split(separator: "&") {
                guard let eq = pair.firstIndex(of: "=") else { throw bad("the parameter \"\(pair)\" has no value") }
                let name = try decoded(pair[..<eq], "parameter name")
                let value = try decoded(pair[pair.index(after: eq)...], "parameter \(name)")
                switch name {
                case "sslmode":
                    guard let mode = TLSMode(rawValue: value) else {
                        throw bad(
                            "sslmode=\(value) is not supported (use "
                                + TLSMode.allCases.map(\.rawValue).joined(separator: ", ") + ")")
                    }
                    tls = mode
                case "sslrootcert":
                    guard !value.isEmpty else { throw bad("sslrootcert is empty") }
                    rootCertificatePath = value
                default:
                    throw bad("the parameter \"\(name)\" is not supported (only sslmode and sslrootcert are)")
                }
            }
        }
        self.init(
            user: user, password: password, host: host, port: port, database: database, tls: tls,
            rootCertificatePath: rootCertificatePath)
    }

    /// The location as a URL with the password (if any) replaced by `***`: what messages and logs show. Always
    /// `postgresql://`, with the port, and `sslmode`/`sslrootcert` when they are not the defaults.
    public var redacted: String {
        var s = "postgresql://" + Self.escape(user)
        if password != nil { s += ":***" }
        s += "@" + (host.contains(":") ? "[\(host)]" : Self.escape(host)) + ":\(port)/" + Self.escape(database)
        var parameters: [String] = []
        if tls != .disable { parameters.append("sslmode=\(tls.rawValue)") }
        if let rootCertificatePath { parameters.append("sslrootcert=\(Self.escape(rootCertificatePath))") }
        if !parameters.isEmpty { s += "?" + parameters.joined(separator: "&") }
        return s
    }

    /// A best-effort redaction of a URL that may not parse: the text between the user's `:` and the `@` becomes `***`.
    static func redact(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        guard let at = rest.firstIndex(where: { $0 == "@" || $0 == "/" }), rest[at] == "@",
            let colon = rest[..<at].firstIndex(of: ":")
        else { return url }
        return String(url[..<rest.index(after: colon)]) + "***" + String(url[at...])
    }

    /// RFC 3986 unreserved characters stay, everything else is %-escaped (so the result parses back).
    static func escape(_ s: String) -> String {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}

extension PostgresLocation: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// ``redacted``: printing a location never shows its password.
    public var description: String { redacted }
    public var debugDescription: String { "PostgresLocation(\(redacted))" }
    /// `dump` and debuggers show the redacted URL, not the password.
    public var customMirror: Mirror { Mirror(self, children: ["url": redacted], displayStyle: .struct) }
}

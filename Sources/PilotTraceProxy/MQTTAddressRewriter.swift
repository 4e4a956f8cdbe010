import Foundation
import PilotTraceProtocols

/// A broker address as the cloud hands it to Pilot 2: `scheme://host:port[/path]` (protocol reference §4.1: `tcp`,
/// `ssl`, `ws`, `wss`; the demo defaults to `tcp://host:1883`).
public struct BrokerAddress: Hashable, Sendable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    public var path: String

    public init(scheme: String, host: String, port: Int, path: String = "") {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
    }

    /// Parses `scheme://host:port/path`, `host:port`, `[v6]:port`; the port defaults by scheme.
    public init?(_ text: String) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        var scheme = "tcp"
        if let r = rest.range(of: "://") {
            scheme = rest[..<r.lowerBound].lowercased()
            rest = rest[r.upperBound...]
        }
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        var host: Substring, portText: Substring?
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            portText = after.hasPrefix(":") ? after.dropFirst() : nil
        } else if let colon = rest.lastIndex(of: ":"), rest.filter({ $0 == ":" }).count == 1 {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { return nil }
        let port: Int
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { return nil }
            port = p
        } else {
            port = Self.defaultPort(scheme)
        }
        self.init(scheme: scheme, host: String(host), port: port, path: path)
    }

    static func defaultPort(_ scheme: String) -> Int {
        switch scheme {
        case "ssl", "tls", "mqtts": 8883
        case "ws": 80
        case "wss": 443
        default: 1883
        }
    }

    /// Whether the address asks for TLS.
    public var usesTLS: Bool { ["ssl", "tls", "mqtts", "wss", "https"].contains(scheme) }
    /// Whether MQTT is carried in WebSocket.
    public var usesWebSocket: Bool { scheme == "ws" || scheme == "wss" }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(h):\(port)\(path)"
    }

    /// The same broker reached through the proxy's listener: its host and port, the original path, and the
    /// scheme's TLS set by whether the listener terminates TLS (`tcp`↔`ssl`, `ws`↔`wss`, `mqtt`↔`mqtts`).
    public func through(host: String, port: Int, tls: Bool) -> BrokerAddress {
        let plain: [String: String] = ["ssl": "tcp", "tls": "tcp", "mqtts": "mqtt", "wss": "ws"]
        let secure: [String: String] = ["tcp": "ssl", "mqtt": "mqtts", "ws": "wss"]
        var s = scheme
        if tls { s = secure[s] ?? s } else { s = plain[s] ?? s }
        return BrokerAddress(scheme: s, host: host, port: port, path: path)
    }
}

/// Rewrites the broker address in a JSON body: every `mqtt_addr` string, and `host` inside a `thing` object (a
/// cloud that hands out the `thing` module's parameters whole). Every other byte is kept as it was.
///
/// Pure. The body is scanned as JSON tokens (strings with their escapes, nesting), not searched as text, so a
/// value that merely mentions `mqtt_addr` is left alone. A body that is not JSON is returned unchanged.
public enum MQTTAddressRewriter {
    public struct Replacement: Hashable, Sendable {
        /// The member's key path, e.g. `data.mqtt_addr`.
        public var key: String
        public var original: String
        public var rewritten: String
    }

    /// - Parameters:
    ///   - body: the response body (UTF-8 JSON).
    ///   - rewrite: the new value for an original address (nil leaves that one alone).
    /// - Returns: the new body and what was replaced (empty when nothing was).
    public static func rewrite(_ body: [UInt8], _ rewrite: (String) -> String?) -> (body: [UInt8], replacements: [Replacement]) {
        var scanner = Scanner(bytes: body)
        guard let targets = try? scanner.scan(), !targets.isEmpty else { return (body, []) }
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 32)
        var replacements: [Replacement] = []
        var cursor = 0
        for t in targets {
            guard let new = rewrite(t.value), new != t.value else { continue }
            out += body[cursor..<t.range.lowerBound]
            out += Array(JSONValue.quoted(new).utf8)
            cursor = t.range.upperBound
            replacements.append(Replacement(key: t.key, original: t.value, rewritten: new))
        }
        guard !replacements.isEmpty else { return (body, []) }
        out += body[cursor...]
        return (out, replacements)
    }

    struct Target {
        var key: String
        var value: String
        var range: Range<Int>
    }

    enum ScanError: Error { case malformed, tooDeep }

    /// A JSON tokenizer that reports the string values to rewrite, with their byte ranges.
    struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var targets: [Target] = []
        /// Object keys from the root to the current value.
        var path: [String] = []

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func scan() throws -> [Target] {
            skipSpace()
            try value(depth: 0)
            skipSpace()
            guard i == bytes.count else { throw ScanError.malformed }
            return targets
        }

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        }

        mutating func value(depth: Int) throws {
            guard depth < 256 else { throw ScanError.tooDeep }
            guard i < bytes.count else { throw ScanError.malformed }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw ScanError.malformed }
                    let key = try string().value
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw ScanError.malformed }
                    i += 1
                    skipSpace()
                    path.append(key)
                    if i < bytes.count, bytes[i] == UInt8(ascii: "\""), isTarget(key) {
                        let (v, r) = try string()
                        targets.append(Target(key: path.joined(separator: "."), value: v, range: r))
                    } else {
                        try value(depth: depth + 1)
                    }
                    path.removeLast()
                    skipSpace()
                    guard i < bytes.count else { throw ScanError.malformed }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "}") else { throw ScanError.malformed }
                    i += 1
                    return
                }
            case UInt8(ascii: "["):
                i += 1
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return }
                while true {
                    skipSpace()
                    path.append("[]")
                    try value(depth: depth + 1)
                    path.removeLast()
                    skipSpace()
                    guard i < bytes.count else { throw ScanError.malformed }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "]") else { throw ScanError.malformed }
                    i += 1
                    return
                }
            case UInt8(ascii: "\""):
                _ = try string()
            default:
                // number, true, false, null: a run of literal characters
                let start = i
                while i < bytes.count, !([0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(bytes[i])) { i += 1 }
                guard i > start else { throw ScanError.malformed }
            }
        }

        func isTarget(_ key: String) -> Bool {
            key == "mqtt_addr" || (key == "host" && path.count >= 2 && path[path.count - 2] == "thing")
        }

        /// A string token at `i`: its decoded value and its byte range (quotes included).
        mutating func string() throws -> (value: String, range: Range<Int>) {
            let start = i
            i += 1
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flushRaw() {
                if !raw.isEmpty { scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars); raw.removeAll() }
            }
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    i += 1
                    flushRaw()
                    return (String(scalars), start..<i)
                }
                if b == UInt8(ascii: "\\") {
                    flushRaw()
                    guard i + 1 < bytes.count else { throw ScanError.malformed }
                    let e = bytes[i + 1]
                    i += 2
                    switch e {
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "b"): scalars.append("\u{8}")
                    case UInt8(ascii: "f"): scalars.append("\u{C}")
                    case UInt8(ascii: "u"):
                        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16) else {
                            throw ScanError.malformed
                        }
                        i += 4
                        scalars.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                    default: scalars.append(Unicode.Scalar(e))  // \" \\ \/
                    }
                    continue
                }
                raw.append(b)
                i += 1
            }
            throw ScanError.malformed
        }
    }
}

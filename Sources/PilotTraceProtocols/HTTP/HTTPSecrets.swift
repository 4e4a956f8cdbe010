/// Masks credentials in what the decoders show: tokens must not end up in reports, logs or screenshots unless
/// asked for.
///
/// Masked: the values of `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` (names and attributes
/// kept) and any field whose name says token, secret, password or API key (`X-Auth-Token`); query and form
/// parameters and JSON members named like that (`x-auth-token`, `access_token`, `password`).
public enum HTTPSecrets {
    /// What a masked value is replaced with.
    public static let mask = "***"

    private static let secretWords = ["token", "password", "passwd", "secret", "apikey", "api_key", "api-key", "signature", "credential"]

    /// Whether a field's value is a credential.
    public static func isSecretField(_ name: String) -> Bool {
        let n = name.lowercased()
        switch n {
        case "authorization", "proxy-authorization", "cookie", "set-cookie": return true
        default: return secretWords.contains { n.contains($0) }
        }
    }

    /// Whether a query parameter, form field or JSON member with this name holds a credential.
    public static func isSecretParameter(_ name: String) -> Bool {
        let n = name.lowercased()
        return secretWords.contains { n.contains($0) } || n == "pwd" || n == "sig"
    }

    /// The field's value with its credential masked (the value itself when the field is not secret).
    public static func maskedValue(field name: String, value: String) -> String {
        switch name.lowercased() {
        case "authorization", "proxy-authorization":
            // RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]; keep the scheme.
            let parts = value.split(separator: " ", maxSplits: 1)
            return parts.count == 2 ? "\(parts[0]) \(mask)" : mask
        case "cookie":
            return value.split(separator: ";").map { maskPair(HTTPHeaders.trim($0)) }.joined(separator: "; ")
        case "set-cookie":
            var parts = value.split(separator: ";", omittingEmptySubsequences: false).map { HTTPHeaders.trim($0) }
            if !parts.isEmpty { parts[0] = maskPair(parts[0]) }
            return parts.joined(separator: "; ")
        default:
            return isSecretField(name) ? mask : value
        }
    }

    private static func maskPair(_ pair: String) -> String {
        guard let eq = pair.firstIndex(of: "=") else { return mask }
        return "\(pair[..<eq])=\(mask)"
    }

    /// A request-target with the values of secret query parameters masked.
    public static func maskedTarget(_ target: String) -> String {
        guard let q = target.firstIndex(of: "?") else { return target }
        return String(target[...q]) + maskedQuery(String(target[target.index(after: q)...]))
    }

    /// `name=value&…` with the values of secret parameters masked.
    public static func maskedQuery(_ query: String) -> String {
        query.split(separator: "&", omittingEmptySubsequences: false).map { item -> String in
            guard let eq = item.firstIndex(of: "=") else { return String(item) }
            let name = String(item[..<eq])
            let decodedName = name.replacingPercentEscapesLossy()
            return isSecretParameter(decodedName) ? "\(name)=\(mask)" : String(item)
        }.joined(separator: "&")
    }

    /// The document with the values of secret members masked, at any depth.
    public static func maskedJSON(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(
                members.map { key, v in
                    if isSecretParameter(key), !v.isContainer { return (key, .string(mask)) }
                    return (key, maskedJSON(v))
                })
        case .array(let elements):
            return .array(elements.map(maskedJSON))
        default:
            return value
        }
    }
}

extension JSONValue {
    fileprivate var isContainer: Bool {
        switch self {
        case .array, .object: true
        default: false
        }
    }
}

extension String {
    /// `%XX` decoded where it forms valid UTF-8; anything else left as is.
    fileprivate func replacingPercentEscapesLossy() -> String {
        guard contains("%") else { return self }
        var out: [UInt8] = []
        let u = Array(utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "%"), i + 2 < u.count, let h = HTTPHeadParser.hexValue(u[i + 1]),
                let l = HTTPHeadParser.hexValue(u[i + 2])
            {
                out.append(UInt8(h * 16 + l))
                i += 3
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - Display

extension HTTPRequest {
    /// The request as a person reads it: request line, fields, then the body (JSON pretty-printed, text as is,
    /// binary summarised), credentials masked unless `showSecrets`.
    /// - Parameters:
    ///   - showSecrets: show credentials as sent.
    ///   - bodyLimit: the most characters of body text shown.
    public func display(showSecrets: Bool = false, bodyLimit: Int = 4096) -> String {
        let target = showSecrets ? head.target : HTTPSecrets.maskedTarget(head.target)
        var out = "\(head.method) \(target) \(head.version)\n"
        HTTPDisplay.fields(head.headers, showSecrets: showSecrets, into: &out)
        HTTPDisplay.body(body, headers: head.headers, trailers: trailers, incomplete: incomplete, showSecrets: showSecrets, limit: bodyLimit, into: &out)
        return out
    }
}

extension HTTPResponse {
    /// The response as a person reads it, credentials masked unless `showSecrets` (see
    /// ``HTTPRequest/display(showSecrets:bodyLimit:)``).
    public func display(showSecrets: Bool = false, bodyLimit: Int = 4096) -> String {
        var out = "\(head.version) \(head.status)\(head.reason.isEmpty ? "" : " " + head.reason)\n"
        HTTPDisplay.fields(head.headers, showSecrets: showSecrets, into: &out)
        HTTPDisplay.body(body, headers: head.headers, trailers: trailers, incomplete: incomplete, showSecrets: showSecrets, limit: bodyLimit, into: &out)
        return out
    }
}

extension HTTPUpgrade {
    /// One line: protocol, subprotocol and target (its token masked unless `showSecrets`).
    public func display(showSecrets: Bool = false) -> String {
        var out = "upgrade to \(protocolName)"
        if let subprotocol { out += " (subprotocol \(subprotocol))" }
        if let target { out += " for \(showSecrets ? target : HTTPSecrets.maskedTarget(target))" }
        return out
    }
}

extension WebSocketMessage {
    /// The message as a person reads it: kind, length and content (JSON pretty-printed with secret members
    /// masked unless `showSecrets`; binary payloads previewed only with `showSecrets`).
    public func display(showSecrets: Bool = false, limit: Int = 4096) -> String {
        var out = "\(direction.arrow) \(opcode) \(length) bytes"
        if frameCount > 1 { out += " in \(frameCount) frames" }
        if truncated { out += " (truncated)" }
        if incomplete { out += " (incomplete, \(lostBytes) bytes lost)" }
        switch kind {
        case .close(let code, let reason):
            out += code.map { " code \($0)" } ?? " without status"
            if !reason.isEmpty { out += " reason \"\(reason)\"" }
        case .text:
            if let json {
                out += "\n" + (showSecrets ? json : HTTPSecrets.maskedJSON(json)).pretty()
            } else if let text {
                out += "\n" + HTTPDisplay.clip(text, limit)
            }
        case .binary, .ping, .pong:
            // Binary payloads are not previewed unless asked: an MQTT CONNECT carries its password in the clear.
            if showSecrets, !payload.isEmpty { out += "\n" + HTTPDisplay.hexPreview(payload) }
        }
        return out
    }
}

enum HTTPDisplay {
    static func fields(_ headers: HTTPHeaders, showSecrets: Bool, into out: inout String) {
        for f in headers {
            out += "\(f.name): \(showSecrets ? f.value : HTTPSecrets.maskedValue(field: f.name, value: f.value))\n"
        }
    }

    static func body(
        _ body: HTTPBody, headers: HTTPHeaders, trailers: HTTPHeaders, incomplete: HTTPIncompleteness?,
        showSecrets: Bool, limit: Int, into out: inout String
    ) {
        if let incomplete {
            out += "[incomplete: \(incomplete.reason.rawValue), \(incomplete.lostBytes) bytes lost]\n"
        }
        guard !body.isEmpty else { return }
        out += "\n"
        var notes: [String] = []
        if body.truncated { notes.append("truncated: \(body.bytes.count) of \(body.length) bytes kept") }
        if !body.contentCodings.isEmpty {
            notes.append(body.decodingFailure.map { "not decoded: \($0)" } ?? "\(body.contentCodings.joined(separator: ", ")) decoded")
        }
        if let json = body.json {
            out += (showSecrets ? json : HTTPSecrets.maskedJSON(json)).pretty() + "\n"
        } else {
            let content = body.content
            if let text = String(validating: content, as: UTF8.self),
                !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\r" && $0 != "\t" })
            {
                let form = HTTPStreamParser.mediaType(headers["Content-Type"]) == "application/x-www-form-urlencoded"
                out += HTTPDisplay.clip(form && !showSecrets ? HTTPSecrets.maskedQuery(text) : text, limit) + "\n"
            } else {
                out += hexPreview(content) + "\n"
            }
        }
        if !notes.isEmpty { out += "[\(notes.joined(separator: "; "))]\n" }
        if !trailers.isEmpty {
            out += "\n"
            fields(trailers, showSecrets: showSecrets, into: &out)
        }
    }

    static func clip(_ s: String, _ limit: Int) -> String {
        s.count <= limit ? s : String(s.prefix(limit)) + "… [\(s.count - limit) more characters]"
    }

    static func hexPreview(_ bytes: [UInt8], max: Int = 32) -> String {
        let hex = bytes.prefix(max).map { b -> String in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: " ")
        return "[\(bytes.count) bytes: \(hex)\(bytes.count > max ? " …" : "")]"
    }
}

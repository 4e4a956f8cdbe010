import PilotTraceWire

/// One-line summaries of decoded messages, secrets masked unless asked.
public enum MessageSummary {
    /// `POST /manage/api/v1/login (application/json, 61 B)`
    public static func request(_ r: HTTPRequest, showSecrets: Bool) -> String {
        let target = showSecrets ? r.head.target : HTTPSecrets.maskedTarget(r.head.target)
        return "\(r.method) \(target)" + bodyNote(r.body, r.headers) + incompleteNote(r.incomplete)
    }

    /// `200 OK (application/json, 345 B) ← POST /manage/api/v1/login`
    public static func response(_ r: HTTPResponse, request: HTTPRequest?, showSecrets: Bool) -> String {
        var s = "\(r.status)\(r.head.reason.isEmpty ? "" : " " + r.head.reason)" + bodyNote(r.body, r.headers)
        if let request {
            let target = showSecrets ? request.head.target : HTTPSecrets.maskedTarget(request.head.target)
            s += " ← \(request.method) \(target)"
        } else if r.requestIndex == nil {
            s += " (its request was not captured)"
        }
        return s + incompleteNote(r.incomplete)
    }

    static func bodyNote(_ body: HTTPBody, _ headers: HTTPHeaders) -> String {
        var parts: [String] = []
        if let type = headers["content-type"] { parts.append(type.split(separator: ";").first.map(String.init) ?? type) }
        if body.length > 0 || headers["content-length"] != nil { parts.append("\(body.length) B") }
        if !body.contentCodings.isEmpty { parts.append(body.contentCodings.joined(separator: ",")) }
        if body.truncated { parts.append("stored truncated") }
        if body.jsonError != nil { parts.append("invalid JSON") }
        return parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"
    }

    static func incompleteNote(_ i: HTTPIncompleteness?) -> String {
        guard let i else { return "" }
        return " [incomplete: \(i.reason.rawValue)\(i.lostBytes > 0 ? ", \(i.lostBytes) B lost" : "")]"
    }

    /// `text 123 B {"biz_code":"device_osd",…}`, `close 1000 normal closure`, `binary 45 B`
    public static func webSocket(_ m: WebSocketMessage, showSecrets: Bool, preview: Int = 96) -> String {
        var s: String
        switch m.kind {
        case .text:
            s = "text \(m.length) B"
            if let json = m.json {
                s += " " + clip((showSecrets ? json : HTTPSecrets.maskedJSON(json)).compact, preview)
            } else if let t = m.text {
                s += " " + clip(t, preview)
            }
        case .binary: s = "binary \(m.length) B"
        case .close(let code, let reason):
            s = "close"
            if let code { s += " \(code.rawValue)\(code.name.map { " \($0)" } ?? "")" }
            if !reason.isEmpty { s += " \"\(reason)\"" }
        case .ping: s = "ping \(m.length) B"
        case .pong: s = "pong \(m.length) B"
        }
        if m.frameCount > 1 { s += " in \(m.frameCount) frames" }
        if m.truncated { s += " (stored truncated)" }
        if m.incomplete { s += " [incomplete, \(m.lostBytes) B lost]" }
        return s
    }

    /// The MQTT packet's summary, with a note when the version was assumed.
    public static func mqtt(_ r: MQTTPacketRecord, showSecrets: Bool) -> String {
        r.summary(showSecrets: showSecrets) + (r.versionAssumed ? " (version \(r.version) assumed)" : "")
    }

    static func clip(_ s: String, _ n: Int) -> String {
        s.count <= n ? s : String(s.prefix(n)) + "…"
    }
}

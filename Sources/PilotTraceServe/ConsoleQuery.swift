import Foundation
import PilotTraceStore

/// What a sessions page or `/api/sessions` was asked for: the filter from the query string, and the page.
struct ConsoleQuery: Sendable, Hashable {
    var filter = SessionFilter()
    var offset = 0
    var limit: Int

    static let states = ["online", "offline", "failed", "incomplete"]
    static let severities = ["error", "warning", "info"]

    /// Reads `state`, `severity`, `rule`, `site`, `from`, `to` (UTC: `2026-11-27`, `2026-11-27T11:10`,
    /// `2026-11-27T11:10:57Z`, or seconds since the epoch), `q`, `offset` and `limit`; unknown states and severities
    /// and unreadable times do not filter.
    init(_ parameters: [String: String], defaultLimit: Int, maximumLimit: Int) {
        func value(_ name: String) -> String? {
            guard let v = parameters[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        filter.state = value("state").flatMap { Self.states.contains($0) ? $0 : nil }
        filter.minSeverity = value("severity").flatMap { Self.severities.contains($0) ? $0 : nil }
        filter.rule = value("rule")
        filter.site = parameters["site"].flatMap { $0.isEmpty ? nil : $0 }
        filter.from = value("from").flatMap(Self.time)
        filter.to = value("to").flatMap(Self.time)
        filter.search = value("q")
        offset = max(0, value("offset").flatMap { Int($0) } ?? 0)
        limit = min(maximumLimit, max(1, value("limit").flatMap { Int($0) } ?? defaultLimit))
    }

    /// A time given in the query: a UTC date, date and time (what `<input type="datetime-local">` sends), RFC 3339, or
    /// seconds since the epoch.
    static func time(_ text: String) -> Double? {
        if let seconds = Double(text) { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        for format in ["yyyy-MM-dd'T'HH:mm:ss.SSSXXXXX", "yyyy-MM-dd'T'HH:mm:ssXXXXX", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd"] {
            formatter.dateFormat = format
            // To the millisecond: the formatter's arithmetic leaves noise below it.
            if let date = formatter.date(from: text) { return (date.timeIntervalSince1970 * 1000).rounded() / 1000 }
        }
        return nil
    }

    /// The query string that asks for the same filter (and `offset` when not 0), for links and the live feed.
    func queryString(offset: Int? = nil) -> String {
        var items: [(String, String)] = []
        if let s = filter.state { items.append(("state", s)) }
        if let s = filter.minSeverity { items.append(("severity", s)) }
        if let r = filter.rule { items.append(("rule", r)) }
        if let s = filter.site { items.append(("site", s)) }
        if let f = filter.from { items.append(("from", Self.inputTime(f))) }
        if let t = filter.to { items.append(("to", Self.inputTime(t))) }
        if let q = filter.search { items.append(("q", q)) }
        if let offset, offset > 0 { items.append(("offset", String(offset))) }
        return items.map { "\($0.0)=\(Self.percentEncoded($0.1))" }.joined(separator: "&")
    }

    /// A time as `<input type="datetime-local" step="1">` shows it (UTC).
    static func inputTime(_ t: Double) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: t))
    }

    static func percentEncoded(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

extension HTTPConnectionDecoder {
    /// The longest method token recognised by content (the HTTP/2 preface `PRI * HTTP/2.0` fails the version).
    static let maxMethodBytes = 24

    /// The longest request or status line that detection waits for before saying no.
    public static let maxDetectableLineBytes = 8 * 1024

    /// Whether `prefix` starts with an HTTP/1.x request line: an upper-case method token, SP, a request-target, SP,
    /// `HTTP/1.` DIGIT, CRLF or a bare LF (RFC 9112 §3, §2.2).
    ///
    /// For content-based protocol detection and for resynchronising after a gap.
    /// - Returns: true or false, or nil when the prefix is too short to tell.
    public static func looksLikeRequest(_ prefix: [UInt8]) -> Bool? {
        matchRequestLine(prefix[...], maxLineBytes: maxDetectableLineBytes)
    }

    /// Whether `prefix` starts with an HTTP/1.x status line: `HTTP/1.` DIGIT, SP, a three-digit status code
    /// from 100 to 599, then CRLF or SP, a reason phrase and CRLF; a bare LF is accepted for CRLF (RFC 9112 §4, §2.2).
    /// - Returns: true or false, or nil when the prefix is too short to tell.
    public static func looksLikeStatusLine(_ prefix: [UInt8]) -> Bool? {
        matchStatusLine(prefix[...], maxLineBytes: maxDetectableLineBytes)
    }

    static func matchRequestLine(_ p: ArraySlice<UInt8>, maxLineBytes: Int) -> Bool? {
        var i = p.startIndex
        // Method: an upper-case token (RFC 9110 §9.1: methods are case-sensitive and registered in upper case;
        // extension methods such as PROPFIND or CCM_POST exist). The rest of the line keeps false positives out.
        func isMethodByte(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
        while i < p.endIndex, i - p.startIndex < maxMethodBytes, isMethodByte(p[i]) { i += 1 }
        let method = p[p.startIndex..<i]
        if i == p.endIndex { return method.count < maxMethodBytes ? nil : false }
        guard p[i] == UInt8(ascii: " "), !method.isEmpty, p[p.startIndex] != UInt8(ascii: "_") else { return false }
        i += 1
        // Request-target: origin-form, absolute-form, authority-form or asterisk; visible ASCII.
        let targetStart = i
        if i < p.endIndex {
            let f = p[i]
            let plausible =
                f == UInt8(ascii: "/") || f == UInt8(ascii: "*")
                || (f >= UInt8(ascii: "a") && f <= UInt8(ascii: "z")) || (f >= UInt8(ascii: "A") && f <= UInt8(ascii: "Z"))
                || (f >= UInt8(ascii: "0") && f <= UInt8(ascii: "9")) || f == UInt8(ascii: "[")
            guard plausible else { return false }
        }
        while i < p.endIndex, p[i] > 0x20, p[i] < 0x7F {
            i += 1
            if i - p.startIndex > maxLineBytes { return false }
        }
        if i == p.endIndex { return nil }
        guard p[i] == UInt8(ascii: " "), i > targetStart else { return false }
        i += 1
        switch matchLiteral(p, from: i, "HTTP/1.#") {
        case true?: return matchLineEnd(p, from: i + 8)
        case let other: return other
        }
    }

    static func matchStatusLine(_ p: ArraySlice<UInt8>, maxLineBytes: Int) -> Bool? {
        var i = p.startIndex
        switch matchLiteral(p, from: i, "HTTP/1.# ") {
        case false?: return false
        case nil: return nil
        case true?: i += 9
        }
        // Status code: 100–599.
        for k in 0..<3 {
            guard i < p.endIndex else { return nil }
            let b = p[i]
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return false }
            if k == 0, b < UInt8(ascii: "1") || b > UInt8(ascii: "5") { return false }
            i += 1
        }
        guard i < p.endIndex else { return nil }
        if p[i] == UInt8(ascii: "\r") || p[i] == UInt8(ascii: "\n") { return matchLineEnd(p, from: i) }
        guard p[i] == UInt8(ascii: " ") else { return false }
        i += 1
        // Reason phrase: HTAB / SP / VCHAR / obs-text.
        while i < p.endIndex, p[i] == 0x09 || (p[i] >= 0x20 && p[i] != 0x7F) {
            i += 1
            if i - p.startIndex > maxLineBytes { return false }
        }
        return matchLineEnd(p, from: i)
    }

    /// CRLF, or a bare LF, which RFC 9112 §2.2 lets a recipient accept as a line terminator.
    private static func matchLineEnd(_ p: ArraySlice<UInt8>, from i: Int) -> Bool? {
        guard i < p.endIndex else { return nil }
        if p[i] == UInt8(ascii: "\n") { return true }
        return matchLiteral(p, from: i, "\r\n")
    }

    /// Matches `pattern` at `from` (`#` stands for one digit): nil when the bytes end first.
    private static func matchLiteral(_ p: ArraySlice<UInt8>, from start: Int, _ pattern: StaticString) -> Bool? {
        var i = start
        var q = pattern.utf8Start
        for _ in 0..<pattern.utf8CodeUnitCount {
            guard i < p.endIndex else { return nil }
            let want = q.pointee
            if want == UInt8(ascii: "#") {
                guard p[i] >= UInt8(ascii: "0"), p[i] <= UInt8(ascii: "9") else { return false }
            } else if p[i] != want {
                return false
            }
            i += 1
            q += 1
        }
        return true
    }
}

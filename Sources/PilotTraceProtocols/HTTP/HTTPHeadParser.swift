/// Parses complete start lines and field sections (RFC 9112 §2–§5). Framing (where a head ends) is the stream
/// parser's job; this only turns the framed bytes into values.
enum HTTPHeadParser {
    struct Failure: Error {
        var code: HTTPDecodingError.Code
        var message: String
    }

    static let sp = UInt8(ascii: " ")
    static let htab = UInt8(ascii: "\t")
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let colon = UInt8(ascii: ":")

    /// RFC 9110 §5.6.2: tchar.
    static func isTChar(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Field and start-line text: UTF-8 when it is valid, else ISO 8859-1 (RFC 9110 §5.5 obs-text).
    static func string(_ bytes: ArraySlice<UInt8>) -> String {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
    }

    /// Splits a framed head into lines without their CRLF (or bare LF, noted as an anomaly); the bytes after
    /// the last LF are not a line.
    static func lines(_ bytes: ArraySlice<UInt8>, anomalies: inout [HTTPAnomaly]) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var bare = false
        for i in bytes.indices where bytes[i] == lf {
            if i > start, bytes[i - 1] == cr {
                out.append(bytes[start..<(i - 1)])
            } else {
                bare = true
                out.append(bytes[start..<i])
            }
            start = i + 1
        }
        if bare { note(.bareLineFeed, in: &anomalies) }
        return out
    }

    static func note(_ a: HTTPAnomaly, in anomalies: inout [HTTPAnomaly]) {
        if !anomalies.contains(a) { anomalies.append(a) }
    }

    /// RFC 9112 §2.3: `HTTP/` DIGIT `.` DIGIT.
    static func version(_ v: ArraySlice<UInt8>) -> HTTPVersion? {
        let b = Array(v)
        guard b.count == 8, b[0..<5].elementsEqual("HTTP/".utf8), b[5] >= 0x30, b[5] <= 0x39,
            b[6] == UInt8(ascii: "."), b[7] >= 0x30, b[7] <= 0x39
        else { return nil }
        return HTTPVersion(major: Int(b[5] - 0x30), minor: Int(b[7] - 0x30))
    }

    /// Splits on runs of SP/HTAB; `irregular` when any separator is not a single SP.
    private static func words(_ line: ArraySlice<UInt8>, limit: Int) -> (words: [ArraySlice<UInt8>], irregular: Bool) {
        var words: [ArraySlice<UInt8>] = []
        var irregular = false
        var i = line.startIndex
        if i < line.endIndex, line[i] == sp || line[i] == htab { irregular = true }
        while i < line.endIndex {
            while i < line.endIndex, line[i] == sp || line[i] == htab { i += 1 }
            guard i < line.endIndex else { irregular = true; break }
            if words.count == limit - 1 {
                words.append(line[i...])
                break
            }
            var j = i
            while j < line.endIndex, line[j] != sp, line[j] != htab { j += 1 }
            words.append(line[i..<j])
            if j < line.endIndex {
                var k = j
                while k < line.endIndex, line[k] == sp || line[k] == htab { k += 1 }
                if k - j != 1 || line[j] != sp { irregular = true }
            }
            i = j
        }
        return (words, irregular)
    }

    /// RFC 9112 §3: `method SP request-target SP HTTP-version`.
    static func requestLine(_ line: ArraySlice<UInt8>) -> Result<(method: String, target: String, version: HTTPVersion, irregular: Bool), Failure> {
        let (parts, irregular) = words(line, limit: 4)
        guard parts.count == 3 else {
            return .failure(Failure(code: .invalidRequestLine, message: "request line has \(parts.count) parts, expected 3"))
        }
        guard parts[0].allSatisfy(isTChar) else {
            return .failure(Failure(code: .invalidRequestLine, message: "method is not a token"))
        }
        guard parts[1].allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            return .failure(Failure(code: .invalidRequestLine, message: "request-target contains control characters"))
        }
        guard let version = version(parts[2]) else {
            return .failure(Failure(code: .invalidRequestLine, message: "malformed HTTP-version"))
        }
        guard version.major == 1 else {
            return .failure(Failure(code: .unsupportedVersion, message: "\(version) is not HTTP/1.x"))
        }
        return .success((string(parts[0]), string(parts[1]), version, irregular))
    }

    /// RFC 9112 §4: `HTTP-version SP status-code SP [reason-phrase]` (a missing SP before an empty reason is
    /// tolerated).
    static func statusLine(_ line: ArraySlice<UInt8>) -> Result<(version: HTTPVersion, status: Int, reason: String), Failure> {
        let b = line
        let s = b.startIndex
        guard b.count >= 12, let version = version(b[s..<(s + 8)]), b[s + 8] == sp else {
            return .failure(Failure(code: .invalidStatusLine, message: "status line does not start with HTTP/x.y and a status code"))
        }
        guard version.major == 1 else {
            return .failure(Failure(code: .unsupportedVersion, message: "\(version) is not HTTP/1.x"))
        }
        let digits = b[(s + 9)..<(s + 12)]
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), digits.first! != 0x30 else {
            return .failure(Failure(code: .invalidStatusLine, message: "status code is not three digits"))
        }
        let status = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        var reason = ""
        if b.count > 12 {
            guard b[s + 12] == sp || b[s + 12] == htab else {
                return .failure(Failure(code: .invalidStatusLine, message: "no space after the status code"))
            }
            reason = string(b[(s + 13)...])
        }
        return .success((version, status, reason))
    }

    /// RFC 9112 §5: field lines (after the start line). Invalid lines are skipped and noted; obs-folds are joined.
    static func fields(_ lines: ArraySlice<ArraySlice<UInt8>>, anomalies: inout [HTTPAnomaly]) -> HTTPHeaders {
        var fields: [HTTPHeaders.Field] = []
        for line in lines {
            guard let first = line.first else { continue }
            if first == sp || first == htab {
                // RFC 9112 §5.2: obs-fold; replace with SP. Before any field it is invalid (§2.2).
                guard !fields.isEmpty else {
                    note(.invalidFieldLine, in: &anomalies)
                    continue
                }
                note(.obsoleteLineFolding, in: &anomalies)
                let more = HTTPHeaders.trim(Substring(string(line)))
                if !more.isEmpty {
                    let v = fields[fields.count - 1].value
                    fields[fields.count - 1].value = v.isEmpty ? more : v + " " + more
                }
                continue
            }
            guard let colon = line.firstIndex(of: colon) else {
                note(.invalidFieldLine, in: &anomalies)
                continue
            }
            var nameEnd = colon
            while nameEnd > line.startIndex, line[nameEnd - 1] == sp || line[nameEnd - 1] == htab { nameEnd -= 1 }
            if nameEnd != colon { note(.whitespaceBeforeColon, in: &anomalies) }
            let name = line[line.startIndex..<nameEnd]
            guard !name.isEmpty, name.allSatisfy(isTChar) else {
                note(.invalidFieldLine, in: &anomalies)
                continue
            }
            fields.append(HTTPHeaders.Field(name: string(name), value: HTTPHeaders.trim(Substring(string(line[(colon + 1)...])))))
        }
        return HTTPHeaders(fields)
    }

    /// RFC 9112 §6.3 (5): the Content-Length, nil when absent.
    static func contentLength(_ headers: HTTPHeaders, anomalies: inout [HTTPAnomaly]) -> Result<Int?, Failure> {
        let values = headers.values("Content-Length")
        guard !values.isEmpty else { return .success(nil) }
        var result: Int?
        var count = 0
        for value in values {
            for item in value.split(separator: ",", omittingEmptySubsequences: false) {
                let t = HTTPHeaders.trim(item)
                guard !t.isEmpty, t.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    return .failure(Failure(code: .invalidContentLength, message: "Content-Length '\(value)' is not a number"))
                }
                guard let n = Int(t) else {
                    return .failure(Failure(code: .invalidContentLength, message: "Content-Length \(t) is too large"))
                }
                if let r = result, r != n {
                    return .failure(Failure(code: .invalidContentLength, message: "conflicting Content-Length values \(r) and \(n)"))
                }
                result = n
                count += 1
            }
        }
        if count > 1 { note(.repeatedContentLength, in: &anomalies) }
        return .success(result)
    }

    /// RFC 9112 §9.3: whether the connection persists after a message with these headers and version.
    static func keepAlive(version: HTTPVersion, headers: HTTPHeaders) -> Bool {
        let connection = headers.tokens("Connection")
        if connection.contains("close") { return false }
        if version >= .http11 { return true }
        return connection.contains("keep-alive")
    }

    /// RFC 7230 §3.3.1 chunk-size `[chunk-ext]` line (without its line ending).
    enum ChunkLine {
        case size(Int, extensions: String?)
        case failure(Failure)
    }

    static func chunkLine(_ line: ArraySlice<UInt8>) -> ChunkLine {
        var size = 0
        var i = line.startIndex
        while i < line.endIndex, let d = hexValue(line[i]) {
            let (shifted, o1) = size.multipliedReportingOverflow(by: 16)
            let (next, o2) = shifted.addingReportingOverflow(d)
            if o1 || o2 {
                return .failure(Failure(code: .chunkSizeOverflow, message: "chunk size \(string(line.prefix(40))) does not fit in 63 bits"))
            }
            size = next
            i += 1
        }
        guard i > line.startIndex else {
            return .failure(Failure(code: .invalidChunkSize, message: "chunk-size line does not start with a hex digit"))
        }
        // RFC 9112 §7.1.1: BWS before ';' is tolerated.
        var j = i
        while j < line.endIndex, line[j] == sp || line[j] == htab { j += 1 }
        if j == line.endIndex { return .size(size, extensions: nil) }
        guard line[j] == UInt8(ascii: ";") else {
            return .failure(Failure(code: .invalidChunkSize, message: "unexpected \(JSONParser.describe(line[j])) after the chunk size"))
        }
        guard line[j...].allSatisfy({ $0 >= 0x20 || $0 == htab }), !line[j...].contains(0x7F) else {
            return .failure(Failure(code: .invalidChunkSize, message: "control character in a chunk extension"))
        }
        return .size(size, extensions: string(line[(j + 1)...]))
    }

    static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: Int(b - 0x30)
        case 0x41...0x46: Int(b - 0x41 + 10)
        case 0x61...0x66: Int(b - 0x61 + 10)
        default: nil
        }
    }
}

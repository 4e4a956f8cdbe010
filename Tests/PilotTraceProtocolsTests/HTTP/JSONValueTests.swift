import Testing

@testable import PilotTraceProtocols

@Suite struct JSONValueTests {
    @Test func parsesACloudPush() throws {
        let text =
            #"{"biz_code":"device_osd","version":"1.0","timestamp":1700000000123,"data":{"host":{"latitude":22.5,"longitude":-113.9e0,"height":-0.5,"mode_code":0,"sn":"1581F5FHB22A","ok":true,"none":null},"list":[]}}"#
        let v = try JSONValue.parse(text)
        #expect(v["biz_code"]?.stringValue == "device_osd")
        #expect(v["timestamp"]?.int64Value == 1_700_000_000_123)
        #expect(v["data"]?["host"]?["latitude"]?.doubleValue == 22.5)
        #expect(v["data"]?["host"]?["longitude"]?.doubleValue == -113.9)
        #expect(v["data"]?["host"]?["ok"]?.boolValue == true)
        #expect(v["data"]?["host"]?["none"] == JSONValue.null)
        #expect(v["data"]?["list"] == .array([]))
        // Compact output reproduces the input: order and number literals are kept.
        #expect(v.compact == text)
        #expect(try JSONValue.parse(v.pretty()) == v)
    }

    @Test func keepsMemberOrderAndDuplicates() throws {
        let v = try JSONValue.parse(#" { "b" : 1 , "a" : 2 , "b" : 3 } "#)
        guard case .object(let members) = v else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == ["b", "a", "b"])
        #expect(v["b"] == .number(1))
        #expect(v.compact == #"{"b":1,"a":2,"b":3}"#)
        #expect(v.pretty() == "{\n  \"b\": 1,\n  \"a\": 2,\n  \"b\": 3\n}")
    }

    @Test func numbers() throws {
        #expect(try JSONValue.parse("0") == .number(0))
        #expect(try JSONValue.parse("-0.0e+0").doubleValue == 0)
        #expect(try JSONValue.parse("1E3") == .number(1000))
        #expect(try JSONValue.parse("12345678901234567890").compact == "12345678901234567890")
        #expect(try JSONValue.parse("12345678901234567890") != JSONValue.parse("12345678901234567891"))
        #expect(try JSONValue.parse("1.0") == JSONValue.parse("1"))
        for bad in ["01", "-", "1.", ".5", "1e", "+1", "0x10", "1.e5", "-01", "NaN", "Infinity"] {
            #expect(throws: JSONError.self, "\(bad)") { try JSONValue.parse(bad) }
        }
    }

    @Test func unicodeEscapesIncludingSurrogatePairs() throws {
        #expect(try JSONValue.parse(#""caf\u00e9 \u4e2d \ud83d\ude81 \/\b\f\n\r\t\"\\""#) == .string("café 中 🚁 /\u{8}\u{C}\n\r\t\"\\"))
        #expect(try JSONValue.parse("\"直接 UTF-8 🚁\"") == .string("直接 UTF-8 🚁"))
        #expect(throws: JSONError.self) { try JSONValue.parse(#""\ud83d""#) }
        #expect(throws: JSONError.self) { try JSONValue.parse(#""\ud83d\u0041""#) }
        #expect(throws: JSONError.self) { try JSONValue.parse(#""\ude81""#) }
        #expect(throws: JSONError.self) { try JSONValue.parse(#""\u12""#) }
        #expect(throws: JSONError.self) { try JSONValue.parse(#""\x""#) }
        do {
            _ = try JSONValue.parse(#"["ok", "\ud800x"]"#)
            Issue.record("accepted a lone surrogate")
        } catch {
            #expect(error.code == .invalidSurrogate)
            #expect(error.offset == 8)
        }
        // Serialisation escapes control characters and round-trips.
        let s = JSONValue.string("a\u{1}\"\\\n€")
        #expect(s.compact == #""a\u0001\"\\\n€""#)
        #expect(try JSONValue.parse(s.compact) == s)
    }

    @Test func invalidDocumentsHaveTypedErrors() {
        let cases: [(String, JSONError.Code)] = [
            ("", .unexpectedEnd),
            ("   ", .unexpectedEnd),
            ("[1,2", .unexpectedEnd),
            ("[1,]", .unexpectedCharacter),
            ("{\"a\":1,}", .unexpectedCharacter),
            ("{a:1}", .unexpectedCharacter),
            ("{\"a\" 1}", .unexpectedCharacter),
            ("[1] x", .trailingCharacters),
            ("{} {}", .trailingCharacters),
            ("tru", .unexpectedEnd),
            ("nul1", .unexpectedCharacter),
            ("\"abc", .unexpectedEnd),
            ("\"a\tb\"", .controlCharacterInString),
            ("// comment\n1", .unexpectedCharacter),
            ("'single'", .unexpectedCharacter),
        ]
        for (text, code) in cases {
            do {
                _ = try JSONValue.parse(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.code == code, "\(text): \(error)")
            }
        }
        do {
            _ = try JSONValue.parse([0x22, 0xC3, 0x28, 0x22])
            Issue.record("accepted invalid UTF-8")
        } catch {
            #expect(error.code == .invalidUTF8)
        }
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 256) + String(repeating: "]", count: 256)
        #expect(throws: Never.self) { try JSONValue.parse(ok) }
        let deep = String(repeating: "[", count: 257) + String(repeating: "]", count: 257)
        do {
            _ = try JSONValue.parse(deep)
            Issue.record("accepted 257 levels")
        } catch {
            #expect(error.code == .tooDeep)
            #expect(error.offset == 256)
        }
        // Hostile nesting fails fast and does not overflow the stack.
        let hostile = String(repeating: "{\"a\":[", count: 200_000)
        #expect(throws: JSONError.self) { try JSONValue.parse(hostile) }
        #expect(throws: JSONError.self) { try JSONValue.parse(ok, maxDepth: 10) }
    }

    @Test func looksLikeJSON() {
        #expect(JSONValue.looksLikeJSON(Array(" \r\n\t{".utf8)))
        #expect(JSONValue.looksLikeJSON(Array("[]".utf8)))
        #expect(!JSONValue.looksLikeJSON(Array("\"s\"".utf8)))
        #expect(!JSONValue.looksLikeJSON([UInt8]()))
    }
}

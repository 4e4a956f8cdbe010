import Foundation
import PilotTraceWire
import Testing

@testable import PilotTraceLabServices

@Suite("HS256 tokens and HMAC-SHA-256")
struct JWTTests {
    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block is hashed first).
    @Test func hmacMatchesRFC4231() {
        #expect(
            Self.hex(HMACSHA256.authenticationCode(for: Array("Hi There".utf8), key: [UInt8](repeating: 0x0b, count: 20)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(
            Self.hex(HMACSHA256.authenticationCode(for: Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(
            Self.hex(
                HMACSHA256.authenticationCode(
                    for: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                    key: [UInt8](repeating: 0xaa, count: 131)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    /// The RFC 7515 appendix A.1 example key and input produce its signature.
    @Test func signatureMatchesRFC7515() {
        let key: [UInt8] = JWT.unbase64url("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")!
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        #expect(JWT.base64url(HMACSHA256.authenticationCode(for: Array(input.utf8), key: key)) == "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    }

    @Test func tokensAreCheckedForSignatureAndExpiry() {
        let jwt = JWT(secret: "CloudApiSample")
        let token = jwt.token(claims: [("username", "pilot"), ("workspace_id", "e3dea0f5-37f2-4d79-ae58-490af3228069")], issuedAt: 1_000, age: 100)
        guard case .valid(let claims) = jwt.check(token, now: 1_050) else { Issue.record("not valid"); return }
        #expect(claims["username"] == "pilot")
        #expect(claims["exp"] == "1100")
        if case .expired = jwt.check(token, now: 1_100) {} else { Issue.record("not expired at exp") }
        if case .invalid = JWT(secret: "other").check(token, now: 1_050) {} else { Issue.record("accepted under another secret") }
        var tampered = Array(token)
        tampered[tampered.count / 2] = tampered[tampered.count / 2] == "A" ? "B" : "A"
        if case .invalid = jwt.check(String(tampered), now: 1_050) {} else { Issue.record("accepted a tampered token") }
        if case .invalid = jwt.check("not-a-token", now: 0) {} else { Issue.record("accepted garbage") }
    }
}

import Foundation
import PilotTraceProtocols
import PilotTraceWire

/// HS256 JSON Web Tokens (RFC 7519 with RFC 7515 JWS compact serialisation), as the reference demo issues them:
/// claims `id`, `username`, `user_type`, `workspace_id`, `iss`, `sub`, `exp`, `iat`, `nbf`.
public struct JWT: Sendable {
    public enum Check: Equatable, Sendable {
        case valid([String: String])
        case expired([String: String])
        case invalid(String)
    }

    public var secret: String
    public init(secret: String) { self.secret = secret }

    /// A signed token; `issuedAt` and `age` in seconds since the epoch / seconds.
    public func token(claims: [(String, String)], issuedAt: Double, age: Double) -> String {
        let header = #"{"typ":"JWT","alg":"HS256"}"#
        var members = claims.map { "\(JSONValue.quoted($0.0)):\(JSONValue.quoted($0.1))" }
        members += [
            "\"iss\":\"DJI\"", "\"sub\":\"CloudApiSample\"", "\"exp\":\(Int(issuedAt + age))", "\"nbf\":\(Int(issuedAt))",
            "\"iat\":\(Int(issuedAt))",
        ]
        let payload = "{" + members.joined(separator: ",") + "}"
        let signingInput = Self.base64url(Array(header.utf8)) + "." + Self.base64url(Array(payload.utf8))
        return signingInput + "." + Self.base64url(signature(signingInput))
    }

    func signature(_ input: String) -> [UInt8] { HMACSHA256.authenticationCode(for: Array(input.utf8), key: Array(secret.utf8)) }

    /// Verifies the signature, then `exp`/`nbf` against `now`; string claims are returned.
    public func check(_ token: String, now: Double) -> Check {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payloadBytes = Self.unbase64url(String(parts[1])), let sig = Self.unbase64url(String(parts[2])) else {
            return .invalid("not a JWS compact token")
        }
        guard sig == signature("\(parts[0]).\(parts[1])") else { return .invalid("bad signature") }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(payloadBytes))) as? [String: Any] else { return .invalid("bad claims") }
        var claims: [String: String] = [:]
        for (k, v) in object { claims[k] = "\(v)" }
        if let exp = (object["exp"] as? NSNumber)?.doubleValue, now >= exp { return .expired(claims) }
        if let nbf = (object["nbf"] as? NSNumber)?.doubleValue, now + 60 < nbf { return .invalid("not valid yet") }
        return .valid(claims)
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ s: String) -> [UInt8]? {
        var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        return Data(base64Encoded: b).map { Array($0) }
    }
}

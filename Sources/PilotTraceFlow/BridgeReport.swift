import PilotTraceProtocols
import PilotTraceWire

/// What the proxy's injected script reports about the H5 page's JSBridge calls (protocol reference §3): a POST
/// to ``path`` with `{"page", "sent_at", "calls": [{"fn", "args", "result" | "error", "at"} | {"callback", "args", "at"}]}`
/// (times are the page's milliseconds; secrets already masked by the script).
///
/// Pure: the flow layer reads these reports from the recorded HTTP exchange, like any other message.
public struct BridgeReport: Hashable, Sendable {
    /// The proxy's reserved path: answered by the proxy itself and never forwarded.
    public static let path = "/__pilottrace/bridge"

    public struct Call: Hashable, Sendable {
        /// The bridge function (`platformVerifyLicense`, …), or nil for a callback.
        public var function: String?
        /// The page callback native code called (`connectCallback`), or nil for a bridge call.
        public var callback: String?
        public var arguments: [JSONValue]
        /// What the function returned (usually a JSON string `{code, message, data}`).
        public var result: JSONValue?
        /// The exception it threw.
        public var error: String?
        /// Seconds between the call and the report's sending (from the page's own clock; 0 when unknown).
        public var secondsBeforeSending: Double

        /// The `{code, message, data}` the bridge returned, parsed from its string.
        public var envelope: JSONValue? {
            guard let s = result?.stringValue, let j = try? JSONValue.parse(Array(s.utf8)), case .object = j else { return nil }
            return j
        }

        /// The call succeeded: no exception, and a result code of 0 when there is a code.
        public var succeeded: Bool {
            guard error == nil else { return false }
            if let code = envelope?["code"]?.int64Value { return code == 0 }
            return true
        }
    }

    public var page: String?
    public var calls: [Call]

    /// Parses a report body; nil when it is not one.
    public init?(_ body: JSONValue?) {
        guard let body, case .array(let list)? = body["calls"] else { return nil }
        page = body["page"]?.stringValue
        let sentAt = body["sent_at"]?.doubleValue
        calls = list.compactMap { c in
            let fn = c["fn"]?.stringValue, cb = c["callback"]?.stringValue
            guard fn != nil || cb != nil else { return nil }
            var args: [JSONValue] = []
            if case .array(let a)? = c["args"] { args = a }
            let before = sentAt.flatMap { s in c["at"]?.doubleValue.map { max(0, min(60, (s - $0) / 1000)) } } ?? 0
            return Call(
                function: fn, callback: cb, arguments: args, result: c["result"], error: c["error"]?.stringValue,
                secondsBeforeSending: before)
        }
    }

    /// Whether a request is a bridge report.
    public static func isReport(method: String, path: String) -> Bool { method == "POST" && path == Self.path }

    /// The argument `i` as text.
    static func text(_ call: Call, _ i: Int) -> String? {
        guard i < call.arguments.count else { return nil }
        return call.arguments[i].stringValue
    }

    /// The timeline step a call makes, with its facts, or nil for calls the timeline does not show.
    static func step(_ call: Call) -> (step: Step, ok: Bool, detail: JSONValue)? {
        var base: [(String, JSONValue?)] = []
        if let fn = call.function { base.append(("bridge", .text(fn))) }
        if let env = call.envelope {
            base.append(("code", env["code"]))
            if let m = env["message"]?.stringValue, !m.isEmpty, call.envelope?["code"]?.int64Value != 0 { base.append(("message", .text(m))) }
        }
        if let e = call.error { base.append(("error", .text(e))) }
        if let cb = call.callback {
            let value = call.arguments.first
            let ok = value?.boolValue ?? (value?.int64Value.map { $0 != 0 }) ?? true
            return (
                .connectCallback, ok,
                .members([
                    ("callback", .text(cb)), ("value", value),
                    ("arguments", .text(call.arguments.map(\.compact).joined(separator: ", "))),
                ])
            )
        }
        switch call.function {
        case "platformVerifyLicense":
            let data = call.envelope?["data"]?.boolValue
            return (.licenseVerified, call.succeeded && data != false, .members(base + [("app_id", .text(text(call, 0)))]))
        case "platformIsVerified":
            let data = call.envelope?["data"]?.boolValue
            return (.licenseVerified, call.succeeded && data != false, .members(base + [("verified", .bool(data))]))
        case "apiGetToken":
            return (.tokenRead, call.succeeded, .members(base))
        case "apiSetToken":
            return (.tokenSet, call.succeeded, .members(base))
        case "platformLoadComponent":
            let name = text(call, 0)
            var params: JSONValue?
            if call.arguments.count > 1 {
                if let s = call.arguments[1].stringValue { params = try? JSONValue.parse(Array(s.utf8)) } else { params = call.arguments[1] }
            }
            return (
                .moduleLoad, call.succeeded,
                .members(
                    base + [
                        ("module", .text(name)), ("host", .text(params?["host"]?.stringValue)), ("username", .text(params?["username"]?.stringValue)),
                        ("connect_callback", .text(params?["connectCallback"]?.stringValue)),
                    ])
            )
        case "platformSetWorkspaceId":
            return (.workspaceSet, call.succeeded, .members(base + [("workspace_id", .text(text(call, 0)))]))
        case "platformSetInformation":
            return (
                .platformInfoSet, call.succeeded,
                .members(
                    base + [
                        ("platform_name", .text(text(call, 0))), ("workspace_name", .text(text(call, 1))), ("description", .text(text(call, 2))),
                    ])
            )
        case "thingGetConnectState":
            return (.connectState, call.succeeded, .members(base + [("connected", call.envelope?["data"])]))
        case "thingConnect":
            return (.moduleLoad, call.succeeded, .members(base + [("module", .text("thing")), ("username", .text(text(call, 0)))]))
        case "platformStopSelf":
            return (.platformStop, call.succeeded, .members(base))
        default:
            return nil
        }
    }

    /// Whether a call is part of licence verification (allowed before the licence is verified).
    static func isLicenseCall(_ call: Call) -> Bool {
        call.function == "platformVerifyLicense" || call.function == "platformIsVerified"
    }
}

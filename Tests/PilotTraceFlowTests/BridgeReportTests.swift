import PilotTraceProtocols
import PilotTraceWire
import Testing

@testable import PilotTraceFlow

/// JSBridge reports (what the proxy's page script posts to its reserved path) as timeline steps and findings.
struct BridgeReportTests {
    static let uuid = "e3dea0f5-37f2-4d79-ae58-490af3228069"

    /// A bridge result `{code 0, data}` as it sits inside the report's JSON string (quotes escaped); `data` is JSON.
    static func ok(_ data: String = #""""#) -> String {
        #"{\"code\":0,\"message\":\"ok\",\"data\":\#(data.replacingOccurrences(of: "\"", with: "\\\""))}"#
    }

    /// A report body: each call is `(fn, args JSON, result JSON string)`, 1 ms apart; sent 3 ms after the last call.
    static func report(_ calls: [(String, String, String)]) -> String {
        let items = calls.enumerated().map { i, c in #"{"fn":"\#(c.0)","args":\#(c.1),"result":"\#(c.2)","at":\#(1000 + i)}"# }
        return #"{"page":"/pilot-login","sent_at":\#(1000 + calls.count + 2),"calls":[\#(items.joined(separator: ","))]}"#
    }

    /// The page and its bridge reports from one client, then (optionally) the login and the device.
    mutating func run(_ reports: [String], login: Bool = false, device: Bool = false) -> (Session?, [Deviation]) {
        var s = Scenario()
        let h = s.open("10.0.0.5", server: 8080)
        s.send(h, .toServer, Scenario.request("GET", "/pilot-login"))
        s.send(h, .toClient, Scenario.response(200, html: "<html></html>"))
        if login {
            s.send(h, .toServer, Scenario.request("POST", "/manage/api/v1/login", json: #"{"username":"pilot","password":"x","flag":2}"#))
            s.send(h, .toClient, Scenario.response(200, json: Scenario.loginResponse()))
        }
        for r in reports {
            s.send(h, .toServer, Scenario.request("POST", BridgeReport.path, json: r))
            s.send(h, .toClient, Array("HTTP/1.1 204 No Content\r\n\r\n".utf8))
        }
        if device { _ = s.deviceOnline(from: "10.0.0.5") }
        let sessions = s.finish()
        return (sessions.first, s.engine.finish(sessions: sessions, captureEnd: s.now))
    }

    @Test func callsBecomeStepsInTheirOrderWithMaskedFactsOnly() throws {
        var t = self
        let (session, findings) = t.run([
            Self.report([
                ("platformVerifyLicense", #"["app-1","<masked 3 chars>","<masked 7 chars>"]"#, Self.ok("true")),
                ("platformSetInformation", #"["Cloud Api Platform","Test Group One",""]"#, Self.ok()),
                ("platformLoadComponent", #"["api","{\"host\":\"http://cloud/\",\"token\":\"<masked 3 chars>\"}"]"#, Self.ok(#""api""#)),
                ("apiGetToken", "[]", Self.ok(#""<masked 5 chars>""#)),
                ("platformGetAircraftSN", "[]", Self.ok()),  // not a timeline step
                ("platformSetWorkspaceId", #"["\#(Self.uuid)"]"#, Self.ok()),
            ])
        ])
        let s = try #require(session)
        #expect(s.steps == ["h5-page", "license-verified", "platform-info-set", "module-load", "token-read", "workspace-set"])
        #expect(s.events.allSatisfy { $0.ok })
        #expect(s.first(.licenseVerified)?.phase == .license)
        #expect(s.first(.moduleLoad)?.detail["host"]?.stringValue == "http://cloud/")
        #expect(s.first(.platformInfoSet)?.detail["platform_name"]?.stringValue == "Cloud Api Platform")
        // Each call sits at the report's capture time less the delay the page measured: 8 ms for the first, 3 ms
        // for the last (5 ms later).
        let last = try #require(s.events.last)
        let first = try #require(s.first(.licenseVerified))
        #expect(abs(last.time.seconds(since: first.time) - 0.005) < 1e-6)
        #expect(findings.filter { $0.rule.severity >= .warning }.isEmpty)
    }

    @Test func aFailedCallIsAFailedStep() throws {
        var t = self
        let (session, _) = t.run([
            Self.report([("platformVerifyLicense", #"["a","b","c"]"#, #"{\"code\":615000,\"message\":\"license invalid\",\"data\":false}"#)])
        ])
        let e = try #require(session?.first(.licenseVerified))
        #expect(!e.ok)
        #expect(e.detail["message"]?.stringValue == "license invalid")
    }

    @Test func bridgeLicenseNotVerified() {
        var t = self
        let (_, early) = t.run([
            Self.report([
                ("platformLoadComponent", #"["api","{}"]"#, Self.ok()),
                ("platformVerifyLicense", #"["a","b","c"]"#, Self.ok("true")),
            ])
        ])
        #expect(early.map(\.rule.id) == ["bridge-license-not-verified"])
        #expect(early.first?.text == "platformLoadComponent called before platformVerifyLicense succeeded")
        #expect(early.first?.session == 1)
        let (_, inOrder) = t.run([
            Self.report([("platformVerifyLicense", #"["a","b","c"]"#, Self.ok("true"))]),
            Self.report([("platformLoadComponent", #"["api","{}"]"#, Self.ok())]),
        ])
        #expect(inOrder.isEmpty)
        let (_, failed) = t.run([
            Self.report([
                ("platformVerifyLicense", #"["a","b","c"]"#, #"{\"code\":615000,\"message\":\"x\",\"data\":false}"#),
                ("apiSetToken", #"["<masked 3 chars>"]"#, Self.ok()),
            ])
        ])
        #expect(failed.map(\.rule.id) == ["bridge-license-not-verified"])
    }

    @Test func thingHostMismatch() throws {
        var t = self
        let thing = { (host: String) in
            Self.report([
                ("platformVerifyLicense", #"["a","b","c"]"#, Self.ok("true")),
                (
                    "platformLoadComponent",
                    #"["thing","{\"host\":\"\#(host)\",\"username\":\"pilot\",\"password\":\"<masked 8 chars>\",\"connectCallback\":\"cb\"}"]"#, Self.ok()
                ),
            ])
        }
        let (session, wrong) = t.run([thing("tcp://10.9.9.9:1883")], login: true, device: true)
        #expect(wrong.filter { $0.rule.severity >= .warning }.map(\.rule.id) == ["thing-host-mismatch"])
        #expect(
            wrong.first { $0.rule.id == "thing-host-mismatch" }?.text == "thing loaded with host tcp://10.9.9.9:1883, but the cloud issued tcp://10.1.1.1:1883")
        // The bridge events joined the device's session (same client, the H5 context of the login).
        #expect(session?.gatewaySN == Scenario.rc)
        #expect(session?.steps.contains("module-load") == true)
        let (_, right) = t.run([thing("tcp://10.1.1.1:1883/")], login: true, device: true)
        #expect(!right.map(\.rule.id).contains("thing-host-mismatch"))
    }

    @Test func workspaceIDNotUUID() {
        var t = self
        let set = { (id: String) in
            Self.report([
                ("platformVerifyLicense", #"["a","b","c"]"#, Self.ok("true")),
                ("platformSetWorkspaceId", #"["\#(id)"]"#, Self.ok()),
            ])
        }
        #expect(t.run([set("workspace-1")]).1.map(\.rule.id) == ["workspace-id-not-uuid"])
        #expect(t.run([set(Self.uuid)]).1.isEmpty)
        #expect(t.run([set(Self.uuid.uppercased())]).1.isEmpty)
    }

    @Test func reportsThatAreNotReportsAreIgnored() {
        #expect(BridgeReport(.object([])) == nil)
        #expect(BridgeReport(try? JSONValue.parse(Array(#"{"calls":[{"x":1}]}"#.utf8)))?.calls.isEmpty == true)
        #expect(!BridgeReport.isReport(method: "GET", path: BridgeReport.path))
    }
}

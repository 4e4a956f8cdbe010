import Foundation
import PilotTraceStore
import PilotTraceTestSupport
import Testing

@testable import PilotTraceServe

/// A reader of the Prometheus text exposition format (0.0.4), strict enough to fail on what Prometheus refuses:
/// `# HELP`/`# TYPE` lines, then samples `name{label="value",…} number`.
struct PrometheusText {
    struct Sample: Hashable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []
    var types: [String: String] = [:]

    init(_ text: String) throws {
        struct Malformed: Error, CustomStringConvertible { var description: String }
        let name = /[a-zA-Z_:][a-zA-Z0-9_:]*/
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") { continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                    throw Malformed(description: "\(line)")
                }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            guard let m = line.wholeMatch(of: /([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})? ([-+0-9.eEInfNa]+)/), let value = Double(m.3)
            else {
                throw Malformed(description: "not a sample: \(line)")
            }
            var labels: [String: String] = [:]
            if let list = m.2 {
                for pair in list.dropFirst().dropLast().matches(of: /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/) {
                    labels[String(pair.1)] = String(pair.2)
                }
            }
            guard String(m.1).wholeMatch(of: name) != nil else { throw Malformed(description: "bad name: \(line)") }
            samples.append(Sample(name: String(m.1), labels: labels, value: value))
        }
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

@Suite struct StoreMetricsTests {
    @Test func theExpositionParsesAndSaysWhatTheTotalsSay() throws {
        var totals = RecordTotals()
        totals.sessionsByState = ["online": 2, "failed": 1]
        totals.loginsByResult = ["ok": 2, "failed": 3]
        totals.findings = [("status-reply-missing", "error", 4), ("cleartext-credentials", "info", 2)]
        totals.statusReplyLatencies = [0.002, 0.004, 0.3]
        totals.analyses = [("live", "running", 1)]
        totals.frames = 1234
        totals.live = [(7, "tower", "live", #"{"frames":42,"interfaceDropped":1,"kernelDropped":3}"#), (8, "dc", "proxy", #"{"frames":5}"#)]
        let text = try PrometheusText(StoreMetrics.render(totals))
        #expect(text.value("pilottrace_sessions", ["state": "online"]) == 2)
        #expect(text.value("pilottrace_sessions", ["state": "offline"]) == 0)
        #expect(text.value("pilottrace_sessions_started_total") == 3)
        #expect(text.value("pilottrace_logins_total", ["result": "failed"]) == 3)
        #expect(text.value("pilottrace_findings_total", ["rule": "status-reply-missing", "severity": "error"]) == 4)
        #expect(text.value("pilottrace_status_reply_latency_seconds_count") == 3)
        #expect(text.value("pilottrace_status_reply_latency_seconds_bucket", ["le": "0.0025"]) == 1)
        #expect(text.value("pilottrace_status_reply_latency_seconds_bucket", ["le": "0.005"]) == 2)
        #expect(text.value("pilottrace_status_reply_latency_seconds_bucket", ["le": "+Inf"]) == 3)
        #expect(abs((text.value("pilottrace_status_reply_latency_seconds_sum") ?? 0) - 0.306) < 1e-9)
        #expect(text.value("pilottrace_analyses", ["source": "live", "state": "running"]) == 1)
        #expect(text.value("pilottrace_frames_total") == 1234)
        #expect(text.value("pilottrace_live_frames", ["analysis": "7", "site": "tower", "source": "live"]) == 42)
        #expect(text.value("pilottrace_live_dropped", ["analysis": "7", "site": "tower", "source": "live", "by": "kernel"]) == 3)
        #expect(text.value("pilottrace_live_dropped", ["analysis": "7", "site": "tower", "source": "live", "by": "interface"]) == 1)
        #expect(text.value("pilottrace_live_frames", ["analysis": "8", "site": "dc", "source": "proxy"]) == 5)
        #expect(!text.samples.contains { $0.name == "pilottrace_live_dropped" && $0.labels["analysis"] == "8" })
        #expect(text.types["pilottrace_status_reply_latency_seconds"] == "histogram")
        #expect(text.types["pilottrace_logins_total"] == "counter" && text.types["pilottrace_sessions"] == "gauge")
    }
}

/// The Grafana dashboard, the alert rules and docs/serve.md name only metrics `/metrics` has.
@Suite struct MetricsDocumentationTests {
    /// Metric names in `text` (a histogram's series by its name); `pilottrace_token` is the token's cookie.
    static func names(in text: String) -> Set<String> {
        Set(text.matches(of: /pilottrace_[a-z_]+/).map { String($0.0).replacing(/_(bucket|sum|count)$/, with: "") }).subtracting(["pilottrace_token"])
    }

    @Test func theDashboardTheAlertsAndTheDocsNameMetricsThatExist() throws {
        var totals = RecordTotals()
        totals.live = [(1, "site", "live", #"{"frames":1,"interfaceDropped":0,"kernelDropped":0}"#)]
        totals.findings = [("status-reply-missing", "error", 1)]
        totals.analyses = [("live", "running", 1)]
        let exported = Self.names(in: StoreMetrics.render(totals))
        let docs = TestPaths.packageRoot.appendingPathComponent("docs")
        let dashboard = try Data(contentsOf: docs.appendingPathComponent("serve/grafana-dashboard.json"))
        #expect(try JSONSerialization.jsonObject(with: dashboard) is [String: Any])
        for file in ["serve/grafana-dashboard.json", "serve/prometheus-alerts.yml", "serve.md"] {
            let named = Self.names(in: try String(contentsOf: docs.appendingPathComponent(file), encoding: .utf8))
            #expect(!named.isEmpty, "\(file) names no metric")
            #expect(named.subtracting(exported).isEmpty, "\(file) names \(named.subtracting(exported).sorted()), which /metrics does not have")
        }
        // And the docs' table lists every metric.
        let table = Self.names(in: try String(contentsOf: docs.appendingPathComponent("serve.md"), encoding: .utf8))
        #expect(exported.subtracting(table).isEmpty, "docs/serve.md does not list \(exported.subtracting(table).sorted())")
    }
}

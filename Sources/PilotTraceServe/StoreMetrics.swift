import Foundation
import PilotTraceStore
import Prometheus

/// `/metrics`: the record's totals in the Prometheus text format, built by swift-prometheus from one read of the store
/// (so the values are those `sessions` and `deviations` give on the same database, whichever process wrote it).
///
/// Counters are the record's totals: they grow as analyses add sessions and findings, and drop only when an analysis
/// is replaced or deleted (Prometheus reads a drop as a counter reset).
public enum StoreMetrics {
    /// Upper bounds of the `status` → `status_reply` latency buckets, in seconds.
    public static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    /// The exposition text of `totals`.
    public static func render(_ totals: RecordTotals) -> String {
        let registry = PrometheusCollectorRegistry()
        for state in ConsoleQuery.states {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: "pilottrace_sessions", helpText: "Sessions in the record by state."),
                labels: [("state", state)]
            ).set(Int64(totals.sessionsByState[state] ?? 0))
        }
        registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: "pilottrace_sessions_started_total", helpText: "Sessions the record holds (each started once).")
        ).increment(by: Int64(totals.sessionsByState.values.reduce(0, +)))
        for result in ["ok", "failed"] {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: "pilottrace_logins_total", helpText: "H5 logins by result (login and login-failed steps)."),
                labels: [("result", result)]
            ).increment(by: Int64(totals.loginsByResult[result] ?? 0))
        }
        for f in totals.findings {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: "pilottrace_findings_total", helpText: "Findings by rule and severity."),
                labels: [("rule", f.rule), ("severity", f.severity)]
            ).increment(by: Int64(f.count))
        }
        let latency = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "pilottrace_status_reply_latency_seconds", helpText: "Seconds from a device's status to the cloud's status_reply."),
            buckets: latencyBuckets)
        for l in totals.statusReplyLatencies { latency.record(l) }
        for a in totals.analyses {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: "pilottrace_analyses", helpText: "Analyses by source (capture, live, proxy, replay) and state."),
                labels: [("source", a.source), ("state", a.state)]
            ).set(Int64(a.count))
        }
        registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: "pilottrace_frames_total", helpText: "Frames read by the analyses that finished.")
        ).increment(by: Int64(totals.frames))
        // A capture or proxy going on: its frames so far, and the kernel's drops (libpcap's counts; a proxy has none).
        for run in totals.live {
            guard let counters = (try? JSONSerialization.jsonObject(with: Data(run.countersJSON.utf8))) as? [String: Any] else { continue }
            let labels = [("analysis", String(run.analysisID)), ("site", run.site), ("source", run.source)]
            if let frames = (counters["frames"] as? NSNumber)?.int64Value {
                registry.makeGauge(
                    descriptor: MetricNameDescriptor(metricName: "pilottrace_live_frames", helpText: "Frames read so far by a capture or proxy going on."),
                    labels: labels
                ).set(frames)
            }
            for (key, by) in [("kernelDropped", "kernel"), ("interfaceDropped", "interface")] {
                guard let dropped = (counters[key] as? NSNumber)?.int64Value else { continue }
                registry.makeGauge(
                    descriptor: MetricNameDescriptor(
                        metricName: "pilottrace_live_dropped", helpText: "Packets a live capture lost so far, dropped by the kernel or by the interface."),
                    labels: labels + [("by", by)]
                ).set(dropped)
            }
        }
        return registry.emitToString()
    }
}

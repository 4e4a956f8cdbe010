import ArgumentParser
import Dispatch
import Foundation
import PilotTraceAnalysis
import PilotTraceCapture
import PilotTraceProxy
import PilotTraceRelay
import PilotTraceWire

struct Proxy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Record Pilot 2 ↔ cloud through an HTTP + MQTT proxy (TLS both ways, JSBridge visibility).",
        discussion: Examples.discussion(
            "proxy",
            """
            Point Pilot 2's access link at the HTTP listener (e.g. http://PROXY-IP:8080/pilot-login). Requests go to \
            --http-upstream; mqtt_addr in JSON responses is rewritten to the MQTT listener (unless --no-rewrite), whose \
            connections are relayed byte for byte to --mqtt-upstream (default: the address the cloud handed out). HTML \
            pages get a script that reports the page's JSBridge calls (unless --no-bridge). Everything the app sent and \
            received is analyzed and stored like a capture; --write also saves it as pcapng (synthesised TCP). \
            Ctrl-C or SIGTERM stops: connections are closed, everything is analyzed, stored and flushed. \
            Listeners bind to loopback unless an address is given.
            """)
    )

    @Option(help: ArgumentHelp("HTTP listener: HOST:PORT, or PORT for 127.0.0.1.", valueName: "addr:port"))
    var httpListen = "127.0.0.1:8080"

    @Option(help: ArgumentHelp("The cloud's HTTP base URL (http:// or https://).", valueName: "url"))
    var httpUpstream: String

    @Option(help: ArgumentHelp("MQTT listener (TCP or WebSocket transport): HOST:PORT, or PORT for 127.0.0.1.", valueName: "addr:port"))
    var mqttListen: String?

    @Option(help: ArgumentHelp("The broker (default: the mqtt_addr the cloud hands out, remembered while rewriting).", valueName: "host:port"))
    var mqttUpstream: String?

    @Option(help: ArgumentHelp("Certificate chain (PEM) for TLS towards the app, on both listeners.", valueName: "pem"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("Private key (PEM) of --tls-cert.", valueName: "pem"))
    var tlsKey: String?

    @Flag(help: "TLS towards the upstreams (the HTTP upstream also when its URL is https).")
    var upstreamTLS = false

    @Option(help: ArgumentHelp("Trust these CA certificates (PEM) for upstream TLS instead of the system's.", valueName: "pem"))
    var upstreamCA: String?

    @Flag(help: "Do not verify the upstream certificates.")
    var upstreamInsecure = false

    @Flag(help: "Leave mqtt_addr in responses as the cloud sent it.")
    var noRewrite = false

    @Flag(help: "Do not inject the JSBridge script into HTML pages.")
    var noBridge = false

    @Option(help: ArgumentHelp("Host to put in rewritten MQTT addresses (default: the MQTT listener's, or the host the app used).", valueName: "host"))
    var advertiseHost: String?

    @Option(help: ArgumentHelp("Also write the decrypted traffic as pcapng (synthesised TCP frames).", valueName: "file.pcapng"))
    var write: String?

    @Option(help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Flag(help: "Do not print a line per exchange and connection.")
    var quiet = false

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var site: SiteOptions
    @OptionGroup var summary: SummaryOptions

    func proxyConfiguration() throws -> ProxyConfiguration {
        guard let listen = HostPort(httpListen) else { throw ValidationError("--http-listen: expected HOST:PORT or PORT, got \(httpListen)") }
        guard let upstream = UpstreamURL(httpUpstream) else {
            throw ValidationError("--http-upstream: expected http://HOST[:PORT] or https://HOST[:PORT], got \(httpUpstream)")
        }
        var c = ProxyConfiguration(httpListen: listen, httpUpstream: upstream)
        if let mqttListen {
            guard let l = HostPort(mqttListen) else { throw ValidationError("--mqtt-listen: expected HOST:PORT or PORT, got \(mqttListen)") }
            c.mqttListen = l
        }
        if let mqttUpstream {
            guard let u = HostPort(mqttUpstream), u.port > 0 else { throw ValidationError("--mqtt-upstream: expected HOST:PORT, got \(mqttUpstream)") }
            guard mqttListen != nil else { throw ValidationError("--mqtt-upstream needs --mqtt-listen") }
            c.mqttUpstream = u
        }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        c.tlsCertificate = tlsCert
        c.tlsKey = tlsKey
        c.upstreamTLS = upstreamTLS
        c.upstreamCA = upstreamCA
        c.upstreamInsecure = upstreamInsecure
        c.rewrite = !noRewrite
        c.bridge = !noBridge
        c.advertiseHost = advertiseHost
        return c
    }

    func validate() throws {
        _ = try proxyConfiguration()
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive.") }
    }

    func run() throws {
        let config = try proxyConfiguration()
        do {
            try ProxyServer.preflight(config)
        } catch {
            throw Failure(ErrorText.describe(error))
        }
        let existed = database.exists
        let db = try database.open()
        let started = Date()
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        // Unique per run (two proxies may start in the same second, both on port 0).
        let key = "proxy:\(config.httpListen):\(iso.string(from: started)):\(getpid())"
        let run: AnalysisRun
        do {
            run = try AnalysisRun(
                liveKey: key, capturePath: write, database: db, toolVersion: PilotTraceVersion.string, source: "proxy",
                site: site.resolved)
        } catch {
            if !existed { database.discard(db, analysis: -1, created: true) }
            throw Failure(database.shown, error)
        }
        let pcapng: PcapngWriter?
        do {
            pcapng = try write.map {
                try PcapngWriter(path: $0, linkType: .raw, interfaceName: "pilottrace-proxy", application: "pilottrace \(PilotTraceVersion.string) proxy")
            }
        } catch {
            database.discard(db, analysis: run.analysisID, created: !existed)
            throw Failure(write ?? "--write", error)
        }
        // The recorder's queue hands its frames to the live loop, which analyzes (and writes) them on this thread.
        let frames = LiveFrameQueue(linkType: .raw)
        let recorder = TrafficRecorder { frames.push($0) }
        let quiet = self.quiet
        let server = ProxyServer(configuration: config, recorder: recorder) { line in
            if !quiet { warn(line) }
        }
        do {
            try server.start()
        } catch {
            // Nothing was proxied: the analysis begun for it (and a database this command created) is removed.
            server.stop()
            try? pcapng?.close(end: Timestamp(Date()))
            if let write { try? FileManager.default.removeItem(atPath: write) }
            database.discard(db, analysis: run.analysisID, created: !existed)
            throw Failure("the proxy could not start", error)
        }
        let scheme = config.appTLS ? "https" : "http"
        warn("pilottrace proxy: http listening on \(server.httpBound.map { "\($0)" } ?? "?") (\(scheme)) → \(config.httpUpstream)")
        if let m = server.mqttBound {
            let up = config.mqttUpstream.map { "\($0)" } ?? "the mqtt_addr the cloud hands out"
            warn("pilottrace proxy: mqtt listening on \(m) (\(config.appTLS ? "tls" : "tcp")) → \(up)\(config.rewrite ? "" : " (no rewriting)")")
        }
        warn("pilottrace proxy: access link for Pilot 2: \(scheme)://\(server.httpBound.map { "\($0)" } ?? "?")/…; Ctrl-C stops")

        // On stop the connections are closed and what they relayed reaches the loop before the analysis finishes.
        frames.stopping = {
            server.stop()
            recorder.flush()
        }
        let loop = LiveAnalysis(run, duration: duration)
        let signals = StopSignals { loop.requestStop() }
        defer { signals.cancel() }
        let failure = loop.run(
            frames,
            record: { frame in
                try pcapng?.write(frame.data, originalLength: frame.originalLength, at: frame.timestamp)
            }, flush: { try pcapng?.flush() })
        if let error = failure {
            frames.stopProducers()
            warn("error: recording stopped: \(ErrorText.describe(error))")
        }
        let end = Timestamp(Date())
        try pcapng?.close(end: end)
        let first = loop.first, last = loop.last
        let files =
            write.map {
                [
                    CaptureFileReport(
                        path: $0, format: "pcapng", compressed: false, linkTypes: [.raw], records: pcapng?.records ?? 0,
                        warnings: [], firstTime: first, lastTime: last, endTime: end)
                ]
            } ?? []
        let report = try loop.finish(files: files, end: end, interrupted: failure.map { "recording error: \(ErrorText.describe($0))" })
        if let original = server.originalBroker { print("The cloud handed out MQTT address \(original) (rewritten to the proxy's listener).") }
        print("Proxied \(recorder.connectionCount) connection\(recorder.connectionCount == 1 ? "" : "s") (\(recorder.frameCount) synthesised frames).")
        printText(Analyze.summary(report, database: database.shown, verbose: summary.verbose), terminator: "")
        // The WAL goes into the file: what the command stored is one file to copy or share.
        do { try db.close() } catch { warn("warning: \(ErrorText.describe(error))") }
        try checkFailOn(summary.failOn, report.deviations.map(\.rule.severity))
    }
}

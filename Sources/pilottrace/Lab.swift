import ArgumentParser
import Foundation
import PilotTraceCapture
import PilotTraceClients
import PilotTraceLab
import PilotTraceLabServices
import PilotTraceProxy
import PilotTraceWire

struct Lab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "A reference cloud and a Pilot 2 simulator on a real broker, and synthetic captures for benchmarks.",
        discussion: Examples.discussion(
            "lab",
            """
            `lab cloud` and `lab pilot` make real traffic on loopback (mosquitto, HTTP, libmosquitto) to capture, \
            proxy and replay; `lab generate` writes a synthetic capture without any network.
            """),
        subcommands: [Cloud.self, Pilot.self, Generate.self, ReadFloor.self]
    )

    /// The floor for benchmarks: libpcap's offline read loop, touching every byte, nothing else.
    struct ReadFloor: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "read-floor",
            abstract: "Read a capture with a bare libpcap loop (the benchmark floor) and print frames and bytes.",
            discussion: Examples.discussion("lab read-floor")
        )

        @Argument(help: "A pcap file libpcap can read.") var capture: String

        func run() throws {
            let reader = try LibpcapFileReader(path: capture)
            var frames = 0, bytes = 0, sum: UInt64 = 0
            try reader.forEach { r in
                frames += 1
                bytes += r.data.count
                for b in r.data { sum &+= UInt64(b) }
            }
            print("\(frames) frames, \(bytes) bytes (checksum \(sum % 1000))")
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Write a synthetic but protocol-correct capture of N remote controllers and unrelated traffic.",
            discussion: Examples.discussion(
                "lab generate",
                """
                Each device logs in over HTTP, connects to MQTT, publishes update_topo (answered), osd for the RC and its \
                aircraft every 2 s, goes offline (empty sub_devices) and disconnects; with --online 20 or more, every \
                tenth device (index 3, 13, …) loses its link half-way and reconnects within the grace. Deterministic \
                from --seed. Analysis must find \
                one offline session per device and no finding above info. --shape login-storm: each device logs in, \
                connects, publishes --messages QoS 1 state messages 10 ms apart (each in a frame of its own, each \
                acknowledged in a frame of its own) and disconnects; every fourth device's last PUBLISH goes \
                unacknowledged (one mqtt-publish-unacknowledged warning in a quarter of the sessions).
                """)
        )

        enum Shape: String, ExpressibleByArgument, CaseIterable {
            case online
            case loginStorm = "login-storm"
        }

        @Option(help: ArgumentHelp("Remote controllers.", valueName: "n")) var devices = 10
        @Option(help: ArgumentHelp("What the devices do: online (stay online, osd) or login-storm (log in, publish, leave).", valueName: "shape"))
        var shape = Shape.online
        @Option(help: ArgumentHelp("With --shape login-storm: QoS 1 messages each device publishes.", valueName: "n")) var messages = 20
        @Option(help: ArgumentHelp("Seconds each device stays online (--shape online).", valueName: "seconds")) var online: Double = 60
        @Option(name: .customLong("duration"), help: .hidden) var durationAlias: Double?
        @Option(help: ArgumentHelp("Unrelated connections started per second.", valueName: "rate")) var noise: Double = 1
        @Option(
            help: ArgumentHelp(
                "Seconds between consecutive devices' starts (above online ÷ devices, devices come and go).",
                valueName: "seconds")) var stagger: Double = 0.05
        @Option(help: ArgumentHelp("Random seed (the same seed writes the same file).", valueName: "n")) var seed: UInt64 = 1
        @Option(help: ArgumentHelp("The pcap file to write.", valueName: "file.pcap")) var out: String

        func validate() throws {
            guard devices >= 0, (durationAlias ?? online) >= 4, noise >= 0, stagger >= 0, (1...60_000).contains(messages) else {
                throw ValidationError("--devices ≥ 0, --online ≥ 4, --noise ≥ 0, --stagger ≥ 0, --messages 1…60000")
            }
        }

        func run() throws {
            var p = TrafficGenerator.Parameters()
            p.devices = devices
            p.shape = shape == .online ? .online : .loginStorm(messages: messages)
            p.duration = durationAlias ?? online
            p.noise = noise
            p.stagger = stagger
            p.seed = seed
            let generator = TrafficGenerator(p)
            let writer = try PcapWriter(path: out, linkType: TrafficGenerator.format.link.linkType)
            let started = Date()
            try generator.run { t, frame in try writer.write(frame, at: t) }
            try writer.close()
            let e = generator.expectation
            let findings = e.unacknowledged > 0 ? ", \(e.unacknowledged) with mqtt-publish-unacknowledged" : ""
            print(
                String(
                    format: "%@: %d frames, %.1f MB in %.1f s; expect %d sessions (%d with a reconnect%@)", out, writer.records,
                    Double(writer.bytes) / 1e6, Date().timeIntervalSince(started), e.sessions, e.reconnects, findings))
        }
    }
}

extension Lab {
    struct Cloud: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cloud",
            abstract: "Run a reference cloud: the demo's HTTP routes, HS256 tokens, mosquitto, and a backend answering status_reply.",
            discussion: Examples.discussion(
                "lab cloud",
                """
                Routes (protocol reference §2.2–2.3): GET /pilot-login, POST /manage/api/v1/login, POST \
                /manage/api/v1/token/refresh, GET /manage/api/v1/workspaces/current, GET /manage/api/v1/users/current, \
                GET /manage/api/v1/workspaces/{id}/devices/topologies, GET /manage/api/v1/devices/{id}/devices/{sn}. \
                A missing, invalid or expired token gets HTTP 401 with an empty body; login errors come back as HTTP 200 \
                with code 401, as in the demo. Unless --broker is given, mosquitto is started with a password file \
                (pilot/pilot123 and the backend's own user). Runs until Ctrl-C or SIGTERM (or --duration) and stops \
                everything it started. Binds to loopback unless told otherwise.
                """)
        )

        @Option(help: ArgumentHelp("HTTP listener: HOST:PORT, or PORT for 127.0.0.1 (0: any free port).", valueName: "host:port"))
        var httpListen = "127.0.0.1:6789"
        @Option(name: .customLong("http"), help: .hidden) var httpAlias: String?
        @Option(help: ArgumentHelp("The mosquitto broker to start: HOST:PORT, or PORT for 127.0.0.1 (0: any free port).", valueName: "host:port"))
        var mqttListen = "1883"
        @Option(name: .customLong("mqtt-port"), help: .hidden) var mqttPortAlias: String?
        @Option(
            help: ArgumentHelp(
                "Use this broker instead of starting one (the backend logs in with --backend-user/--backend-password).",
                valueName: "host:port")) var broker: String?
        @Option(help: ArgumentHelp("The backend's MQTT username on an existing broker.", valueName: "user")) var backendUser = "cloud-backend"
        @Option(help: ArgumentHelp("The backend's MQTT password on an existing broker.", valueName: "password")) var backendPassword: String?
        @Option(
            name: .customLong("fault"),
            help: ArgumentHelp(
                "Break the cloud (repeatable): \(LabCloud.Fault.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "fault"))
        var faults: [String] = []
        @Option(help: ArgumentHelp("Seconds before each status_reply (slow replies).", valueName: "seconds")) var replyDelay: Double = 0
        @Option(help: ArgumentHelp("Token lifetime.", valueName: "seconds")) var tokenAge: Double = 86_400
        @Option(help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds")) var duration: Double?
        @Option(help: ArgumentHelp("Write the HTTP base URL and the broker address to this file once ready (for scripts).", valueName: "file"))
        var readyFile: String?
        @Option(
            help: ArgumentHelp(
                "Append a JSON line per HTTP request to this file: method, path, status and the SHA-256 fingerprints of the token it carried and of the token it issued (never the tokens).",
                valueName: "file"))
        var requestLog: String?

        func validate() throws {
            for f in faults where LabCloud.Fault(rawValue: f) == nil {
                throw ValidationError("unknown fault '\(f)'; one of: \(LabCloud.Fault.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard HostPort(httpAddress) != nil else { throw ValidationError("--http-listen takes HOST:PORT or PORT, e.g. 127.0.0.1:6789") }
            guard HostPort(mqttAddress) != nil else { throw ValidationError("--mqtt-listen takes HOST:PORT or PORT, e.g. 1883") }
            if let broker, Lab.hostPort(broker) == nil { throw ValidationError("--broker takes host:port") }
            if broker != nil && backendPassword == nil { throw ValidationError("--broker needs --backend-password") }
        }

        /// The listeners, under their current or their old names.
        var httpAddress: String { httpAlias ?? httpListen }
        var mqttAddress: String { mqttPortAlias ?? mqttListen }

        func run() throws {
            var c = LabCloud.Configuration()
            let http = HostPort(httpAddress)!, mqtt = HostPort(mqttAddress)!
            (c.httpHost, c.httpPort) = (http.host, http.port)
            (c.brokerHost, c.brokerPort) = (mqtt.host, mqtt.port)
            if let broker { c.broker = Lab.hostPort(broker) }
            c.backendUsername = backendUser
            if let backendPassword { c.backendPassword = backendPassword }
            c.faults = Set(faults.compactMap(LabCloud.Fault.init))
            c.replyDelay = replyDelay
            c.tokenAge = tokenAge
            c.requestLog = requestLog
            let cloud = LabCloud(configuration: c, log: Lab.log("cloud"))
            // Every failure path stops what was started (the broker most of all: it would outlive the command).
            do {
                try cloud.start()
                if let readyFile {
                    do {
                        try "\(cloud.httpURL)\n\(cloud.mqttAddress)\n".write(toFile: readyFile, atomically: true, encoding: .utf8)
                    } catch {
                        throw Failure("--ready-file \(readyFile)", error)
                    }
                }
            } catch {
                cloud.stop()
                throw Failure("lab cloud", error)
            }
            Lab.waitForStop(duration: duration)
            Lab.log("cloud")("stopping")
            cloud.stop()
        }
    }

    struct Pilot: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pilot",
            abstract: "Act as Pilot 2 (and its H5 page) logging in to a cloud, coming online, and going offline.",
            discussion: Examples.discussion(
                "lab pilot",
                """
                Per device: GET /pilot-login, log in (or try a stored token), workspaces/current, users/current (MQTT \
                credentials), MQTT CONNECT as the RC serial (libmosquitto), SUBSCRIBE to the six downlink topics, \
                update_topo with an aircraft (re-sent every --status-retry seconds while unanswered), the topology \
                request, osd for the RC and the aircraft every --osd-interval seconds for --online seconds, then \
                --offline: active (update_topo with no aircraft, then DISCONNECT), exit (DISCONNECT) or passive (the \
                link drops without DISCONNECT). --devices N runs N remote controllers at once with distinct serials. \
                --restarts N runs the whole script N more times after each clean DISCONNECT (the app opened again); \
                --connect-retries N retries a refused CONNECT. Exit status 0 when every device came online and \
                completed its script (every run of it), 1 otherwise.
                """)
        )

        @Option(
            help: ArgumentHelp(
                "The cloud's base URL (what Pilot 2 is given as the access link, without /pilot-login).",
                valueName: "url")) var cloud = "http://127.0.0.1:6789"
        @Option(help: ArgumentHelp("The H5 login username.", valueName: "user")) var username = "pilot"
        @Option(help: ArgumentHelp("The H5 login password.", valueName: "password")) var password = "pilot123"
        @Option(help: ArgumentHelp("Remote controllers to simulate at once.", valueName: "n")) var devices = 1
        @Option(help: ArgumentHelp("MQTT version: 3.1.1 or 5.", valueName: "version")) var mqttVersion = "3.1.1"
        @Option(help: ArgumentHelp("Seconds online sending osd.", valueName: "seconds")) var online: Double = 3
        @Option(help: ArgumentHelp("Seconds between osd rounds (0.5 Hz per the docs).", valueName: "seconds")) var osdInterval: Double = 2
        @Option(help: ArgumentHelp("Seconds to wait for status_reply before re-sending status.", valueName: "seconds")) var statusRetry: Double = 2
        @Option(help: ArgumentHelp("How many times status is sent before giving up.", valueName: "n")) var statusTries = 3
        @Option(help: ArgumentHelp("How the device goes offline: active, exit or passive.", valueName: "mode")) var offline = "active"
        @Option(
            name: .customLong("fault"),
            help: ArgumentHelp(
                "Deviate from the documented sequence (repeatable): \(LabPilot.Fault.allCases.map(\.rawValue).joined(separator: ", ")). "
                    + "shared-client-id (with --devices 2 or more): every device connects with the first device's client id "
                    + "(\(LabPilot.serials(0).rc)) but keeps its own serials in topics and payloads; the broker closes the older "
                    + "connection at each CONNECT (session takeover) and a device closed while online reconnects 1 s later "
                    + "(subscribe, update_topo again), so the connections alternate for the whole --online period.",
                valueName: "fault"))
        var faults: [String] = []
        @Flag(help: "Fly without an aircraft (sub_devices stays empty).") var noAircraft = false
        @Option(help: ArgumentHelp("MQTT keep-alive.", valueName: "seconds")) var keepAlive = 60
        @Option(help: ArgumentHelp("Spread the devices' starts over this many seconds.", valueName: "seconds")) var rampUp: Double = 0
        @Option(
            help: ArgumentHelp(
                """
                Run each device's whole script this many more times after it ended with a clean DISCONNECT (--offline \
                active or exit), as a user re-opening the app: after --restart-delay, GET /pilot-login on a new HTTP \
                connection, log in again, workspace, users/current, a new MQTT connection with the same client id (the \
                RC serial), subscribe, update_topo, osd, offline. The device succeeds only when every run completed.
                """, valueName: "n")) var restarts = 0
        @Option(help: ArgumentHelp("Seconds between a run's DISCONNECT and the next run (--restarts).", valueName: "seconds"))
        var restartDelay: Double = 2
        @Option(
            help: ArgumentHelp(
                """
                When the broker refuses the CONNECT (CONNACK ≠ 0, e.g. --fault wrong-password), try this many more \
                times, each on a new TCP connection with the same client id and credentials, every --retry-interval \
                seconds, as MQTT client libraries do; each refusal is logged, and the device fails if the last try is \
                refused too.
                """, valueName: "n")) var connectRetries = 0
        @Option(help: ArgumentHelp("Seconds between a refused CONNECT and the next try (--connect-retries).", valueName: "seconds"))
        var retryInterval: Double = 1
        @Flag(help: "Log only failures and the summary.") var quiet = false

        func validate() throws {
            for f in faults where LabPilot.Fault(rawValue: f) == nil {
                throw ValidationError("unknown fault '\(f)'; one of: \(LabPilot.Fault.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard LabPilot.Offline(rawValue: offline) != nil else { throw ValidationError("--offline is active, exit or passive") }
            guard MQTTClient.Version(rawValue: mqttVersion) != nil else { throw ValidationError("--mqtt-version is 3.1.1 or 5") }
            guard devices >= 1, devices <= 1000 else { throw ValidationError("--devices is 1…1000") }
            guard online >= 0, osdInterval > 0, statusRetry > 0, statusTries >= 1 else {
                throw ValidationError("--online ≥ 0, --osd-interval > 0, --status-retry > 0, --status-tries ≥ 1")
            }
            guard restarts >= 0, restartDelay >= 0, connectRetries >= 0, retryInterval >= 0 else {
                throw ValidationError("--restarts ≥ 0, --restart-delay ≥ 0, --connect-retries ≥ 0, --retry-interval ≥ 0")
            }
            if restarts > 0 && offline == LabPilot.Offline.passive.rawValue {
                throw ValidationError("--restarts needs a clean end: --offline active or exit")
            }
            if faults.contains(LabPilot.Fault.sharedClientID.rawValue) && devices < 2 {
                throw ValidationError("--fault shared-client-id needs --devices 2 or more")
            }
        }

        func run() throws {
            var c = LabPilot.Configuration()
            c.cloud = cloud.hasSuffix("/pilot-login") ? String(cloud.dropLast("/pilot-login".count)) : cloud
            c.username = username
            c.password = password
            c.devices = devices
            c.version = MQTTClient.Version(rawValue: mqttVersion)!
            c.online = online
            c.osdInterval = osdInterval
            c.statusRetry = statusRetry
            c.statusTries = statusTries
            c.offline = LabPilot.Offline(rawValue: offline)!
            c.faults = Set(faults.compactMap(LabPilot.Fault.init))
            c.aircraft = !noAircraft
            c.keepAlive = keepAlive
            c.rampUp = rampUp
            c.restarts = restarts
            c.restartDelay = restartDelay
            c.connectRetries = connectRetries
            c.retryInterval = retryInterval
            let log = Lab.log("pilot")
            let quiet = self.quiet
            let pilot = LabPilot(configuration: c, log: { line in if !quiet || line.contains("failed") { log(line) } })
            let started = Date()
            let outcomes = pilot.run()
            let failed = outcomes.filter { $0.failure != nil }
            let published = outcomes.map(\.messages.published).reduce(0, +)
            var extra = ""
            if restarts > 0 { extra += "; \(outcomes.map(\.runs).reduce(0, +)) of \(outcomes.count * (1 + restarts)) runs completed" }
            let refusals = outcomes.map(\.refusals).reduce(0, +)
            if refusals > 0 { extra += "; \(refusals) CONNECT(s) refused" }
            let takeovers = outcomes.map(\.takeovers).reduce(0, +)
            if takeovers > 0 || c.faults.contains(.sharedClientID) {
                extra +=
                    "; \(takeovers) takeover(s) of client id \(LabPilot.serials(0).rc) ("
                    + outcomes.map { "\($0.gateway) closed \($0.takeovers)×" }.joined(separator: ", ") + ")"
            }
            print(
                "\(outcomes.count) device(s): \(outcomes.count - failed.count) completed, \(failed.count) failed; \(published) messages published in \(String(format: "%.1f", Date().timeIntervalSince(started))) s\(extra)"
            )
            // Each failure was logged once already ("[serial] failed: …").
            if !failed.isEmpty { throw ExitCode(ExitStatus.findings) }
        }
    }

    static func hostPort(_ s: String) -> (String, Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    /// A timestamped line on stderr: "12:00:01.234 cloud: …".
    static func log(_ who: String) -> @Sendable (String) -> Void {
        { line in
            let now = Date().timeIntervalSince1970
            let t = Int(now) % 86_400
            let stamp = String(format: "%02d:%02d:%02d.%03d", t / 3600, t / 60 % 60, t % 60, Int(now * 1000) % 1000)
            writeStandardError("\(stamp) \(who): \(line)\n")
        }
    }

    /// Blocks until SIGINT/SIGTERM or `duration` seconds.
    static func waitForStop(duration: Double?) {
        let stopped = DispatchSemaphore(value: 0)
        let signals = StopSignals { stopped.signal() }
        defer { signals.cancel() }
        if let duration { _ = stopped.wait(timeout: .now() + duration) } else { stopped.wait() }
    }
}

import Foundation
import NIOCore
import NIOPosix
import PilotTraceAnalysis
import PilotTraceFlow
import PilotTraceRelay
import PilotTraceReplay
import PilotTraceStore
import PilotTraceWire

/// Why a replay could not run (exit status 2): an unknown session, a target that does not answer, a store that
/// cannot be written. Nothing is stored half-way.
public struct ReplayError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What a replay run did, for the command's output and its figures.
public struct ReplayReport: Sendable {
    public var verdicts: [SessionVerdict]
    /// Wall-clock seconds from the first session's start to the last one's end (storing excluded).
    public var replaySeconds: Double
    /// Seconds spent analysing and storing the replays' traffic.
    public var storeSeconds: Double
    /// Every replayed step's latency (HTTP response, CONNACK, awaited reply), in seconds.
    public var stepLatencies: [Double]
    public var regressions: Int { verdicts.filter(\.regressed).count }
    public var sessionsPerSecond: Double { replaySeconds > 0 ? Double(verdicts.count) / replaySeconds : 0 }

    /// The `p`-th percentile (0…100) of the step latencies, nearest rank.
    public func latencyPercentile(_ p: Double) -> Double? {
        guard !stepLatencies.isEmpty else { return nil }
        let sorted = stepLatencies.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }
}

/// Replays stored sessions against a target: loads their plans, checks the target answers, re-drives the sessions
/// (at most `concurrency` at once, each on its own thread with its own device identity), analyses each replay's own
/// traffic as a new session (source `replay`, linked to the original) and compares.
public final class ReplayRunner {
    public struct Loaded: Sendable {
        public var traffic: StoredSessionTraffic
        public var plan: ReplayPlan
    }

    let database: PilotTraceDatabase
    let target: ReplayTarget
    let options: ReplayOptions
    let concurrency: Int
    let toolVersion: String
    let record: Bool

    /// - Parameter record: Record and store the replay's own traffic (off: compare only, nothing is written).
    public init(
        database: PilotTraceDatabase, target: ReplayTarget, options: ReplayOptions, concurrency: Int, toolVersion: String,
        record: Bool = true
    ) {
        self.database = database
        self.target = target
        self.options = options
        self.concurrency = max(1, concurrency)
        self.toolVersion = toolVersion
        self.record = record
    }

    /// Loads each session's traffic and plan; an unknown id or a session without traffic is a ``ReplayError``.
    public func load(_ ids: [Int64]) throws -> [Loaded] {
        try ids.map { id in
            guard let traffic = try database.traffic(sessionID: id) else { throw ReplayError("no session \(id) in \(database.path)") }
            let recorded = Self.recorded(traffic)
            guard !recorded.exchanges.isEmpty || !recorded.mqtt.isEmpty else {
                throw ReplayError("session \(id) has no stored HTTP or MQTT traffic to replay")
            }
            return Loaded(traffic: traffic, plan: ReplayPlan(recorded))
        }
    }

    /// The replay core's view of a stored session.
    static func recorded(_ t: StoredSessionTraffic) -> RecordedSession {
        let exchanges = t.exchanges.compactMap { e -> RecordedExchange? in
            guard let method = e.method, let target = e.target, let time = e.requestTime else { return nil }
            return RecordedExchange(
                connection: e.flowID, method: method, target: target,
                headers: (e.requestHeaders ?? []).map { ($0.name, $0.value) }, body: Array(e.requestBody ?? Data()),
                requestTime: time, status: e.status, responseBody: Array(e.responseBody ?? Data()), responseTime: e.responseTime)
        }
        // A telemetry window stands for `packetCount` PUBLISHes: replayed as that many, spread evenly over its time,
        // each with the payload stored (its first one's).
        var expanded: [(row: MQTTPacketRow, time: Double)] = []
        for p in t.mqtt {
            let n = max(1, p.packetCount)
            for k in 0..<n {
                let share = n > 1 ? Double(k) / Double(n - 1) : 0
                expanded.append((p, p.time + (p.endTime - p.time) * share))
            }
        }
        let order = expanded.indices.sorted { (expanded[$0].time, $0) < (expanded[$1].time, $1) }
        let mqtt = order.map { i -> RecordedMQTTPacket in
            let (p, time) = expanded[i]
            return RecordedMQTTPacket(
                connection: p.flowID, direction: p.direction == "to-server" ? .toServer : .toClient, time: time, type: p.type,
                version: p.version, overWebSocket: p.overWebSocket, topic: p.topic, payload: p.payload.map(Array.init), qos: p.qos,
                retain: p.retain ?? false, clientID: p.clientID, username: p.username, password: p.password.map(Array.init),
                keepAlive: p.keepAlive, returnCode: p.returnCode,
                filters: p.type == "SUBSCRIBE" ? RecordedMQTTPacket.filters(fromSummary: p.summary) : [])
        }
        return RecordedSession(
            id: t.session.id, gatewaySN: t.session.gatewaySN, start: t.session.startTime, exchanges: exchanges, mqtt: mqtt,
            findings: t.findings)
    }

    /// Checks the target accepts connections (HTTP, and the broker when given and some plan uses MQTT).
    public func preflight(_ loaded: [Loaded]) throws {
        func reachable(_ host: String, _ port: Int) -> String? {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            defer { try? group.syncShutdownGracefully() }
            do {
                let channel = try ClientBootstrap(group: group).connectTimeout(.seconds(3)).connect(host: host, port: port).wait()
                try? channel.close().wait()
                return nil
            } catch {
                let text = "\(error)"
                if text.contains("refused") { return "connection refused" }
                if text.contains("timed out") || text.contains("Timeout") { return "no answer within 3 s" }
                return text
            }
        }
        if loaded.contains(where: { !$0.plan.steps.filter { $0.kind == "http" }.isEmpty }),
            let why = reachable(target.httpHost, target.httpPort)
        {
            throw ReplayError("the target http://\(target.hostHeader) does not answer (\(why)); nothing was replayed or stored")
        }
        if let (host, port) = target.mqtt, loaded.contains(where: { !$0.plan.steps.filter { $0.kind == "mqtt" }.isEmpty }),
            let why = reachable(host, port)
        {
            throw ReplayError("the target broker \(host):\(port) does not answer (\(why)); nothing was replayed or stored")
        }
    }

    /// Replays, then (with `record`) stores each replay's traffic as a session and the step comparison, and judges.
    public func run(_ loaded: [Loaded], progress: (@Sendable (Int, Int) -> Void)? = nil) throws -> ReplayReport {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: min(4, max(1, System.coreCount)))
        defer { try? group.syncShutdownGracefully() }
        final class Slots: @unchecked Sendable {
            let lock = NSLock()
            var runs: [(SessionReplayer.Run, Date)?]
            /// Each replay's own traffic as its recorder synthesised it (with `record`).
            var frames: [[TrafficRecorder.Frame]]
            var done = 0
            init(_ n: Int) {
                runs = Array(repeating: nil, count: n)
                frames = Array(repeating: [], count: n)
            }
        }
        let slots = Slots(loaded.count)
        let gate = DispatchSemaphore(value: concurrency)
        let all = DispatchGroup()
        let started = Date()
        for (i, item) in loaded.enumerated() {
            gate.wait()
            all.enter()
            // The replay records its own connections as the proxy does; the frames wait in their slot to be analysed.
            let recorder = record ? TrafficRecorder { frames in slots.lock.withLock { slots.frames[i] += frames } } : nil
            let replayer = SessionReplayer(plan: item.plan, target: target, options: options, group: group, recorder: recorder)
            let thread = Thread {
                let run = replayer.run()
                let ended = Date()
                recorder?.flush()
                let done = slots.lock.withLock { () -> Int in
                    slots.runs[i] = (run, ended)
                    slots.done += 1
                    return slots.done
                }
                progress?(done, loaded.count)
                gate.signal()
                all.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        all.wait()
        let replaySeconds = Date().timeIntervalSince(started)

        let comparison = StepComparison(ignore: options.ignore)
        let storeStarted = Date()
        var created: [Int64] = []
        var verdicts: [SessionVerdict] = []
        var latencies: [Double] = []
        do {
            for (i, item) in loaded.enumerated() {
                guard let (run, ended) = slots.runs[i] else { continue }
                let steps = zip(item.plan.steps, run.observations).map { comparison.compare($0, $1) }
                latencies += steps.compactMap(\.replayedLatency)
                var verdict = SessionVerdict(
                    original: item.plan.session, gatewaySN: item.plan.gatewaySN, steps: steps, originalFindings: item.traffic.findings,
                    replayFindings: [],
                    variables: item.plan.variables.map { v in
                        let new = options.overrides[v.name] ?? run.bindings[v.name]
                        return SessionVerdict.VariableUse(
                            name: v.name, path: v.pathText, definedBy: v.definedBy, usedBy: v.usedBy,
                            rewritten: new != nil && new != v.value, recorded: v.value, replayed: new)
                    }, notes: item.plan.notes, duration: run.duration)
                if record {
                    let stored = try store(slots.frames[i], end: ended, plan: item.plan, ordinal: i)
                    created.append(stored.analysis)
                    verdict.replayAnalysis = stored.analysis
                    verdict.replaySession = stored.session
                    verdict.replayFindings = stored.findings
                    try database.recordReplay(
                        analysisID: stored.analysis, sessionID: stored.session, originalSessionID: item.plan.session,
                        steps: steps.map(Self.row))
                }
                verdicts.append(verdict)
            }
        } catch {
            // Nothing half-way: the analyses this run created go, with everything in them.
            for id in created { _ = try? database.deleteAnalysis(id: id) }
            throw ReplayError("cannot store the replay: \(error)")
        }
        return ReplayReport(
            verdicts: verdicts, replaySeconds: replaySeconds, storeSeconds: Date().timeIntervalSince(storeStarted),
            stepLatencies: latencies)
    }

    static func row(_ s: StepResult) -> ReplayStepRow {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let differences = (try? encoder.encode(s.differences)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        return ReplayStepRow(
            ordinal: s.ordinal, kind: s.kind, name: s.name, outcome: s.outcome.rawValue, regression: s.regression,
            recordedLatency: s.recordedLatency, replayedLatency: s.replayedLatency, differencesJSON: differences)
    }

    let runStamp: String = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }()

    /// Runs one replay's frames through the live analysis as their own analysis (source `replay`) and picks the
    /// replayed device's session.
    func store(
        _ frames: [(time: Timestamp, bytes: [UInt8])], end: Date, plan: ReplayPlan, ordinal: Int
    ) throws
        -> (analysis: Int64, session: Int64?, findings: [String])
    {
        let key = "replay:\(plan.session):\(runStamp):\(ProcessInfo.processInfo.processIdentifier):\(ordinal)"
        let run = try AnalysisRun(liveKey: key, capturePath: nil, database: database, toolVersion: toolVersion, source: "replay")
        for f in frames {
            try f.bytes.withUnsafeBytes { raw in
                try run.process(CaptureRecord(timestamp: f.time, linkType: .raw, data: raw, originalLength: raw.count))
            }
        }
        let endTime = max(Timestamp(nanoseconds: Int64(end.timeIntervalSince1970 * 1e9)), frames.last?.time ?? .zero)
        let report = try run.finishLive(files: [], end: endTime)
        let clientID: String? = plan.steps.lazy.compactMap { step -> String? in
            if case .connect(_, let id, _, _, _, _, _) = step.action { return id } else { return nil }
        }.first
        let chosen =
            report.sessions.first { $0.session.mqttClientID != nil && $0.session.mqttClientID == clientID }
            ?? report.sessions.first { $0.session.gatewaySN != nil && $0.session.gatewaySN == plan.gatewaySN }
            ?? report.sessions.first
        let findings = report.deviations.filter { chosen != nil && $0.session == chosen!.session.number }.map(\.rule.id)
        return (run.analysisID, chosen?.id, findings)
    }
}

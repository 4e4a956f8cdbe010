import PilotTraceCapture
import PilotTraceFlow
import PilotTraceProtocols
import PilotTraceWire

/// One input of the `pipeline` fuzz target: frames to findings. The bytes are read as a capture file when they are
/// one, the way `pilottrace analyze` reads it (sessions retired as soon as they are over); otherwise as a sequence of
/// frames, the way `capture` and `proxy` feed them (no retirement). Either way the frames go through ``TCPPipeline``,
/// ``StreamAnalyzer``, ``SessionTracker`` and ``DeviationEngine``, and both are finished at the end.
///
/// Frames: records of `[link][time step][length, 2 bytes big-endian][bytes]`; `link` indexes ``links``, the time step
/// `s` moves the clock by 2^(s & 0x3F - 1) microseconds (none for 0, at most 2^40), backwards when bit 7 is set.
///
/// Besides not crashing, the end must hold what `AnalysisRun` relies on: every retired session has its final number,
/// and session numbers are unique. Returns the number of sessions. Shared by `Fuzz/FuzzPipeline.swift` (libFuzzer)
/// and the replay of `Fuzz/regressions/pipeline/`.
public enum PipelineFuzzTarget {
    /// The link types a frame's first byte picks from.
    public static let links: [LinkType] = [
        .ethernet, .linuxSLL, .linuxSLL2, .null, .raw, .ipv4, .ipv6, .loop, .rawBSD12, .rawBSD14,
    ]

    @discardableResult
    public static func run(_ input: [UInt8]) -> Int {
        let sessions = TemporaryCaptureFile.with(input) { path -> Int? in
            var analysis = Analysis(retireSessions: true)
            var pipeline = TCPPipeline()
            let files: [CaptureFileReport], error: CaptureFileError?
            do {
                (files, error) = try CaptureFiles.analyze(
                    [path], pipeline: &pipeline,
                    secrets: { type, data in
                        // A pcapng file's own key log (Decryption Secrets Block): its TLS is decrypted.
                        if type == CaptureFileReader.tlsKeyLogSecrets { analysis.analyzer.tlsKeys.merge(TLSKeyLog(data)) }
                    }
                ) { events in analysis.consume(events) }
            } catch {
                preconditionFailure("the analysis threw \(error): capture file errors are returned, and nothing else throws")
            }
            if error?.kind == .notACapture { return nil }
            return analysis.finish(fileEnd: files.compactMap(\.endTime).max())
        }
        return sessions ?? frames(input)
    }

    static func frames(_ input: [UInt8]) -> Int {
        var analysis = Analysis(retireSessions: false)
        var pipeline = TCPPipeline()
        var events: [StreamEvent] = []
        var t = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        var i = 0
        while i + 4 <= input.count {
            let link = links[Int(input[i]) % links.count]
            let step = input[i + 1]
            let length = Int(input[i + 2]) << 8 | Int(input[i + 3])
            i += 4
            let frame = input[i..<min(input.count, i + length)]
            i += frame.count
            if step & 0x3F != 0 {
                let micros = Int64(1) << Int64(min(Int(step & 0x3F) - 1, 40))
                t = Timestamp(nanoseconds: t.nanoseconds &+ (step & 0x80 == 0 ? micros : -micros) &* 1000)
            }
            frame.withUnsafeBytes { raw in
                pipeline.process(CaptureRecord(timestamp: t, linkType: link, data: raw, originalLength: raw.count), into: &events)
            }
            if !events.isEmpty {
                analysis.consume(events)
                events.removeAll(keepingCapacity: true)
            }
        }
        pipeline.finish(into: &events)
        analysis.consume(events)
        return analysis.finish(fileEnd: nil)
    }

    /// Decoded messages to sessions and findings, as `AnalysisRun` drives them (without the store).
    struct Analysis: ~Copyable {
        var analyzer = StreamAnalyzer()
        let tracker: SessionTracker
        let engine: DeviationEngine
        var decoded: [MessageEvent] = []
        var retired: Set<Int> = []
        var last: Timestamp?
        var messages: Int64 = 0

        init(retireSessions: Bool) {
            var sessions = SessionTracker.Configuration()
            sessions.retireSessions = retireSessions
            var rules = DeviationEngine.Configuration()
            rules.profile = sessions.profile
            rules.replyDeadline = sessions.replyDeadline
            tracker = SessionTracker(configuration: sessions)
            engine = DeviationEngine(configuration: rules)
        }

        mutating func consume(_ events: [StreamEvent]) {
            if let t = events.last.flatMap(Self.time) { last = max(last ?? t, t) }
            analyzer.consume(events, into: &decoded)
            for m in decoded {
                var ref: MessageRef?
                switch m {
                case .http(_, .request), .http(_, .response): messages += 1; ref = MessageRef(.http, messages)
                case .http(_, .webSocket): messages += 1; ref = MessageRef(.websocket, messages)
                case .mqtt: messages += 1; ref = MessageRef(.mqtt, messages)
                default: break
                }
                tracker.consume(m, ref: ref)
                engine.consume(m, ref: ref)
            }
            decoded.removeAll(keepingCapacity: true)
            if let last {
                tracker.advance(to: last)
                for s in tracker.takeRetired() {
                    engine.retire(s, at: last)
                    retired.insert(s.serial)
                }
            }
        }

        /// Finishes sessions and findings; returns the number of sessions.
        mutating func finish(fileEnd: Timestamp?) -> Int {
            let end = [last, fileEnd].compactMap { $0 }.max() ?? .zero
            let sessions = tracker.finish(at: end)
            _ = engine.finish(sessions: sessions, retiredNumbers: tracker.retiredNumbers, captureEnd: end)
            var numbers = Set(sessions.map(\.number))
            precondition(numbers.count == sessions.count, "two sessions share a number")
            for serial in retired {
                guard let n = tracker.retiredNumbers[serial] else {
                    preconditionFailure("retired session \(serial) has no final number")
                }
                precondition(numbers.insert(n).inserted, "retired session \(serial) has the number \(n) of another")
            }
            return numbers.count
        }

        static func time(_ e: StreamEvent) -> Timestamp? {
            switch e {
            case .opened(let info): info.firstSeen
            case .data(_, _, _, let t, _), .gap(_, _, _, let t), .conflict(_, _, _, _, let t), .end(_, _, let t): t
            case .closed(let s): s.lastSeen
            }
        }
    }
}

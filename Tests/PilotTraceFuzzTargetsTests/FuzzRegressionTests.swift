import Foundation
import PilotTraceFuzzTargets
import PilotTraceTestSupport
import PilotTraceWire
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Replays every input under `Fuzz/regressions/<target>/` through the function its libFuzzer target runs on one input
/// (`Fuzz/Targets/*FuzzTarget.swift`): inputs `scripts/fuzz` saved when a fuzzer crashed, hung or ran out of memory,
/// and inputs added by hand because they reach a corner (a truncated pcapng, a 4-byte MQTT remaining length). Each
/// must return: decoders may throw and report problems, but never trap.
///
/// Each input runs in a process of its own (an exit test), so an input that still crashes fails its own case, named
/// after the file, and the other inputs still run. The process has ``deadline`` seconds before SIGALRM ends it and
/// ``addressSpace`` bytes to allocate from, so an input that still hangs or exhausts memory fails as well, instead of
/// stopping `swift test` (Swift Testing's time limit does not end an exit test's process).
struct FuzzRegressionTests {
    /// The fuzz targets by the name of their folder under `Fuzz/regressions/` (and of their fuzzer, `fuzz-<name>`).
    static let targets: [String: @Sendable ([UInt8]) -> Int] = [
        "decoders": DecodersFuzzTarget.run,
        "capture-reader": CaptureReaderFuzzTarget.run,
        "pipeline": PipelineFuzzTarget.run,
        "tls": TLSFuzzTarget.run,
        "address-rewriter": AddressRewriterFuzzTarget.run,
    ]

    /// Seconds one input may take (libFuzzer's limit is 10, in an optimised build).
    static let deadline: UInt32 = 30
    /// Address space one input may use (libFuzzer's limit is 2 GB of memory, with AddressSanitizer's shadow besides).
    static let addressSpace: UInt = 8 << 30

    static var regressions: URL { TestPaths.packageRoot.appendingPathComponent("Fuzz/regressions") }

    struct Input: CustomTestStringConvertible, Sendable {
        var target: String
        var file: URL
        var testDescription: String { "\(target)/\(file.lastPathComponent)" }
    }

    static func files(in folder: URL) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: [.isRegularFileKey])) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static var inputs: [Input] {
        targets.keys.sorted().flatMap { target in files(in: regressions.appendingPathComponent(target)).map { Input(target: target, file: $0) } }
    }

    @Test func everyTargetHasRegressionsAndEveryFolderIsATarget() {
        let folders = Set(Self.files(in: Self.regressions).map(\.lastPathComponent))
        #expect(folders == Set(Self.targets.keys), "Fuzz/regressions/ holds a folder per fuzz target, no other")
        for target in Self.targets.keys.sorted() {
            #expect(!Self.files(in: Self.regressions.appendingPathComponent(target)).isEmpty, "Fuzz/regressions/\(target)/ is empty")
        }
    }

    @Test(arguments: inputs) func replays(_ input: Input) async throws {
        let target = input.target
        let bytes = Array(try Data(contentsOf: input.file))
        await #expect(processExitsWith: .success, "\(input.testDescription) crashes or hangs its fuzz target") {
            [target = target as String, bytes = bytes as [UInt8]] in
            alarm(Self.deadline)
            #if os(Linux)
            var limit = rlimit(rlim_cur: Self.addressSpace, rlim_max: Self.addressSpace)
            setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit)
            #endif
            _ = Self.targets[target]!(bytes)
        }
    }
}

/// The targets reach what they are meant to fuzz: an input that fell through to a trivial path (a capture the
/// temporary file lost, a conversation that never reached a decoder) would make the fuzzers and the replay above
/// pass by accident.
struct FuzzTargetReachTests {
    @Test(arguments: TestPaths.projectCaptureFiles.map(\.lastPathComponent))
    func theCaptureTargetsReadEveryProjectCaptureToItsSessions(_ name: String) throws {
        let bytes = Array(try Data(contentsOf: TestPaths.captures.appendingPathComponent(name)))
        #expect(CaptureReaderFuzzTarget.run(bytes) > 10)
        // A TLS capture whose key log lies beside it (NAME.keys) has no session without it; with its key log inside
        // (a Decryption Secrets Block), it has.
        let keys = TestPaths.captures.appendingPathComponent(name).deletingPathExtension().appendingPathExtension("keys")
        if FileManager.default.fileExists(atPath: keys.path) {
            #expect(PipelineFuzzTarget.run(bytes) == 0)
        } else {
            #expect(PipelineFuzzTarget.run(bytes) >= 1)
        }
    }

    @Test func aSequenceOfFramesReachesTheSessionTracker() throws {
        // A frame-sequence input (PipelineFuzzTarget's own format) holding one MQTT session, synthesised as the proxy
        // records (raw IPv4): the pipeline target's second way in, without a capture file.
        var tcp = TCPFrameSynthesizer(
            client: Endpoint(address: IPAddress("10.0.0.1")!, port: 50_000),
            server: Endpoint(address: IPAddress("10.0.0.2")!, port: 1883), initialSequence: (client: 999, server: 4999))
        let connect = MQTTWire.connect(clientID: "pilot", username: "pilot", password: "pilot123")
        // The gateway's status (an uplink topic) shows the client is a device: a session.
        let status = MQTTWire.publish("sys/product/5YSZL260021E9A/status", Array(#"{"tid":"t","bid":"b","method":"update_topo","data":{}}"#.utf8))
        let packets =
            tcp.handshake() + tcp.data(connect, from: .toServer) + tcp.data(MQTTWire.connAck(), from: .toClient)
            + tcp.data(status, from: .toServer)
        let link = try #require(PipelineFuzzTarget.links.firstIndex(of: TCPFrameSynthesizer.Format.recorded.link.linkType))
        var frames: [UInt8] = []
        for p in packets { frames += [UInt8(link), 11] + MQTTWire.u16(UInt16(p.count)) + p }  // a 1 ms step each
        #expect(frames[0] == 4, "not a capture file's magic: read as frames")
        #expect(PipelineFuzzTarget.run(frames) == 1)
    }

    @Test func aRecordedConversationReachesTheMQTTDecoder() {
        let connect = MQTTWire.connect(clientID: "pilot", username: "pilot", password: "pilot123")
        var input: [UInt8] = [6, 0xFF]
        input += [0] + MQTTWire.u16(UInt16(connect.count)) + connect
        input += [1] + MQTTWire.u16(4) + MQTTWire.connAck()
        // classified, CONNECT, CONNACK, closed
        #expect(DecodersFuzzTarget.run(input) >= 4)
    }

    @Test func theLoginResponsesAddressIsRewritten() {
        let body = #"{"code":0,"data":{"mqtt_addr":"tcp://cloud.example:1883","mqtt_username":"pilot"}}"#
        #expect(AddressRewriterFuzzTarget.run(Array(body.utf8)) == 1)
    }
}

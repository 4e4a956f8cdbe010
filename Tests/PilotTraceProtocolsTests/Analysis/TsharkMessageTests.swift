import Foundation
import PilotTraceCapture
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Message counts per capture: MQTT packets by type, HTTP requests and responses.
struct MessageCounts: Equatable, CustomStringConvertible {
    var mqtt: [String: Int] = [:]
    var httpRequests = 0
    var httpResponses = 0

    var description: String {
        let m = mqtt.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
        return "MQTT[\(m)] HTTP requests \(httpRequests) responses \(httpResponses)"
    }
}

/// The key log beside a capture (`NAME.keys` for `NAME.pcap`), if there is one.
func keyLogBeside(_ path: String) -> String? {
    let keys = URL(fileURLWithPath: path).deletingPathExtension().appendingPathExtension("keys").path
    return FileManager.default.fileExists(atPath: keys) ? keys : nil
}

/// Decodes a capture with pilottrace's pipeline (TLS decrypted with the key log beside it, or inside it).
/// `tlsPorts` are the servers' ports of decrypted TLS connections.
func decodeCapture(
    _ path: String
) throws -> (
    counts: MessageCounts, mqttPorts: Set<UInt16>, httpPorts: Set<UInt16>, tlsPorts: Set<UInt16>, events: [MessageEvent]
) {
    var pipeline = TCPPipeline()
    var analyzer = StreamAnalyzer()
    if let keys = keyLogBeside(path) { analyzer.tlsKeys = TLSKeyLog(Array(try Data(contentsOf: URL(fileURLWithPath: keys)))) }
    var out: [MessageEvent] = []
    _ = try CaptureFiles.analyze(
        [path], pipeline: &pipeline,
        secrets: { type, data in if type == CaptureFileReader.tlsKeyLogSecrets { analyzer.tlsKeys.merge(TLSKeyLog(data)) } }
    ) { events in analyzer.consume(events, into: &out) }
    var counts = MessageCounts()
    var mqttPorts = Set<UInt16>(), httpPorts = Set<UInt16>(), tlsPorts = Set<UInt16>()
    for e in out {
        switch e {
        case .classified(let info, let c):
            if c.decryption?.decrypted == true { tlsPorts.insert(info.server.port) }
            if c.appProtocol == .mqtt { mqttPorts.insert(info.server.port) }
            if c.appProtocol == .http { httpPorts.insert(info.server.port) }
        case .mqtt(_, _, let r, _, _): counts.mqtt[MQTTNames.tshark(r.packet.type), default: 0] += 1
        case .http(_, .request): counts.httpRequests += 1
        case .http(_, .response): counts.httpResponses += 1
        default: break
        }
    }
    return (counts, mqttPorts, httpPorts, tlsPorts, out)
}

enum MQTTNames {
    /// tshark's `mqtt.msgtype` numbers are the packet type values.
    static func tshark(_ t: MQTTPacketType) -> String { "\(t.rawValue)" }
}

/// The same counts from tshark's dissectors, with decode-as for the ports pilottrace found MQTT or HTTP on (inside TLS
/// for `tlsPorts`: tshark decrypts with the key log beside the capture, `-o tls.keylog_file:`, or the one inside it).
func tsharkCounts(_ path: String, mqttPorts: Set<UInt16>, httpPorts: Set<UInt16>, tlsPorts: Set<UInt16> = []) throws -> MessageCounts? {
    guard let tshark = TestPaths.which("tshark") else { return nil }
    var args = [
        "-n", "-r", path, "-o", "tcp.desegment_tcp_streams:TRUE", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
        "-e", "mqtt.msgtype", "-e", "http.request.method", "-e", "http.response.code",
    ]
    if let keys = keyLogBeside(path) { args += ["-o", "tls.keylog_file:\(keys)"] }
    for p in mqttPorts.sorted() where p != 1883 { args += ["-d", "\(tlsPorts.contains(p) ? "tls" : "tcp").port==\(p),mqtt"] }
    for p in httpPorts.sorted() where ![80, 8080].contains(p) { args += ["-d", "\(tlsPorts.contains(p) ? "tls" : "tcp").port==\(p),http"] }
    let r = try runProcess(tshark, args)
    guard r.status == 0 else { return nil }
    var c = MessageCounts()
    for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
        let f = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard f.count == 3 else { continue }
        for t in f[0].split(separator: ",") { c.mqtt[String(t), default: 0] += 1 }
        c.httpRequests += f[1].split(separator: ",").count
        c.httpResponses += f[2].split(separator: ",").count
    }
    return c
}

@Suite struct TsharkMessageTests {
    static let files: [URL] = TestPaths.which("tshark") == nil ? [] : TestPaths.publicCaptureFiles + TestPaths.projectCaptureFiles

    /// Where pilottrace and tshark 4.0 count messages differently, and why. Keys are folder/file.
    static let explained: [String: String] = [
        "Captures/tls12-resumed.pcap":
            "openssl s_server -www answers HTTP/1.0 without Content-Length, the body ending with the connection: tshark does not end a body delimited by close inside TLS (it counts the requests only); pilottrace ends it at the FIN",
        "Captures/tls13-resumed.pcap":
            "as tls12-resumed.pcap: the close-delimited HTTP/1.0 responses inside TLS are not counted by tshark; pilottrace ends them at the FIN",
        "arkime/http-tcp-seq-issue.pcap":
            "a partially overlapping retransmission confuses tshark's reassembly (it dissects no HTTP); pilottrace trims the overlap and decodes the request and its response",
        "arkime/twovlan.pcap": "the response ends before its Content-Length: tshark does not count it, pilottrace emits it marked incomplete (end-of-stream)",
        "arkime/wireshark-retrans.pcap":
            "tshark dissects two retransmitted response segments as responses again (6); pilottrace drops retransmissions and counts each response once (4)",
        "scapy/http_chunk.pcap.gz":
            "the capture starts with a 1-byte TCP keep-alive just before the request: pilottrace takes that byte as the client stream's first, and its resynchronisation restarts at line starts only, so the request line right after it is missed; the response is decoded, unpaired",
        "sv/mqtt-events-invalid-qos.pcap":
            "a PUBLISH with QoS 3 is malformed: pilottrace reports it and stops decoding that direction (no guessing after an error); tshark goes on and counts the PUBLISH and the DISCONNECT",
        "sv/mqtt-events-unassigned-msgtype.pcap":
            "a packet of reserved type 0 is malformed: pilottrace reports it and stops decoding that direction; tshark counts it and the DISCONNECT after it",
        "sv/mqtt5-excessiveproplen.pcap":
            "the CONNECT's property length runs past the packet and the CONNACK has 4 stray bytes: pilottrace reports both as malformed and stops decoding those directions; tshark counts them and the packets after them",
        "sv/tcp-rst-unacked-http.pcap":
            "the request is followed by a gap before the RST: tshark dissects nothing, pilottrace emits the request marked incomplete (gap)",
        "zeek/communityid_tcp.pcap":
            "the 96-byte snapshot length cuts the request line itself: pilottrace classifies the connection as HTTP from the cut line but emits no request it cannot read; tshark counts the fragment as a request",
        "zeek/http_261_variant-01-chunk_2pow64_overflow.pcap":
            "the chunk size 2^64 overflows: pilottrace reports it, emits the POST incomplete and resynchronises on the request smuggled after it (2 requests); tshark stops at the malformed chunk (1)",
        "zeek/http_entity_gap.pcap":
            "1,448 bytes of the response body are missing: tshark does not count the response, pilottrace emits it marked incomplete (gap, 1448 B lost)",
        "zeek/http_methods.pcap":
            "deliberately malformed request lines ('OPTIONS HTTP/1.1' without a target, 'OPTIONSHTTP/1.1', 'GET / HTTP/1.'): tshark's port-80 dissector counts them and their responses, pilottrace does not recognise those connections as HTTP by content and says so (port hint)",
    ]

    @Test(arguments: files)
    func messageCountsAgreeWithTshark(file: URL) throws {
        let name = file.deletingLastPathComponent().lastPathComponent + "/" + file.lastPathComponent
        let mine: (counts: MessageCounts, mqttPorts: Set<UInt16>, httpPorts: Set<UInt16>, tlsPorts: Set<UInt16>, events: [MessageEvent])
        do { mine = try decodeCapture(file.path) } catch { return }
        guard let theirs = try tsharkCounts(file.path, mqttPorts: mine.mqttPorts, httpPorts: mine.httpPorts, tlsPorts: mine.tlsPorts) else { return }
        let agree = mine.counts == theirs
        if let why = Self.explained[name] {
            #expect(!agree, "\(name) is listed as disagreeing with tshark but now agrees: update the list")
            if !agree { print("explained disagreement: \(name): \(why)\n  mine \(mine.counts)\n  tshark \(theirs)") }
        } else {
            #expect(agree, "\(name):\n  mine   \(mine.counts)\n  tshark \(theirs)")
        }
    }
}

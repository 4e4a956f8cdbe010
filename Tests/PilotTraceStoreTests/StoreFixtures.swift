import Foundation
import GRDB
import Testing

@testable import PilotTraceStore

/// A fresh folder under the system temporary folder, removed by `remove()`.
struct TemporaryFolder {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("pilottrace-store-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Runs `body` with a new database in a temporary folder, then removes the folder.
func withDatabase<T>(_ body: (PilotTraceDatabase, TemporaryFolder) throws -> T) throws -> T {
    let folder = try TemporaryFolder()
    defer { folder.remove() }
    let database = try PilotTraceDatabase.open(path: folder.path("db/pilottrace.sqlite"))
    return try body(database, folder)
}

/// Raw SQL helpers for checking what is really in the file.
extension PilotTraceDatabase {
    func scalar<T: DatabaseValueConvertible>(_ sql: String, _ arguments: StatementArguments = []) throws -> T? {
        try sqlite!.read { try T.fetchOne($0, sql: sql, arguments: arguments) }
    }

    func strings(_ sql: String) throws -> [String] {
        try sqlite!.read { try String.fetchAll($0, sql: sql) }
    }

    /// Rows in every table, whatever the analysis.
    func totalRows() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        // id_sequences holds one row per sequence, whatever the analyses.
        for table in Self.tableNames where table != "id_sequences" { counts[table] = try scalar("SELECT count(*) FROM \(table)") }
        return counts
    }
}

/// Everything written by `writeSmallAnalysis`, as the writer should have stored it.
struct SmallAnalysis {
    var analysisID: Int64
    var captures: [CaptureRow]
    var flows: [FlowRow]
    var http: [HTTPExchangeRow]
    var webSocket: [WebSocketMessageRow]
    var mqtt: [MQTTPacketRow]
    var session: SessionRow
    var timeline: [TimelineEventRow]
    var deviation: DeviationRow
}

/// Writes one analysis with a bit of everything: two captures, three flows (HTTP, MQTT over WebSocket, MQTT),
/// HTTP exchanges (complete, response-only, with empty and binary bodies), WebSocket messages, MQTT packets with a
/// password, one session with a timeline and one deviation.
func writeSmallAnalysis(
    _ database: PilotTraceDatabase, key: String = "aaaa,bbbb", t0: Double = 1_700_000_000.25
) throws -> SmallAnalysis {
    let captureInputs = [
        CaptureRow(ordinal: 0, path: "/captures/a.pcapng", sha256: "aaaa", format: "pcapng", compressed: false),
        CaptureRow(ordinal: 1, path: "/captures/b.pcap.gz", sha256: "bbbb", format: "pcap", compressed: true),
    ]
    let writer = try database.beginAnalysis(
        key: key, captures: captureInputs, toolVersion: "0.1.0-test", createdAt: Date(timeIntervalSince1970: 0))
    let a = writer.analysisID

    var captures = captureInputs
    captures[0].linkTypes = "EN10MB"
    captures[0].records = 120
    captures[0].firstTime = t0
    captures[0].lastTime = t0 + 10
    captures[1].linkTypes = "EN10MB,LINUX_SLL2"
    captures[1].records = 7
    captures[1].firstTime = t0 + 11
    captures[1].lastTime = t0 + 12.5
    captures[1].warnings = ["truncated last record", "snaplen 96 < frame 1514"]
    for capture in captures { try writer.updateCapture(capture) }

    let httpFlow = FlowRow(
        id: try writer.nextFlowID(), analysisID: a, connectionNumber: 1, client: "192.168.1.20:50123",
        server: "10.0.0.5:80", roleEvidence: "syn", protocol: "http", classificationEvidence: "first-bytes",
        classificationNote: "", firstTime: t0, lastTime: t0 + 3, closeReason: "fin", handshakeComplete: true,
        upPackets: 10, upBytes: 1500, upPayloadBytes: 900, upGaps: 0, upGapBytes: 0, upRetransmissions: 1,
        downPackets: 8, downBytes: 4000, downPayloadBytes: 3500, downGaps: 1, downGapBytes: 120,
        downRetransmissions: 0, communityID: "1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
    let wsFlow = FlowRow(
        id: try writer.nextFlowID(), analysisID: a, connectionNumber: 2, client: "[fe80::1]:50124", server: "[::1]:8083",
        roleEvidence: "port-hint", protocol: "http", classificationEvidence: "first-bytes",
        classificationNote: "WebSocket upgrade, MQTT inside", tlsServerName: nil, mqttRole: "device",
        firstTime: t0 + 1, lastTime: t0 + 9, closeReason: "capture-end", handshakeComplete: false)
    var mqttFlow = FlowRow(
        id: try writer.nextFlowID(), analysisID: a, connectionNumber: 3, client: "192.168.1.20:50125",
        server: "10.0.0.5:1883", roleEvidence: "syn", protocol: "mqtt", classificationEvidence: "first-bytes",
        tlsServerName: "mqtt.example.com", mqttRole: "cloud", firstTime: t0 + 2, lastTime: t0 + 2,
        closeReason: "open", handshakeComplete: true, tlsVersion: "TLS 1.3", tlsCipherSuite: "TLS_AES_128_GCM_SHA256",
        tlsALPN: "mqtt", tlsDecrypted: true)
    try writer.upsertFlow(httpFlow)
    try writer.upsertFlow(wsFlow)
    try writer.upsertFlow(mqttFlow)

    let http = [
        HTTPExchangeRow(
            id: try writer.nextHTTPID(), analysisID: a, flowID: httpFlow.id, sequence: 0, method: "POST",
            target: "/api/v1/login?token=secret", path: "/api/v1/login", query: "token=secret",
            requestHeaders: [HTTPHeaderField("Host", "10.0.0.5"), HTTPHeaderField("Content-Type", "application/json")],
            requestBody: Data(#"{"user":"pilot"}"#.utf8), requestBodyLength: 16, requestJSON: #"{"user":"pilot"}"#,
            requestTime: t0 + 0.5, status: 200, reason: "OK", responseHeaders: [HTTPHeaderField("Server", "x/1")],
            responseBody: Data([0x00, 0xff, 0x10, 0x80]), responseBodyLength: 4000, responseJSON: nil,
            responseTime: t0 + 0.75, incomplete: nil, captureOrdinal: 0, requestFirstFrame: 4, requestLastFrame: 5,
            responseFirstFrame: 7, responseLastFrame: 7),
        HTTPExchangeRow(
            id: try writer.nextHTTPID(), analysisID: a, flowID: httpFlow.id, sequence: 1, method: "GET",
            target: "/empty", path: "/empty", query: nil, requestHeaders: [], requestBody: Data(),
            requestBodyLength: 0, requestTime: t0 + 1, status: 404, reason: "Not Found", responseHeaders: [],
            responseBody: Data(), responseBodyLength: 0, responseTime: t0 + 1.5),
        HTTPExchangeRow(
            id: try writer.nextHTTPID(), analysisID: a, flowID: httpFlow.id, sequence: 2, status: 500,
            reason: "Internal Server Error", responseHeaders: [HTTPHeaderField("Connection", "close")],
            responseBody: Data("oops".utf8), responseBodyLength: 4, responseTime: t0 + 2,
            incomplete: "no-request"),
    ]
    for row in http { try writer.insertHTTPExchange(row) }

    let webSocket = [
        WebSocketMessageRow(
            id: try writer.nextWebSocketID(), analysisID: a, flowID: wsFlow.id, direction: "to-server", time: t0 + 1.1,
            kind: "text", length: 13, payload: Data(#"{"hello":"w"}"#.utf8), text: #"{"hello":"w"}"#,
            json: #"{"hello":"w"}"#, captureOrdinal: 0, firstFrame: 20, lastFrame: 20),
        WebSocketMessageRow(
            id: try writer.nextWebSocketID(), analysisID: a, flowID: wsFlow.id, direction: "to-client", time: t0 + 1.2,
            kind: "binary", length: 300, payload: Data([0x10, 0x00, 0xfe])),
        WebSocketMessageRow(
            id: try writer.nextWebSocketID(), analysisID: a, flowID: wsFlow.id, direction: "to-client", time: t0 + 9,
            kind: "close", length: 2, payload: Data([0x03, 0xe8]), closeCode: 1000),
    ]
    for row in webSocket { try writer.insertWebSocketMessage(row) }

    let mqtt = [
        MQTTPacketRow(
            id: try writer.nextMQTTID(), analysisID: a, flowID: wsFlow.id, direction: "to-server", time: t0 + 1.3,
            overWebSocket: true, version: "3.1.1", versionAssumed: false, type: "CONNECT", clientID: "pilot-1",
            username: "user", password: Data([0x70, 0x00, 0x77]), keepAlive: 60, summary: "CONNECT pilot-1",
            captureOrdinal: 0, firstFrame: 20, lastFrame: 21),
        MQTTPacketRow(
            id: try writer.nextMQTTID(), analysisID: a, flowID: wsFlow.id, direction: "to-client", time: t0 + 1.4,
            overWebSocket: true, version: "3.1.1", type: "CONNACK", returnCode: 0, summary: "CONNACK 0"),
        MQTTPacketRow(
            id: try writer.nextMQTTID(), analysisID: a, flowID: mqttFlow.id, direction: "to-server", time: t0 + 2,
            overWebSocket: false, version: "5.0", versionAssumed: true, type: "PUBLISH", packetID: 7, qos: 1,
            retain: false, dup: true, topic: "sys/product/GW1/status",
            payload: Data(#"{"method":"update_topo","tid":"t1"}"#.utf8), payloadLength: 35,
            payloadJSON: #"{"method":"update_topo","tid":"t1"}"#, summary: "PUBLISH sys/product/GW1/status"),
        MQTTPacketRow(
            id: try writer.nextMQTTID(), analysisID: a, flowID: mqttFlow.id, direction: "to-client", time: t0 + 2.2,
            version: "5.0", versionAssumed: true, type: "PUBLISH", qos: 0, retain: true, dup: false,
            topic: "sys/product/GW1/status_reply", payload: Data(#"{"tid":"t1"}"#.utf8), payloadLength: 12,
            payloadJSON: #"{"tid":"t1"}"#, summary: "PUBLISH reply"),
    ]
    for row in mqtt { try writer.insertMQTTPacket(row) }

    // The flow is updated after its messages were given: the last version is the one stored.
    mqttFlow.lastTime = t0 + 2.2
    mqttFlow.closeReason = "rst"
    mqttFlow.upPackets = 3
    try writer.upsertFlow(mqttFlow)

    var session = SessionRow(
        id: 0, analysisID: a, gatewaySN: "GW1", gatewayModel: "2-119-0",
        gatewayModelName: "DJI RC Plus", state: "online", startTime: t0 + 0.5, endTime: t0 + 9,
        client: "192.168.1.20", mqttClientID: "pilot-1", mqttUsername: "user", aircraftSNs: ["AC1", "AC2"],
        summaryJSON: #"{"steps":3}"#)

    var timeline = [
        TimelineEventRow(
            analysisID: a, sessionID: 0, ordinal: 0, time: t0 + 0.5, phase: "login", step: "http-login",
            ok: true, latency: 0.25, flowID: httpFlow.id, messageKind: "http", messageID: http[0].id,
            detailJSON: #"{"status":200}"#, captureOrdinal: 0, firstFrame: 4, lastFrame: 7),
        TimelineEventRow(
            analysisID: a, sessionID: 0, ordinal: 1, time: t0 + 1.3, phase: "connect", step: "mqtt-connect",
            ok: true, flowID: wsFlow.id, messageKind: "mqtt", messageID: mqtt[0].id),
        TimelineEventRow(
            analysisID: a, sessionID: 0, ordinal: 2, time: t0 + 2, phase: "topology", step: "status",
            ok: false, latency: nil, flowID: nil, messageKind: nil, messageID: nil, detailJSON: #"{"missing":true}"#),
    ]

    var deviation = DeviationRow(
        analysisID: a, sessionID: nil, ruleID: "mqtt.status-no-reply", severity: "warning",
        title: "status without status_reply", time: t0 + 2, flowID: mqttFlow.id, messageKind: "mqtt",
        messageID: mqtt[2].id, evidenceJSON: #"{"tid":"x"}"#, captureOrdinal: 1, firstFrame: 3, lastFrame: 3)
    try writer.storeSession(key: 1, session, timeline: timeline, findings: [deviation])
    try writer.flush()
    // The database gave the session its id; the rows as stored carry it.
    session.id = try #require(writer.sessionID(key: 1))
    for i in timeline.indices { timeline[i].sessionID = session.id }
    deviation.sessionID = session.id

    try writer.finish(
        frames: 127, frameBytes: 99_000, firstTime: t0, lastTime: t0 + 12.5, countersJSON: #"{"dropped":0}"#)

    var flowsStored = [httpFlow, wsFlow, mqttFlow]
    for i in flowsStored.indices { flowsStored[i].analysisID = a }
    var capturesStored = captures
    for i in capturesStored.indices { capturesStored[i].analysisID = a }
    return SmallAnalysis(
        analysisID: a, captures: capturesStored, flows: flowsStored, http: http, webSocket: webSocket, mqtt: mqtt,
        session: session, timeline: timeline, deviation: deviation)
}

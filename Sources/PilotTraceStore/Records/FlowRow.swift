import GRDB

/// One TCP connection (table `flows`). The id is assigned by ``AnalysisWriter/nextFlowID()``.
///
/// `up` is client → server, `down` is server → client.
public struct FlowRow: Codable, Sendable, Hashable {
    public var id: Int64
    /// Set by the writer.
    public var analysisID: Int64
    /// pilottrace's per-run connection number.
    public var connectionNumber: Int
    /// `1.2.3.4:5678` or `[::1]:80`.
    public var client: String
    public var server: String
    /// Why this end was taken as the client (SYN seen, port hint, …).
    public var roleEvidence: String
    /// `http`, `mqtt`, `tls` or `unknown`.
    public var `protocol`: String
    public var classificationEvidence: String
    public var classificationNote: String
    /// TLS SNI, when the connection is TLS and the ClientHello carried one.
    public var tlsServerName: String?
    /// `device`, `cloud` or `other` for MQTT connections; NULL otherwise.
    public var mqttRole: String?
    public var firstTime: Double
    public var lastTime: Double
    public var closeReason: String
    public var handshakeComplete: Bool
    public var upPackets: Int
    public var upBytes: Int
    public var upPayloadBytes: Int
    public var upGaps: Int
    public var upGapBytes: Int
    public var upRetransmissions: Int
    public var downPackets: Int
    public var downBytes: Int
    public var downPayloadBytes: Int
    public var downGaps: Int
    public var downGapBytes: Int
    public var downRetransmissions: Int
    /// The connection's Community ID (v1, seed 0: `1:` and a base64 SHA-1), as Zeek, Suricata and Wireshark compute it.
    public var communityID: String?
    /// TLS, as the handshake said it: `TLS 1.3`, `TLS 1.2`, …; NULL when not TLS or no ServerHello was captured.
    public var tlsVersion: String?
    /// The IANA name of the cipher suite the server chose (`TLS_AES_128_GCM_SHA256`, or `0x…`).
    public var tlsCipherSuite: String?
    /// The ALPN protocol the server chose.
    public var tlsALPN: String?
    /// Whether the records were decrypted with the key log; NULL when not TLS.
    public var tlsDecrypted: Bool?
    /// Why not: `no-key`, `unsupported-cipher-suite`, `authentication-failed`, `handshake-not-captured`, `malformed`.
    public var tlsFailure: String?

    public init(
        id: Int64, analysisID: Int64 = 0, connectionNumber: Int, client: String, server: String,
        roleEvidence: String, protocol: String, classificationEvidence: String, classificationNote: String = "",
        tlsServerName: String? = nil, mqttRole: String? = nil, firstTime: Double, lastTime: Double,
        closeReason: String, handshakeComplete: Bool,
        upPackets: Int = 0, upBytes: Int = 0, upPayloadBytes: Int = 0, upGaps: Int = 0, upGapBytes: Int = 0,
        upRetransmissions: Int = 0,
        downPackets: Int = 0, downBytes: Int = 0, downPayloadBytes: Int = 0, downGaps: Int = 0, downGapBytes: Int = 0,
        downRetransmissions: Int = 0, communityID: String? = nil, tlsVersion: String? = nil, tlsCipherSuite: String? = nil,
        tlsALPN: String? = nil, tlsDecrypted: Bool? = nil, tlsFailure: String? = nil
    ) {
        self.tlsVersion = tlsVersion
        self.tlsCipherSuite = tlsCipherSuite
        self.tlsALPN = tlsALPN
        self.tlsDecrypted = tlsDecrypted
        self.tlsFailure = tlsFailure
        self.id = id
        self.analysisID = analysisID
        self.connectionNumber = connectionNumber
        self.client = client
        self.server = server
        self.roleEvidence = roleEvidence
        self.protocol = `protocol`
        self.classificationEvidence = classificationEvidence
        self.classificationNote = classificationNote
        self.tlsServerName = tlsServerName
        self.mqttRole = mqttRole
        self.firstTime = firstTime
        self.lastTime = lastTime
        self.closeReason = closeReason
        self.handshakeComplete = handshakeComplete
        self.upPackets = upPackets
        self.upBytes = upBytes
        self.upPayloadBytes = upPayloadBytes
        self.upGaps = upGaps
        self.upGapBytes = upGapBytes
        self.upRetransmissions = upRetransmissions
        self.downPackets = downPackets
        self.downBytes = downBytes
        self.downPayloadBytes = downPayloadBytes
        self.downGaps = downGaps
        self.downGapBytes = downGapBytes
        self.downRetransmissions = downRetransmissions
        self.communityID = communityID
    }

    enum CodingKeys: String, CodingKey {
        case id
        case analysisID = "analysis_id"
        case connectionNumber = "connection_number"
        case client, server
        case roleEvidence = "role_evidence"
        case `protocol`
        case classificationEvidence = "classification_evidence"
        case classificationNote = "classification_note"
        case tlsServerName = "tls_server_name"
        case mqttRole = "mqtt_role"
        case firstTime = "first_time"
        case lastTime = "last_time"
        case closeReason = "close_reason"
        case handshakeComplete = "handshake_complete"
        case upPackets = "up_packets"
        case upBytes = "up_bytes"
        case upPayloadBytes = "up_payload_bytes"
        case upGaps = "up_gaps"
        case upGapBytes = "up_gap_bytes"
        case upRetransmissions = "up_retransmissions"
        case downPackets = "down_packets"
        case downBytes = "down_bytes"
        case downPayloadBytes = "down_payload_bytes"
        case downGaps = "down_gaps"
        case downGapBytes = "down_gap_bytes"
        case downRetransmissions = "down_retransmissions"
        case tlsVersion = "tls_version"
        case tlsCipherSuite = "tls_cipher_suite"
        case tlsALPN = "tls_alpn"
        case tlsDecrypted = "tls_decrypted"
        case tlsFailure = "tls_failure"
        case communityID = "community_id"
    }
}

extension FlowRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "flows"
}

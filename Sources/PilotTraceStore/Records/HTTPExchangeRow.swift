import Foundation
import GRDB

/// One HTTP field line, stored as the JSON array `[name, value]`.
public struct HTTPHeaderField: Codable, Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        name = try container.decode(String.self)
        value = try container.decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(name)
        try container.encode(value)
    }
}

/// One HTTP request and its response on a connection (table `http_exchanges`).
///
/// The id is assigned by ``AnalysisWriter/nextHTTPID()``. A response whose request was not captured has NULL
/// request fields; a request without a response has NULL response fields. `target` keeps secrets (tokens in the
/// query): readers that display it should mask them.
public struct HTTPExchangeRow: Codable, Sendable, Hashable {
    public var id: Int64
    /// Set by the writer.
    public var analysisID: Int64
    public var flowID: Int64
    /// Request index in its connection, from 0.
    public var sequence: Int
    public var method: String?
    /// The request target as sent (secrets included).
    public var target: String?
    public var path: String?
    /// The query without `?`; NULL when the target has none.
    public var query: String?
    public var requestHeaders: [HTTPHeaderField]?
    /// The request body: its content (Content-Encoding undone when that worked, else as carried), at most the
    /// analyser's cap. Empty (not NULL) when the request had no body.
    public var requestBody: Data?
    /// The true body length on the wire after de-chunking, lost bytes included (the stored body may be shorter).
    public var requestBodyLength: Int?
    /// The request body as JSON text, when it parsed as JSON.
    public var requestJSON: String?
    public var requestTime: Double?
    public var status: Int?
    public var reason: String?
    public var responseHeaders: [HTTPHeaderField]?
    /// Like `requestBody`.
    public var responseBody: Data?
    /// Like `requestBodyLength`.
    public var responseBodyLength: Int?
    public var responseJSON: String?
    public var responseTime: Double?
    /// Why the exchange is incomplete (`no-response`, `gap`, `truncated`, …); NULL when complete.
    public var incomplete: String?
    /// The capture file of the exchange's first frame (the request's, else the response's): the analysis's `captures`
    /// row of this ordinal.
    public var captureOrdinal: Int?
    /// The frames (Wireshark's `frame.number` in that file) of the request's first and last bytes and of the
    /// response's; NULL without that message, when not known, or when in another file.
    public var requestFirstFrame: Int?
    public var requestLastFrame: Int?
    public var responseFirstFrame: Int?
    public var responseLastFrame: Int?

    public init(
        id: Int64, analysisID: Int64 = 0, flowID: Int64, sequence: Int,
        method: String? = nil, target: String? = nil, path: String? = nil, query: String? = nil,
        requestHeaders: [HTTPHeaderField]? = nil, requestBody: Data? = nil, requestBodyLength: Int? = nil,
        requestJSON: String? = nil, requestTime: Double? = nil,
        status: Int? = nil, reason: String? = nil, responseHeaders: [HTTPHeaderField]? = nil,
        responseBody: Data? = nil, responseBodyLength: Int? = nil, responseJSON: String? = nil,
        responseTime: Double? = nil, incomplete: String? = nil, captureOrdinal: Int? = nil, requestFirstFrame: Int? = nil,
        requestLastFrame: Int? = nil, responseFirstFrame: Int? = nil, responseLastFrame: Int? = nil
    ) {
        self.id = id
        self.analysisID = analysisID
        self.flowID = flowID
        self.sequence = sequence
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.requestHeaders = requestHeaders
        self.requestBody = requestBody
        self.requestBodyLength = requestBodyLength
        self.requestJSON = requestJSON
        self.requestTime = requestTime
        self.status = status
        self.reason = reason
        self.responseHeaders = responseHeaders
        self.responseBody = responseBody
        self.responseBodyLength = responseBodyLength
        self.responseJSON = responseJSON
        self.responseTime = responseTime
        self.incomplete = incomplete
        self.captureOrdinal = captureOrdinal
        self.requestFirstFrame = requestFirstFrame
        self.requestLastFrame = requestLastFrame
        self.responseFirstFrame = responseFirstFrame
        self.responseLastFrame = responseLastFrame
    }

    enum CodingKeys: String, CodingKey {
        case id
        case analysisID = "analysis_id"
        case flowID = "flow_id"
        case sequence, method, target, path, query
        case requestHeaders = "request_headers_json"
        case requestBody = "request_body"
        case requestBodyLength = "request_body_length"
        case requestJSON = "request_json"
        case requestTime = "request_time"
        case status, reason
        case responseHeaders = "response_headers_json"
        case responseBody = "response_body"
        case responseBodyLength = "response_body_length"
        case responseJSON = "response_json"
        case responseTime = "response_time"
        case incomplete
        case captureOrdinal = "capture_ordinal"
        case requestFirstFrame = "request_first_frame"
        case requestLastFrame = "request_last_frame"
        case responseFirstFrame = "response_first_frame"
        case responseLastFrame = "response_last_frame"
    }
}

extension HTTPExchangeRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "http_exchanges"
    public static func databaseJSONEncoder(for column: String) -> JSONEncoder { StoreJSON.encoder() }
}

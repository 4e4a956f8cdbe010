import PilotTraceWire

/// What reading a capture file produced, besides its packets.
public struct CaptureFileReport: Sendable {
    public var path: String
    public var format: String
    public var compressed: Bool
    public var linkTypes: [LinkType]
    public var records: Int
    public var warnings: [String]
    /// The earliest and latest record timestamps (records need not be in time order).
    public var firstTime: Timestamp?
    public var lastTime: Timestamp?
    /// When the capture stopped, if the file says (pcapng `isb_endtime`); may be later than `lastTime`.
    public var endTime: Timestamp?

    public init(path: String, format: String, compressed: Bool, linkTypes: [LinkType], records: Int, warnings: [String],
                firstTime: Timestamp?, lastTime: Timestamp?, endTime: Timestamp? = nil) {
        self.endTime = endTime
        self.path = path
        self.format = format
        self.compressed = compressed
        self.linkTypes = linkTypes
        self.records = records
        self.warnings = warnings
        self.firstTime = firstTime
        self.lastTime = lastTime
    }
}

/// Drives capture files through a ``TCPPipeline``: the offline analysis loop.
public enum CaptureFiles {
    /// Progress of a file being read: (path, bytes consumed, file size, records so far).
    public typealias Progress = (String, UInt64, UInt64?, Int) -> Void

    /// Reads `paths` in order into one pipeline (a rotated capture's pieces continue each other) and hands every
    /// batch of stream events to `consume`. The pipeline is finished (every connection released) even when a
    /// file is corrupt, so nothing read before the error is lost; the error is returned, not thrown.
    /// - Returns: a report per file read, and the first error, which stopped reading.
    public static func analyze(
        _ paths: [String],
        pipeline: inout TCPPipeline,
        progress: Progress? = nil,
        consume: (inout [StreamEvent]) throws -> Void
    ) throws -> (files: [CaptureFileReport], error: CaptureFileError?) {
        var reports: [CaptureFileReport] = []
        var failure: CaptureFileError?
        var events: [StreamEvent] = []
        events.reserveCapacity(64)
        for path in paths {
            let reader: CaptureFileReader
            do {
                reader = try CaptureFileReader(path: path)
            } catch let e as CaptureFileError {
                failure = e
                break
            } catch {
                failure = CaptureFileError(path: path, offset: nil, kind: .io, message: "\(error)")
                break
            }
            var records = 0
            var first: Timestamp?, last: Timestamp?
            do {
                try reader.forEach { record in
                    records += 1
                    if first == nil || record.timestamp < first! { first = record.timestamp }
                    if last == nil || record.timestamp > last! { last = record.timestamp }
                    pipeline.process(record, into: &events)
                    if !events.isEmpty {
                        try consume(&events)
                        events.removeAll(keepingCapacity: true)
                    }
                    if records & 0x3fff == 0, let progress {
                        progress(path, reader.consumedBytes, reader.fileSize, records)
                    }
                }
            } catch let e as CaptureFileError {
                failure = e
            }
            reports.append(CaptureFileReport(path: path, format: reader.format.rawValue, compressed: reader.compressed,
                                             linkTypes: reader.linkTypes, records: records, warnings: reader.warnings,
                                             firstTime: first, lastTime: last, endTime: reader.endTime))
            if failure != nil { break }
        }
        pipeline.finish(into: &events)
        try consume(&events)
        return (reports, failure)
    }
}

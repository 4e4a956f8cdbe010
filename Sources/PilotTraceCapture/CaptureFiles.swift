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

    public init(
        path: String, format: String, compressed: Bool, linkTypes: [LinkType], records: Int, warnings: [String],
        firstTime: Timestamp?, lastTime: Timestamp?, endTime: Timestamp? = nil
    ) {
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

    /// Seconds with six decimals, for messages.
    static func microseconds(_ s: Double) -> String {
        let us = Int64((s * 1e6).rounded())
        let frac = String(us % 1_000_000)
        return "\(us / 1_000_000).\(String(repeating: "0", count: 6 - frac.count))\(frac)"
    }

    /// Capture files in time order, by each file's first record (read from the file: nothing else of it is read).
    /// Files whose first record cannot be read keep their place after the others (reading them reports why).
    /// - Returns: the paths in time order, and whether that differs from the order given.
    public static func ordered(_ paths: [String]) -> (paths: [String], reordered: Bool) {
        guard paths.count > 1 else { return (paths, false) }
        struct Stop: Error {}
        let firsts: [Timestamp?] = paths.map { path in
            guard let reader = try? CaptureFileReader(path: path) else { return nil }
            var first: Timestamp?
            do {
                try reader.forEach { record in
                    first = record.timestamp
                    throw Stop()
                }
            } catch {}
            return first
        }
        let order = paths.indices.sorted { a, b in
            switch (firsts[a], firsts[b]) {
            case let (x?, y?): return (x, a) < (y, b)
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return a < b
            }
        }
        return (order.map { paths[$0] }, order != Array(paths.indices))
    }

    /// Reads `paths` in order into one pipeline (a rotated capture's pieces continue each other) and hands every
    /// batch of stream events to `consume`. Frames are numbered from 1 in each file, the file being its position in
    /// `paths` (``TCPPipeline/beginFile(_:)``). The pipeline is finished (every connection released) even when a
    /// file is corrupt, so nothing read before the error is lost; the error is returned, not thrown.
    /// `shouldStop` is asked every 1,024 records: when it says yes, reading stops there as at the end of the input
    /// (the file read so far is reported, the pipeline finished).
    /// - Returns: a report per file read, and the first error, which stopped reading.
    public static func analyze(
        _ paths: [String],
        pipeline: inout TCPPipeline,
        progress: Progress? = nil,
        shouldStop: (() -> Bool)? = nil,
        secrets: ((_ type: UInt32, _ data: [UInt8]) -> Void)? = nil,
        consume: (inout [StreamEvent]) throws -> Void
    ) throws -> (files: [CaptureFileReport], error: CaptureFileError?) {
        struct StopReading: Error {}
        var stopped = false
        var reports: [CaptureFileReport] = []
        var failure: CaptureFileError?
        var events: [StreamEvent] = []
        events.reserveCapacity(64)
        for (ordinal, path) in paths.enumerated() {
            // Frames are numbered per file, as Wireshark numbers them (`frame.number`).
            pipeline.beginFile(ordinal)
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
            reader.secrets = secrets
            var records = 0
            var first: Timestamp?, last: Timestamp?
            var previous: Timestamp?
            var backwards = (count: 0, largest: 0.0, record: 0)
            do {
                try reader.forEach { record in
                    records += 1
                    if let p = previous, record.timestamp < p {
                        let step = p.seconds(since: record.timestamp)
                        if step > backwards.largest { backwards.largest = step; backwards.record = records }
                        backwards.count += 1
                    }
                    previous = record.timestamp
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
                    if records & 0x3ff == 0, let shouldStop, shouldStop() {
                        stopped = true
                        throw StopReading()
                    }
                }
            } catch let e as CaptureFileError {
                failure = e
            } catch is StopReading {}
            var warnings = reader.warnings
            if backwards.count > 0 {
                warnings.append(
                    "\(path): time goes backwards \(backwards.count) time\(backwards.count == 1 ? "" : "s") (the largest step back is \(microseconds(backwards.largest)) s, at record \(backwards.record)); records are analyzed in file order"
                )
            }
            if let previousFile = reports.last, let end = previousFile.lastTime, let first, first < end {
                warnings.append(
                    "\(path) overlaps \(previousFile.path) in time (it starts \(microseconds(end.seconds(since: first))) s before that one's last record); the files are read one after the other, not merged (mergecap merges them)"
                )
            }
            reports.append(
                CaptureFileReport(
                    path: path, format: reader.format.rawValue, compressed: reader.compressed,
                    linkTypes: reader.linkTypes, records: records, warnings: warnings,
                    firstTime: first, lastTime: last, endTime: reader.endTime))
            if failure != nil || stopped { break }
        }
        pipeline.finish(into: &events)
        try consume(&events)
        return (reports, failure)
    }
}

import PilotTraceCapture
import PilotTraceWire

/// One input of the `capture-reader` fuzz target: the bytes as a capture file (pcap in its variants, pcapng, either
/// gzip-compressed) read record by record by ``CaptureFileReader``.
///
/// Reading must end with the records, a warning (a file cut short) or a ``CaptureFileError``; every record it hands
/// out must lie inside the reader's buffer (each byte is read, so AddressSanitizer sees a slice past it) and name an
/// interface the file described. Returns the number of records read. Shared by `Fuzz/FuzzCaptureReader.swift`
/// (libFuzzer) and the replay of `Fuzz/regressions/capture-reader/`.
public enum CaptureReaderFuzzTarget {
    @discardableResult
    public static func run(_ input: [UInt8]) -> Int {
        TemporaryCaptureFile.with(input) { path in
            let reader: CaptureFileReader
            do {
                reader = try CaptureFileReader(path: path)
            } catch {
                precondition(error is CaptureFileError, "opening threw \(type(of: error)), not a CaptureFileError")
                return 0
            }
            var checksum: UInt8 = 0, records = 0
            do {
                try reader.forEach { record in
                    precondition(
                        record.data.count <= record.originalLength,
                        "captured \(record.data.count) of \(record.originalLength) bytes")
                    precondition(
                        record.interface < reader.linkTypes.count,
                        "record on interface \(record.interface) of \(reader.linkTypes.count)")
                    precondition(reader.linkTypes[record.interface] == record.linkType, "record's link type is not its interface's")
                    for b in record.data { checksum &+= b }
                    records += 1
                }
            } catch {
                precondition(error is CaptureFileError, "reading threw \(type(of: error)), not a CaptureFileError")
            }
            _ = (checksum, reader.warnings, reader.endTime, reader.consumedBytes)
            return records
        }
    }
}

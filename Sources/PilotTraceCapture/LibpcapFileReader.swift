import CPcap
import PilotTraceWire

/// Reads a capture file through libpcap's offline reader (nanosecond precision).
///
/// pilottrace's own ``CaptureFileReader`` is the one analysis uses (libpcap refuses pcapng files whose
/// interfaces have different link types and cannot read gzip); this one is the baseline it is checked and
/// benchmarked against.
public final class LibpcapFileReader {
    let handle: OpaquePointer
    public let path: String
    public let linkType: LinkType

    public init(path: String) throws {
        self.path = path
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
            let message = String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CaptureFileError(path: path, offset: nil, kind: .notACapture, message: "libpcap: \(message)")
        }
        handle = h
        linkType = LinkType(rawValue: UInt32(pcap_datalink(h)))
    }

    deinit { pcap_close(handle) }

    /// libpcap's version string.
    public static var version: String { String(cString: pcap_lib_version()) }

    /// Calls `body` for every record. Throws with libpcap's message when it stops on an error.
    public func forEach(_ body: (CaptureRecord) throws -> Void) throws {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        while true {
            let rc = pcap_next_ex(handle, &header, &data)
            if rc == 1, let h = header?.pointee, let d = data {
                let ts = Timestamp(seconds: Int64(h.ts.tv_sec), nanoseconds: Int64(h.ts.tv_usec))
                try body(
                    CaptureRecord(
                        timestamp: ts, linkType: linkType,
                        data: UnsafeRawBufferPointer(start: d, count: Int(h.caplen)),
                        originalLength: Int(h.len)))
            } else if rc == PCAP_ERROR_BREAK {
                return
            } else {
                throw CaptureFileError(
                    path: path, offset: nil, kind: .corruptHeader,
                    message: "libpcap: \(String(cString: pcap_geterr(handle)))")
            }
        }
    }
}

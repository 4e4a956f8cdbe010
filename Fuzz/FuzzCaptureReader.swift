// libFuzzer entry point of the `capture-reader` target (scripts/fuzz): the bytes as a capture file (pcap, pcapng,
// gzip) read by CaptureFileReader.
// What one input does is Fuzz/Targets/CaptureReaderFuzzTarget.swift; the tests replay
// Fuzz/regressions/capture-reader/ through it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    _ = CaptureReaderFuzzTarget.run(count == 0 ? [] : Array(UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}

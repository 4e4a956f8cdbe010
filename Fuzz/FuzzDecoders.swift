// libFuzzer entry point of the `decoders` target (scripts/fuzz): the pure decoders (MQTT, HTTP, WebSocket, detection,
// packet decoding and reassembly, the stream analyzer), the first byte picking which.
// What one input does is Fuzz/Targets/DecodersFuzzTarget.swift; the tests replay
// Fuzz/regressions/decoders/ through it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    _ = DecodersFuzzTarget.run(count == 0 ? [] : Array(UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}

// libFuzzer entry point of the `address-rewriter` target (scripts/fuzz): the proxy's mqtt_addr rewriting of
// JSON bodies (MQTTAddressRewriter, its source compiled into the fuzzer).
// What one input does is Fuzz/Targets/AddressRewriterFuzzTarget.swift; the tests replay
// Fuzz/regressions/address-rewriter/ through it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    _ = AddressRewriterFuzzTarget.run(count == 0 ? [] : Array(UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}

// libFuzzer entry point of the `tls` target (scripts/fuzz): the TLS record parser and decryption with a key log carried
// in the input, then the analyzer on the plaintext. What one input does is Fuzz/Targets/TLSFuzzTarget.swift; the tests
// replay Fuzz/regressions/tls/ through it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    _ = TLSFuzzTarget.run(count == 0 ? [] : Array(UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}

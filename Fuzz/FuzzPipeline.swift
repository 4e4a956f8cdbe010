// libFuzzer entry point of the `pipeline` target (scripts/fuzz): frames to findings: a capture file or a sequence of
// frames through TCPPipeline, StreamAnalyzer, SessionTracker and DeviationEngine.
// What one input does is Fuzz/Targets/PipelineFuzzTarget.swift; the tests replay
// Fuzz/regressions/pipeline/ through it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    _ = PipelineFuzzTarget.run(count == 0 ? [] : Array(UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}

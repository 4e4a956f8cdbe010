import Testing

@testable import PilotTraceWire

@Suite struct TimestampTests {
    @Test(arguments: [
        (0, "1970-01-01T00:00:00.000000Z", 0.0),
        (1_795_000_000_123_456_789, "2026-11-18T11:06:40.123456Z", 1_795_000_000.123456),
        (-1, "1969-12-31T23:59:59.999999Z", -0.000001),
        (-1_000_000_001, "1969-12-31T23:59:58.999999Z", -1.000001),
    ] as [(Int64, String, Double)])
    func printsUTCToTheMicrosecondRoundingDown(nanoseconds: Int64, text: String, seconds: Double) {
        let t = Timestamp(nanoseconds: nanoseconds)
        #expect(t.iso8601 == text)
        #expect(t.epochSeconds == seconds)
    }

    /// A tracker's clock starts at `.min`: printing it (a debugger, a dump) must not trap on overflow.
    @Test func theEndsOfTheRangePrint() {
        #expect(Timestamp(nanoseconds: .min).iso8601 == "1677-09-21T00:12:43.145224Z")
        #expect(Timestamp(nanoseconds: .max).iso8601 == "2262-04-11T23:47:16.854775Z")
        #expect(Timestamp(nanoseconds: .min).epochSeconds == -9_223_372_036.854776)
    }
}

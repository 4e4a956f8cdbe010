import Testing

@testable import PilotTraceProtocols

@Suite struct ByteCursorTests {
    @Test func readsBigEndianFieldsAndStopsAtTheEnd() {
        var c = ByteCursor([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07])
        #expect(c.u8() == 0x01)
        #expect(c.u16() == 0x0203)
        #expect(c.u32() == 0x0405_0607)
        #expect(c.isAtEnd)
        #expect(c.u8() == nil)
    }

    @Test func respectsAnEndBeforeTheArrayEnds() {
        var c = ByteCursor([1, 2, 3, 4], from: 1, to: 3)
        #expect(c.remaining == 2)
        #expect(c.u32() == nil)
        #expect(c.take(2).map(Array.init) == [2, 3])
        #expect(c.skip(1) == false)
    }
}

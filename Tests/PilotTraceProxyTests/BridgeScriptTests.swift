import Testing

@testable import PilotTraceProxy

struct BridgeScriptTests {
    func inject(_ html: String) -> String? { BridgeScript.inject(into: Array(html.utf8)).map { String(decoding: $0, as: UTF8.self) } }

    @Test func theScriptGoesAfterTheCharsetDeclarationInHead() throws {
        let page = #"<!DOCTYPE html><html><HEAD><meta charset="utf-8"><title>x</title></HEAD><body></body></html>"#
        let out = try #require(inject(page))
        #expect(out.hasPrefix(#"<!DOCTYPE html><html><HEAD><meta charset="utf-8"><script data-pilottrace="bridge">"#))
        #expect(out.hasSuffix("</script><title>x</title></HEAD><body></body></html>"))
        #expect(out.replacingOccurrences(of: BridgeScript.element, with: "") == page)
    }

    @Test func withoutACharsetRightAfterHead() throws {
        let out = try #require(inject("<html lang=en><head data-x=1><title>x</title></head></html>"))
        #expect(out.hasPrefix("<html lang=en><head data-x=1>" + BridgeScript.element + "<title>"))
    }

    @Test func withoutHeadAfterHtmlOrTheDoctypeOrAtTheStart() throws {
        #expect(inject("<!doctype html><html><p>x") == "<!doctype html><html>" + BridgeScript.element + "<p>x")
        #expect(inject("<!doctype html><p>x") == "<!doctype html>" + BridgeScript.element + "<p>x")
        #expect(inject("<p>x") == BridgeScript.element + "<p>x")
        // <header> is not <head>
        #expect(inject("<header>h</header>") == BridgeScript.element + "<header>h</header>")
    }

    @Test func aPageIsInjectedOnceAndTheScriptCannotCloseItsElement() throws {
        let once = try #require(inject("<head></head>"))
        #expect(inject(once) == nil)
        #expect(!BridgeScript.source.contains("</script"))
        #expect(BridgeScript.source.contains(BridgeScript.reportPath))
    }
}

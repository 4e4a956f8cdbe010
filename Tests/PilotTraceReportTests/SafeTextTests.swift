import PilotTraceReport
import Testing

/// Capture text is shown, never obeyed: terminal escapes, bells, carriage returns, bidi overrides and markup.
@Suite struct SafeTextTests {
    @Test func terminalControlsBecomeVisibleEscapes() {
        #expect(SafeText.terminal("a\u{1B}[41mred\u{07}") == "a\\u{1B}[41mred\\u{7}")
        #expect(SafeText.terminal("over\rwrite") == "over\\u{D}write")
        #expect(SafeText.terminal("left\u{202E}thgir") == "left\\u{202E}thgir")
        #expect(SafeText.terminal("\u{2066}isolate\u{2069}") == "\\u{2066}isolate\\u{2069}")
        #expect(SafeText.terminal("\u{9B}31m") == "\\u{9B}31m")  // C1 CSI
        #expect(SafeText.terminal("del\u{7F}") == "del\\u{7F}")
        // Our own layout (line feeds, tabs) and ordinary text, accents and CJK included, are kept as they are.
        #expect(SafeText.terminal("a\tb\nc é 中") == "a\tb\nc é 中")
    }

    @Test func aListingLineKeepsToOneLine() {
        #expect(SafeText.line("two\nlines\there") == "two\\nlines\\there")
    }

    @Test func markdownShowsMarkupAsText() {
        #expect(
            SafeText.markdown("<b>x</b> & [link](http://a) | *em* _u_ `c` ~s~ \\")
                == "&lt;b&gt;x&lt;/b&gt; &amp; \\[link\\](http://a) \\| \\*em\\* \\_u\\_ \\`c\\` \\~s\\~ \\\\")
        #expect(SafeText.markdown("ESC\u{1B}") == "ESC\\\\u{1B}")  // the escape's backslash is escaped for Markdown too
    }

    @Test func mermaidLabelsCannotEndTheStatementOrOpenMarkup() {
        #expect(SafeText.mermaid("a;b#c<d>e%f\"g") == "a#59;b#35;c#lt;d#gt;e#37;f#quot;g")
        #expect(SafeText.mermaid("line\nbreak") == "line\\nbreak")
    }
}

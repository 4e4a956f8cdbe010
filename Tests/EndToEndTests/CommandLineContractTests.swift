import Foundation
import PilotTraceTestSupport
import Testing

/// The command-line contract CI relies on: one exit-status table for every command, errors as one line on stderr,
/// nothing created by a failed start, text that shows what a capture says without obeying it, summaries that stay
/// short, and README equal to `--help`.
@Suite struct CommandLineContractTests {
    static let capture = TestPaths.captures.appendingPathComponent("lab-clean-login.pcapng").path
    static let failing = TestPaths.captures.appendingPathComponent("lab-no-status-reply.pcapng").path

    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// One line on stderr, starting `error: `, and no Swift or Foundation type name.
    static func expectOneLineError(_ r: ProcessResult, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
        #expect(lines.count == 1, "\(context): \(r.stderr)", sourceLocation: sourceLocation)
        for bad in ["Optional(", "Error Domain=", "errno:", "CommandError", "DecodingError", "SingleConnectionFailure", "failedToLoad"] {
            #expect(!r.stderr.contains(bad), "\(context): \(r.stderr)", sourceLocation: sourceLocation)
        }
        #expect(r.stdout.isEmpty || !r.stdout.contains("error:"), "\(context): errors go to stderr", sourceLocation: sourceLocation)
    }

    /// A loopback port this test listens on (so a command asked to listen there cannot), and its socket to close.
    static func takenPort() -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = listen(fd, 1)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, UInt16(bigEndian: addr.sin_port))
    }

    // MARK: - 0 and 1

    @Test func findingsAtOrAboveFailOnExitOneWithAndWithoutStoring() throws {
        let db = try Self.folder().appendingPathComponent("a.sqlite").path
        #expect(try pilottrace("analyze", "--db", db, Self.capture).status == 0)
        #expect(try pilottrace("analyze", "--db", db, Self.capture, "--fail-on", "error").status == 0)
        #expect(try pilottrace("analyze", "--db", db, Self.capture, "--fail-on", "info").status == 1)  // cleartext-credentials
        #expect(try pilottrace("analyze", "--db", db, Self.failing, "--fail-on", "error").status == 1)
        #expect(try pilottrace("analyze", "--no-store", Self.failing, "--fail-on", "error").status == 1)
        #expect(try pilottrace("analyze", "--no-store", Self.failing).status == 0)
        #expect(try pilottrace("analyze", "--no-store", Self.capture, "--fail-on", "warning").status == 0)
    }

    // MARK: - 2: could not do the job

    @Test func unreadableCapturesExitTwoAndCreateNothing() throws {
        let dir = try Self.folder()
        let db = dir.appendingPathComponent("never.sqlite").path
        let missing = dir.appendingPathComponent("missing.pcap").path
        let notACapture = try temporaryFile("notes.pcap", Array("just some text\n".utf8))
        for path in [missing, notACapture] {
            for command in [["analyze", "--db", db], ["analyze", "--no-store"], ["flows"], ["messages"]] {
                let r = try pilottrace(command + [path])
                #expect(r.status == 2, "\(command) \(path): \(r.stderr)")
                Self.expectOneLineError(r, "\(command)")
                #expect(r.stderr.contains(path))
            }
        }
        #expect(!FileManager.default.fileExists(atPath: db), "a failed analyze created the database")
    }

    @Test func aCorruptCaptureExitsTwoAndKeepsWhatWasRead() throws {
        // A valid header, then a record claiming 4 GiB (a crafted length): corrupt, not "cut short".
        var bytes: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0]
        bytes += [0, 0xF1, 0x53, 0x65, 0, 0, 0, 0, 0xF0, 0xFF, 0xFF, 0xFF, 0xF0, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0x41, count: 64)
        let file = try temporaryFile("huge.pcap", bytes)
        for command in [["analyze", "--no-store"], ["flows"], ["messages"]] {
            let r = try pilottrace(command + [file])
            #expect(r.status == 2, "\(command): \(r.stderr)")
            #expect(r.stderr.contains("\(file): offset 24: record claims 4294967280 captured bytes"), "\(r.stderr)")
        }
    }

    @Test func unusableDatabasesExitTwoAndAreNotChanged() throws {
        let dir = try Self.folder()
        let text = dir.appendingPathComponent("text.db").path
        try "not a database\n".write(toFile: text, atomically: true, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: text))
        let commands: [[String]] = [
            ["analyze", Self.capture], ["sessions"], ["timeline"], ["deviations"], ["report", "--out", "-"],
            ["replay", "--all", "--target-http", "http://127.0.0.1:9"],
        ]
        for c in commands {
            let r = try pilottrace(c + ["--db", text])
            #expect(r.status == 2, "\(c): \(r.stderr)")
            Self.expectOneLineError(r, "\(c)")
            #expect(r.stderr.contains(text), "\(c): \(r.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: text)) == before)
        // A query on a database that does not exist creates none.
        let none = dir.appendingPathComponent("none.sqlite").path
        for c in [["sessions"], ["timeline"], ["deviations"]] {
            let r = try pilottrace(c + ["--db", none])
            #expect(r.status == 2, "\(c)")
            #expect(r.stderr.contains("no such database"))
        }
        #expect(!FileManager.default.fileExists(atPath: none))
    }

    @Test func unknownSessionsExitTwoEverywhere() throws {
        let db = try Self.folder().appendingPathComponent("a.sqlite").path
        #expect(try pilottrace("analyze", "--db", db, Self.capture).status == 0)
        for c in [["timeline", "999"], ["deviations", "--session", "999"], ["report", "999", "--out", "-"]] {
            let r = try pilottrace(c + ["--db", db])
            #expect(r.status == 2, "\(c): \(r.stderr)")
            #expect(r.stderr == "error: no session 999 in \(db)\n", "\(c)")
        }
    }

    @Test func writingIntoAMissingFolderIsAOneLineError() throws {
        let db = try Self.folder().appendingPathComponent("a.sqlite").path
        #expect(try pilottrace("analyze", "--db", db, Self.capture).status == 0)
        let nowhere = "/nonexistent-\(UUID().uuidString)/x"
        let report = try pilottrace("report", "--db", db, "--out", "/proc/\(nowhere)")
        #expect(report.status == 2)
        Self.expectOneLineError(report, "report --out")
        // The JUnit file's folder is checked before anything is replayed.
        let replay = try pilottrace("replay", "--all", "--db", db, "--target-http", "http://127.0.0.1:9", "--junit", nowhere + "/out.xml")
        #expect(replay.status == 2)
        #expect(replay.stderr == "error: --junit \(nowhere)/out.xml: no such folder \(nowhere)\n")
    }

    @Test func aReplayThatCannotRunStillWritesItsJUnitFile() throws {
        let dir = try Self.folder()
        let db = dir.appendingPathComponent("a.sqlite").path
        #expect(try pilottrace("analyze", "--db", db, Self.capture).status == 0)
        let junit = dir.appendingPathComponent("out.xml").path
        // Nothing listens on port 9 (discard): the target does not answer.
        let r = try pilottrace("replay", "--all", "--db", db, "--target-http", "http://127.0.0.1:9", "--junit", junit)
        #expect(r.status == 2, "\(r.stderr)")
        Self.expectOneLineError(r, "replay")
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<error type=\"replay-error\""))
        #expect(xml.contains("errors=\"1\""))
    }

    @Test func aProxyThatCannotStartStoresNothing() throws {
        let dir = try Self.folder()
        let db = dir.appendingPathComponent("p.sqlite").path
        // A port already taken: this test's own listener.
        let (fd, port) = Self.takenPort()
        defer { close(fd) }
        let r = try pilottrace("proxy", "--http-listen", "127.0.0.1:\(port)", "--http-upstream", "http://127.0.0.1:9", "--db", db, "--duration", "1")
        #expect(r.status == 2, "\(r.stderr)")
        Self.expectOneLineError(r, "proxy")
        #expect(r.stderr.lowercased().contains("address already in use"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: db), "a failed proxy start left a database")
        // A certificate that is not one.
        let cert = try temporaryFile("cert.pem", Array("not a certificate".utf8))
        let tls = try pilottrace("proxy", "--http-upstream", "http://127.0.0.1:9", "--tls-cert", cert, "--tls-key", cert, "--db", db)
        #expect(tls.status == 2)
        Self.expectOneLineError(tls, "proxy --tls-cert")
        #expect(!FileManager.default.fileExists(atPath: db))
    }

    @Test(.enabled(if: TestPaths.which("mosquitto") != nil, "needs mosquitto (scripts/bootstrap installs it)"))
    func aLabCloudThatCannotListenStopsTheBrokerItStarted() throws {
        let (fd, taken) = Self.takenPort()
        defer { close(fd) }
        let r = try pilottrace("lab", "cloud", "--http-listen", "127.0.0.1:\(taken)", "--mqtt-listen", "0", "--duration", "1")
        #expect(r.status == 2, "\(r.stderr)")
        Self.expectOneLineError(r, "lab cloud")
        // The broker it had started (its port is in the log) is gone.
        let port = try #require(r.stderr.range(of: "mosquitto on 127.0.0.1:").map { Int(r.stderr[$0.upperBound...].prefix { $0.isNumber }) } ?? nil)
        #expect(LabRun.listening(port) == false, "mosquitto on \(port) was left running")
    }

    @Test func aCaptureOnAnInterfaceThatDoesNotExistCreatesNothing() throws {
        let db = try Self.folder().appendingPathComponent("c.sqlite").path
        let r = try pilottrace("capture", "--interface", "no-such-if0", "--db", db, "--duration", "1")
        #expect(r.status == 2, "\(r.stderr)")
        Self.expectOneLineError(r, "capture")
        #expect(!FileManager.default.fileExists(atPath: db))
    }

    // MARK: - 64: usage

    @Test(arguments: [
        "analyze", "capture", "proxy", "replay", "sessions", "timeline", "deviations", "rules", "report", "flows",
        "messages", "versions", "interfaces", "lab cloud", "lab pilot", "lab generate",
    ])
    func anUnknownOptionIsUsage(command: String) throws {
        let r = try pilottrace(command.split(separator: " ").map(String.init) + ["--no-such-option"])
        #expect(r.status == 64, "\(command): \(r.stderr)")
        #expect(r.stderr.hasPrefix("Error: "), "\(command): \(r.stderr)")
    }

    // MARK: - Safe text

    @Test func escapesAndMarkupFromTheCaptureAreShownNotObeyed() throws {
        // The clean login, with the MQTT client id replaced by one holding a terminal escape, a bell, a carriage
        // return, a bidi override and HTML (same length, so the capture stays valid).
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.capture)))
        let original = Array("5YSZL260021E9A".utf8)
        let evil: [UInt8] = [0x1B] + Array("[41m".utf8) + [0x07, 0x0D, 0xE2, 0x80, 0xAE] + Array("<br>".utf8)  // 14 bytes
        #expect(evil.count == original.count)
        var replaced = 0
        var i = 0
        while i + original.count <= bytes.count {
            // Only the CONNECT's client id: preceded by its 2-byte length 0x00 0x0E and followed by the username's length.
            if bytes[i..<(i + original.count)].elementsEqual(original), i >= 2, bytes[i - 2] == 0, bytes[i - 1] == 14,
                i + original.count + 1 < bytes.count, bytes[i + original.count] == 0
            {
                bytes.replaceSubrange(i..<(i + original.count), with: evil)
                replaced += 1
            }
            i += 1
        }
        #expect(replaced == 1)
        let dir = try Self.folder()
        let capture = dir.appendingPathComponent("evil<i>.pcapng").path
        try Data(bytes).write(to: URL(fileURLWithPath: capture))
        let db = dir.appendingPathComponent("e.sqlite").path
        let analyzed = try pilottrace("analyze", "--db", db, capture)
        #expect(analyzed.status == 0, "\(analyzed.stderr)")
        var outputs: [(String, String)] = [("analyze", analyzed.stdout)]
        outputs.append(("sessions", try pilottrace("sessions", "--db", db).stdout))
        outputs.append(("timeline", try pilottrace("timeline", "--db", db).stdout))
        outputs.append(("deviations", try pilottrace("deviations", "--db", db).stdout))
        outputs.append(("messages", try pilottrace("messages", capture).stdout))
        for format in ["markdown", "mermaid", "html"] {
            outputs.append((format, try pilottrace("report", "--db", db, "--format", format, "--out", "-").stdout))
        }
        for (name, text) in outputs {
            for raw in ["\u{1B}", "\u{07}", "\r", "\u{202E}"] {
                #expect(!text.contains(raw), "\(name) printed a raw \(raw.unicodeScalars.first!.value)")
            }
        }
        let timeline = outputs[2].1
        #expect(timeline.contains("client id \\u{1B}[41m\\u{7}\\u{D}\\u{202E}<br>"), "\(timeline)")
        let markdown = outputs.first { $0.0 == "markdown" }!.1
        #expect(!markdown.contains("<br>") && markdown.contains("&lt;br&gt;"), "\(markdown)")
        let html = outputs.first { $0.0 == "html" }!.1
        #expect(html.contains("\\u{1B}[41m\\u{7}\\u{D}\\u{202E}&lt;br&gt;") && !html.contains("evil<i>"))
        let mermaid = outputs.first { $0.0 == "mermaid" }!.1
        #expect(!mermaid.contains("<br>"))
        // JSON escapes by itself: the client id is there, as JSON text.
        let json = try pilottrace("timeline", "--db", db, "--json").stdout
        #expect(json.contains(#"\u001b[41m"#))
    }

    @Test func severalSessionsInMermaidAreOneFencedDiagramEach() throws {
        let db = try Self.folder().appendingPathComponent("m.sqlite").path
        #expect(try pilottrace("analyze", "--db", db, TestPaths.captures.appendingPathComponent("lab-two-devices.pcapng").path).status == 0)
        let text = try pilottrace("report", "--db", db, "--format", "mermaid", "--out", "-").stdout
        #expect(text.components(separatedBy: "```mermaid\n").count == 3)
        #expect(text.components(separatedBy: "sequenceDiagram").count == 3)
        let one = try pilottrace("report", "1", "--db", db, "--format", "mermaid", "--out", "-").stdout
        #expect(one.hasPrefix("%% Session 1") && !one.contains("```"))
    }

    // MARK: - Summaries

    @Test func aTwoThousandSessionSummaryFitsOnAScreen() throws {
        let dir = try Self.folder()
        let capture = dir.appendingPathComponent("many.pcap").path
        let generated = try pilottrace("lab", "generate", "--devices", "2000", "--online", "4", "--stagger", "0.002", "--out", capture)
        #expect(generated.status == 0, "\(generated.stderr)")
        let r = try pilottrace("analyze", "--no-store", capture)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count < 60, "\(lines.count) lines:\n\(r.stdout)")
        #expect(r.stdout.contains("2,000 Pilot 2 sessions"))
        #expect(r.stdout.contains("All sessions: pilottrace sessions"))
        let verbose = try pilottrace("analyze", "--no-store", "--verbose", capture)
        #expect(verbose.stdout.split(separator: "\n").count > 2000)
    }

    // MARK: - README equals --help

    static let commands = [
        "analyze", "capture", "proxy", "replay", "interfaces", "sessions", "timeline", "deviations", "rules", "report",
        "serve", "flows", "messages", "versions", "lab", "lab cloud", "lab pilot", "lab generate", "lab read-floor",
    ]

    static func readme() throws -> String {
        try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
    }

    static func words(_ s: String) -> String { s.split(whereSeparator: \.isWhitespace).joined(separator: " ") }

    @Test func readmeShowsTheExitStatusTableOfHelp() throws {
        let help = Self.words(try pilottrace("--help").stdout)
        guard let start = help.range(of: "Exit status:"), let end = help.range(of: "the analysis marked interrupted).", range: start.upperBound..<help.endIndex)
        else {
            Issue.record("no exit status in --help")
            return
        }
        let sentence = String(help[start.lowerBound..<end.upperBound])
        #expect(Self.words(try Self.readme()).contains(sentence), "README lacks: \(sentence)")
    }

    @Test(arguments: commands) func readmeShowsEveryOptionAndExampleOfHelp(command: String) throws {
        let help = try pilottrace(command.split(separator: " ").map(String.init) + ["--help"]).stdout
        let readme = try Self.readme()
        let readmeLines = Set(readme.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        // Examples: every line of the section is a README line.
        guard let examples = help.range(of: "Examples:\n") else {
            Issue.record("\(command) --help has no Examples section")
            return
        }
        let lines = help[examples.upperBound...].split(separator: "\n").prefix { $0.hasPrefix("  pilottrace") }
        #expect(!lines.isEmpty)
        for line in lines { #expect(readmeLines.contains(line.trimmingCharacters(in: .whitespaces)), "README lacks the example `\(line)`") }
        // Options: every visible long option is named in README.
        let optionSection = help.components(separatedBy: "OPTIONS:").last ?? ""
        let options = optionSection.split(separator: "\n").compactMap { line -> String? in
            // "  --name <value>   help", "  -v, --verbose   help": two spaces of indent, then the names.
            guard line.hasPrefix("  -"), let dash = line.range(of: "--") else { return nil }
            return String(line[dash.lowerBound...].prefix { $0.isLetter || $0.isNumber || $0 == "-" })
        }
        for option in Set(options) where !["--help", "--version"].contains(option) {
            #expect(readme.contains(option), "README does not mention \(command) \(option)")
        }
    }
}

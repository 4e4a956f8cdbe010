import ArgumentParser
import Foundation
import PilotTraceReport

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a report of stored sessions: HTML with sequence diagrams, Markdown, JSON or Mermaid.",
        discussion: Examples.discussion(
            "report",
            """
            By default an HTML report of all sessions goes to Reports/pilottrace-report.html (self-contained: it opens \
            from disk, no network). The path written is printed. Secrets are masked unless --show-secrets.
            """)
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case html, markdown, json, mermaid }

    @Argument(help: "Session ids (from `pilottrace sessions`); all sessions when omitted.")
    var sessions: [Int64] = []

    @Flag(help: "All sessions (the default when no id is given).")
    var all = false

    @OptionGroup var database: DatabaseOptions

    @Option(help: ArgumentHelp("html, markdown, json or mermaid.", valueName: "format"))
    var format: Format = .html

    @Option(help: ArgumentHelp("Where to write; - for standard output.", valueName: "path"))
    var out: String?

    @Flag(help: "Show passwords, tokens and secrets in message details.")
    var showSecrets = false

    func run() throws {
        let db = try database.openReadOnly()
        let doc = try ReportLoader.load(db, sessionIDs: all ? [] : sessions, showSecrets: showSecrets)
        if !sessions.isEmpty && !all {
            let missing = Set(sessions).subtracting(doc.sessions.map(\.row.id))
            if !missing.isEmpty {
                throw Failure("no session \(missing.sorted().map(String.init).joined(separator: ", ")) in \(database.shown)")
            }
        }
        let text: String
        switch format {
        case .html: text = HTMLReport.render(doc)
        case .markdown: text = MarkdownReport.render(doc)
        case .json: text = try JSONReport.render(doc)
        case .mermaid: text = MermaidReport.render(doc)
        }
        let ext = ["html": "html", "markdown": "md", "json": "json", "mermaid": "mmd"][format.rawValue]!
        let path = out ?? "Reports/pilottrace-report.\(ext)"
        if path == "-" {
            print(text, terminator: "")
            return
        }
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        } catch {
            throw Failure("cannot write the report to \(path)", error)
        }
        printText(path)
    }
}

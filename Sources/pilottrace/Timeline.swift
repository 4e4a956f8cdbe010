import ArgumentParser
import Foundation
import PilotTraceReport
import PilotTraceStore

struct Timeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timeline",
        abstract: "Show the timeline of every stored session, or of one.",
        discussion: Examples.discussion(
            "timeline",
            """
            Each line is a step of the documented sequence, in time order: clock (UTC; with the date when the \
            session crosses midnight), offset from the session's start, phase, step, ok or FAILED, the frames of its \
            message as Wireshark numbers them (frame.number; the file's name first when the analysis read several), \
            and its facts (latency in brackets). --json prints the contract documented in README.md (times in RFC \
            3339 with _epoch twins, capture_file, first_frame, last_frame).
            """)
    )

    @Argument(help: "A session id (from `pilottrace sessions`); all sessions when omitted.")
    var session: Int64?

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Print one JSON object: {\"sessions\": [{…, \"events\": […]}]}.")
    var json = false

    func run() throws {
        let db = try database.openReadOnly()
        let rows: [SessionRow]
        if let session {
            guard let row = try db.session(id: session) else {
                throw Failure("no session \(session) in \(database.shown)")
            }
            rows = [row]
        } else {
            rows = try db.sessions()
        }
        let views = try SessionViews.load(rows, from: db)
        if json {
            print(try StoreJSONText.render(["sessions": views.map { $0.json(withEvents: true) }]))
        } else if views.isEmpty {
            print("No Pilot 2 sessions in \(database.shown).")
        } else {
            printText(views.map(TimelineText.render).joined(separator: "\n"), terminator: "")
        }
    }
}

struct Sessions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "List the stored Pilot 2 sessions, one line each.",
        discussion: Examples.discussion("sessions")
    )

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Print one JSON object: {\"sessions\": [...]} (the timeline contract without events).")
    var json = false

    func run() throws {
        let db = try database.openReadOnly()
        let views = try SessionViews.load(try db.sessions(), from: db, events: false)
        if json {
            print(try StoreJSONText.render(["sessions": views.map { $0.json(withEvents: false) }]))
            return
        }
        guard !views.isEmpty else {
            print("No Pilot 2 sessions in \(database.shown).")
            return
        }
        // A site column when several capture points wrote the database.
        let sites = Set(views.compactMap { $0.analysis?.site })
        var rows = [["id", "state", "gateway", "model", "start (UTC)", "dur s", "client", "mqtt client id", "aircraft"] + (sites.count > 1 ? ["site"] : [])]
        for v in views {
            rows.append(
                [
                    String(v.id), v.state, v.gatewaySN ?? "unknown", v.gatewayModelName ?? v.gatewayModel ?? "",
                    TimelineText.date(v.start), v.end.map { String(format: "%.3f", $0 - v.start) } ?? "",
                    v.client ?? "", v.mqttClientID ?? "", v.aircraft.joined(separator: ","),
                ]
                    + (sites.count > 1 ? [v.analysis?.site ?? ""] : []))
        }
        printText(TextTable.render(rows, numeric: [0, 5]), terminator: "")
        // Analyses that did not finish: their sessions in progress are incomplete, and the reason is worth knowing.
        var unfinished: [Int64: AnalysisRow] = [:]
        for v in views { if let a = v.analysis, a.isUnfinished, let id = a.id { unfinished[id] = a } }
        for a in unfinished.values.sorted(by: { ($0.id ?? 0) < ($1.id ?? 0) }) {
            let count = views.filter { $0.analysis?.id == a.id }.count
            let what =
                a.state == "interrupted"
                ? "was interrupted (\(a.stopReason ?? "no reason recorded")): sessions still in progress then are incomplete"
                : "has not finished (still running, or its process was killed)"
            printText(
                "note: analysis \(a.id ?? 0)\(a.site.isEmpty ? "" : " at \(a.site)") \(what); \(count) session\(count == 1 ? "" : "s") above are from it\n",
                terminator: "")
        }
    }
}

enum TextTable {
    static func render(_ rows: [[String]], numeric: Set<Int>) -> String {
        var widths = [Int](repeating: 0, count: rows[0].count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { line($0, widths: widths, numeric: numeric) }.joined(separator: "\n") + "\n"
    }

    static func line(_ r: [String], widths: [Int], numeric: Set<Int>) -> String {
        r.enumerated().map { i, c in
            let pad = String(repeating: " ", count: widths[i] - c.count)
            return numeric.contains(i) ? pad + c : c + pad
        }.joined(separator: "  ").trimmingTrailingSpaces()
    }
}

import ArgumentParser

@main
struct PilotTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pilottrace",
        abstract: "Record and explain DJI Pilot 2 ↔ cloud traffic (HTTP, WebSocket, MQTT).",
        discussion: """
            pilottrace reads pcap and pcapng captures (also gzip-compressed), reassembles their TCP streams and \
            explains what DJI Pilot 2 and a third-party cloud said to each other.
            """,
        version: "pilottrace \(PilotTraceVersion.string)",
        subcommands: [Analyze.self, Sessions.self, Timeline.self, Deviations.self, RulesCommand.self, Report.self, Lab.self, Flows.self, Messages.self, Versions.self]
    )
}

enum PilotTraceVersion {
    static let string = "0.1.0"
}

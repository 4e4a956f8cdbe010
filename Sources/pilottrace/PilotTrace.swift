import ArgumentParser
import Foundation

@main
struct PilotTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pilottrace",
        abstract: "Record and explain DJI Pilot 2 ↔ cloud traffic (HTTP, WebSocket, MQTT).",
        discussion: """
            pilottrace reads pcap and pcapng captures (also gzip-compressed), reassembles their TCP streams, decodes \
            HTTP, WebSocket and MQTT, reconstructs each Pilot 2 device's session (license, token, cloud-module, connect, \
            status, offline) into SQLite, flags deviations from the documented protocol and writes reports. It also \
            captures live (sessions stored while they happen), records through a proxy where capture cannot see \
            (HTTPS, MQTT over TLS, the H5 page's JSBridge calls: `pilottrace proxy`), brings a reference cloud and a \
            Pilot 2 simulator (`pilottrace lab cloud`, `lab pilot`), and replays stored sessions against a cloud, as \
            Pilot 2, to find what regressed (`pilottrace replay`). Start with: pilottrace analyze <capture> (or \
            pilottrace capture --interface IF), then pilottrace timeline.

            \(ExitStatus.table)
            """,
        version: "pilottrace \(PilotTraceVersion.string)",
        subcommands: [
            Analyze.self, Capture.self, Proxy.self, Replay.self, Interfaces.self, Sessions.self, Timeline.self, Deviations.self, RulesCommand.self, Report.self,
            Serve.self,
            Lab.self, Flows.self, Messages.self, Versions.self,
        ]
    )

    /// A closed pipe (`pilottrace … | head`) ends what the command writes, not the command: it still stores what it
    /// analyzed and stops what it started (a killed `lab cloud` would leave its mosquitto behind).
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(nil)
        } catch {
            exit(withError: error)  // help and version (0), usage errors (64)
        }
        do {
            try command.run()
        } catch let e as ExitCode {
            exit(withError: e)
        } catch let e as CleanExit {
            exit(withError: e)
        } catch let e as ValidationError {
            exit(withError: e)
        } catch  where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            exit(withError: error)  // `--help` and `help` run a command that throws the help request
        } catch {
            // Whatever the library that failed, one line in words and exit status 2.
            writeStandardError("error: \(ErrorText.describe(error))\n")
            Foundation.exit(ExitStatus.failed)
        }
    }
}

enum PilotTraceVersion {
    static let string = "0.1.0"
}

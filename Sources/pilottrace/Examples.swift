/// The Examples section of every subcommand's help. README.md shows the same lines (a test keeps them equal), so each
/// line is a command a user can paste; they stay under 76 characters so help never wraps them.
enum Examples {
    static let all: [String: [String]] = [
        "analyze": [
            "pilottrace analyze capture.pcapng",
            "pilottrace analyze part1.pcap part2.pcap --db team.sqlite",
            "pilottrace analyze capture.pcapng --no-store --fail-on error",
            "pilottrace analyze capture.pcapng --profile our-cloud.yaml",
            "pilottrace analyze web.pcap --site web --db postgres://pt@db.example/pt",
            "pilottrace analyze https.pcapng --tls-keylog sslkeys.log",
        ],
        "capture": [
            "pilottrace capture --interface eth0 --filter 'tcp port 1883'",
            "pilottrace capture --interface any --write out.pcapng --duration 60",
            "pilottrace capture --interface lo --write ring.pcapng --rotate-size 10",
            "pilottrace capture --interface eth0 --tls-keylog sslkeys.log",
        ],
        "proxy": [
            "pilottrace proxy --http-upstream http://10.0.0.5:6789 --mqtt-listen 1883",
            "pilottrace proxy --http-listen 0.0.0.0:8080 --http-upstream https://cloud",
            "pilottrace proxy --http-upstream http://cloud:6789 --write proxied.pcapng",
        ],
        "replay": [
            "pilottrace replay 3 --target-http http://127.0.0.1:6789",
            "pilottrace replay --all --target-http http://staging:6789 --pace max",
            "pilottrace replay --all --target-http http://cloud --junit out.xml",
        ],
        "interfaces": ["pilottrace interfaces"],
        "sessions": ["pilottrace sessions", "pilottrace sessions --db team.sqlite --json"],
        "timeline": ["pilottrace timeline", "pilottrace timeline 3", "pilottrace timeline 3 --json"],
        "deviations": [
            "pilottrace deviations",
            "pilottrace deviations --session 3",
            "pilottrace deviations --min-severity error --json",
        ],
        "rules": ["pilottrace rules", "pilottrace rules --json", "pilottrace rules --markdown"],
        "report": [
            "pilottrace report",
            "pilottrace report 3 --format markdown --out -",
            "pilottrace report --format json --out report.json",
        ],
        "serve": [
            "pilottrace serve",
            "pilottrace serve --db team.sqlite --listen 127.0.0.1:0",
            "pilottrace serve --db postgres://pt@db/pt --listen 0.0.0.0:8088",
        ],
        "flows": ["pilottrace flows capture.pcapng", "pilottrace flows capture.pcapng --json"],
        "messages": [
            "pilottrace messages capture.pcapng",
            "pilottrace messages capture.pcapng --protocol mqtt --json",
            "pilottrace messages mqtts.pcap --tls-keylog sslkeys.log",
        ],
        "versions": ["pilottrace versions"],
        "lab": ["pilottrace lab cloud --http-listen 6789 --mqtt-listen 1883", "pilottrace lab pilot"],
        "lab cloud": [
            "pilottrace lab cloud",
            "pilottrace lab cloud --http-listen 0 --mqtt-listen 0 --ready-file up",
            "pilottrace lab cloud --fault no-status-reply --duration 30",
        ],
        "lab pilot": [
            "pilottrace lab pilot --cloud http://127.0.0.1:6789",
            "pilottrace lab pilot --devices 50 --online 10",
            "pilottrace lab pilot --fault wrong-password --connect-retries 3",
        ],
        "lab generate": [
            "pilottrace lab generate --devices 100 --out lab.pcap",
            "pilottrace lab generate --devices 4000 --online 30 --out big.pcap",
            "pilottrace lab generate --shape login-storm --devices 4000 --out storm.pcap",
        ],
        "lab read-floor": ["pilottrace lab read-floor lab.pcap"],
    ]

    /// `discussion`, then the command's Examples section.
    static func discussion(_ command: String, _ text: String = "") -> String {
        let lines = (all[command] ?? []).map { "  " + $0 }.joined(separator: "\n")
        return (text.isEmpty ? "" : text + "\n\n") + "Examples:\n" + lines
    }
}

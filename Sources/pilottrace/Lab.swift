import ArgumentParser
import Foundation
import PilotTraceCapture
import PilotTraceLab
import PilotTraceWire

struct Lab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Tools that make Pilot 2 traffic for tests, demos and benchmarks.",
        subcommands: [Generate.self, ReadFloor.self]
    )

    /// The floor for benchmarks: libpcap's offline read loop, touching every byte, nothing else.
    struct ReadFloor: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "read-floor",
            abstract: "Read a capture with a bare libpcap loop (the benchmark floor) and print frames and bytes."
        )

        @Argument(help: "A pcap file libpcap can read.") var capture: String

        func run() throws {
            let reader = try LibpcapFileReader(path: capture)
            var frames = 0, bytes = 0, sum: UInt64 = 0
            try reader.forEach { r in
                frames += 1
                bytes += r.data.count
                for b in r.data { sum &+= UInt64(b) }
            }
            print("\(frames) frames, \(bytes) bytes (checksum \(sum % 1000))")
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Write a synthetic but protocol-correct capture of N remote controllers and unrelated traffic.",
            discussion: """
                Each device logs in over HTTP, connects to MQTT, publishes update_topo (answered), osd for the RC and its \
                aircraft every 2 s, goes offline (empty sub_devices) and disconnects; every tenth device (index 3, 13, …) \
                loses its link half-way and reconnects within the grace. Deterministic from --seed. Analysis must find \
                one offline session per device and no finding above info.
                """
        )

        @Option(help: "Remote controllers.") var devices = 10
        @Option(help: ArgumentHelp("Seconds each device stays online.", valueName: "seconds")) var duration: Double = 60
        @Option(help: ArgumentHelp("Unrelated connections started per second.", valueName: "rate")) var noise: Double = 1
        @Option(help: "Random seed.") var seed: UInt64 = 1
        @Option(help: ArgumentHelp("The pcap file to write.", valueName: "file.pcap")) var out: String

        func validate() throws {
            guard devices >= 0, duration >= 4, noise >= 0 else { throw ValidationError("--devices ≥ 0, --duration ≥ 4, --noise ≥ 0") }
        }

        func run() throws {
            var p = TrafficGenerator.Parameters()
            p.devices = devices
            p.duration = duration
            p.noise = noise
            p.seed = seed
            let generator = TrafficGenerator(p)
            let writer = try PcapWriter(path: out, linkType: .ethernet)
            let started = Date()
            try generator.run { t, frame in try writer.write(frame, at: t) }
            try writer.close()
            let e = generator.expectation
            print(String(format: "%@: %d frames, %.1f MB in %.1f s; expect %d sessions (%d with a reconnect)", out, writer.records,
                         Double(writer.bytes) / 1e6, Date().timeIntervalSince(started), e.sessions, e.reconnects))
        }
    }
}

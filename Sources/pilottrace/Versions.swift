import ArgumentParser
import CMosquitto
import PilotTraceCapture

struct Versions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "versions",
        abstract: "Print the versions of pilottrace and of the C libraries it uses.",
        discussion: Examples.discussion("versions")
    )

    func run() {
        var major: Int32 = 0, minor: Int32 = 0, revision: Int32 = 0
        mosquitto_lib_version(&major, &minor, &revision)
        print("pilottrace \(PilotTraceVersion.string)")
        print(LibpcapFileReader.version)
        print("libmosquitto \(major).\(minor).\(revision)")
    }
}

import ArgumentParser
import Foundation

/// `--tls-keylog FILE`…, or `$SSLKEYLOGFILE`: the key log files TLS is decrypted with (docs/tls.md).
struct TLSKeyLogOptions: ParsableArguments {
    @Option(
        name: .customLong("tls-keylog"),
        help: ArgumentHelp(
            "A TLS key log file (NSS SSLKEYLOGFILE format) to decrypt HTTPS and MQTT over TLS with; repeatable. Without it, $SSLKEYLOGFILE when set. Its secrets are never printed or stored.",
            valueName: "file"))
    var tlsKeylog: [String] = []

    /// The files named, else `$SSLKEYLOGFILE`.
    var files: [String] {
        if !tlsKeylog.isEmpty { return tlsKeylog }
        if let env = ProcessInfo.processInfo.environment["SSLKEYLOGFILE"], !env.isEmpty { return [env] }
        return []
    }

    /// Checks each file can be read (a growing file may be empty yet).
    func check() throws {
        for path in files where !FileManager.default.isReadableFile(atPath: path) {
            throw Failure("\(path): cannot read the TLS key log")
        }
    }
}

import Foundation
import PilotTraceTestSupport
import Testing

/// The TLS captures in Captures/ (scripts/record-tls-captures): the lab's clean login over real TLS (Python's ssl to a
/// TLS terminator and to mosquitto's TLS listener), recorded together with the same flows in clear text. Decrypted
/// with their key log, they give the clear text's sessions, steps and findings, less `cleartext-credentials`.
@Suite struct TLSCaptureTests {
    static let versions = ["tls13", "tls12"]

    static func path(_ name: String) -> String { TestPaths.captures.appendingPathComponent(name).path }

    static func analyzed(_ arguments: String...) throws -> String {
        let db = try temporaryDatabase()
        let r = try pilottrace(["analyze", "--db", db] + arguments)
        #expect(r.status == 0, "\(r.stderr)")
        return db
    }

    /// Each session as state and (phase, step, ok, detail) per event: what must not depend on TLS. Times are left out
    /// (`issued_at`: the two legs were captured microseconds apart).
    static func picture(_ db: String) throws -> [String] {
        try LabRun.sessions(db).map { s in
            let events = (s["events"] as? [[String: Any]] ?? []).map { e -> String in
                let members = (e["detail"] as? [String: Any] ?? [:]).filter { !$0.key.hasSuffix("_at") && !$0.key.hasSuffix("_at_epoch") }
                let detail =
                    (try? JSONSerialization.data(withJSONObject: members, options: [.sortedKeys]))
                    .map { String(decoding: $0, as: UTF8.self) } ?? ""
                return "\(e["phase"] ?? "") \(e["step"] ?? "") \(e["ok"] ?? "") \(detail)"
            }
            return "\(s["state"] ?? "") \(s["gateway_sn"] ?? "") \(s["mqtt_client_id"] ?? "") \(s["aircraft_sns"] ?? "")\n" + events.joined(separator: "\n")
        }
    }

    @Test(arguments: versions)
    func decryptedGivesTheClearTextsSessionsStepsAndFindings(_ version: String) throws {
        let clear = try Self.analyzed(Self.path("\(version)-login-clear.pcap"))
        let tls = try Self.analyzed("--tls-keylog", Self.path("\(version)-login.keys"), Self.path("\(version)-login.pcap"))
        let clearPicture = try Self.picture(clear)
        #expect(clearPicture.count == 1)
        #expect(try Self.picture(tls) == clearPicture)
        #expect(LabRun.steps(try LabRun.sessions(tls)[0]).count == 15)
        // Credentials crossed TLS: not clear text on the network.
        #expect(try LabRun.findings(clear) == ["cleartext-credentials"])
        #expect(try LabRun.findings(tls) == [])
    }

    @Test func theFlowsSayWhatDecryptionGave() throws {
        let sqlite = try #require(TestPaths.which("sqlite3"), "make test installs sqlite3 (scripts/bootstrap)")
        let query = "SELECT protocol, tls_version, tls_cipher_suite, coalesce(tls_alpn, '-'), tls_decrypted, coalesce(tls_failure, '-') FROM flows ORDER BY id"
        let tls = try Self.analyzed("--tls-keylog", Self.path("tls12-login.keys"), Self.path("tls12-login.pcap"))
        #expect(
            try runProcess(sqlite, [tls, query]).stdout == """
                mqtt|TLS 1.2|TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384|-|1|-
                http|TLS 1.2|TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384|http/1.1|1|-
                mqtt|TLS 1.2|TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384|-|1|-

                """)
        let none = try Self.analyzed(Self.path("tls13-login.pcap"))
        // TLS 1.3 says the chosen ALPN only inside the encryption (EncryptedExtensions).
        let expected: [Substring] = Array(repeating: "tls|TLS 1.3|TLS_AES_256_GCM_SHA384|-|0|no-key", count: 3)
        #expect(try runProcess(sqlite, [none, query]).stdout.split(separator: "\n") == expected)
        let clear = try Self.analyzed(Self.path("tls13-login-clear.pcap"))
        #expect(try runProcess(sqlite, [clear, "SELECT count(*) FROM flows WHERE tls_decrypted IS NULL AND tls_version IS NULL"]).stdout == "3\n")
    }

    @Test(arguments: versions)
    func theKeyLogInsideThePcapngIsUsed(_ version: String) throws {
        // editcap --inject-secrets wrote the key log into a Decryption Secrets Block: no --tls-keylog needed.
        let dsb = try Self.analyzed(Self.path("\(version)-login-dsb.pcapng"))
        let withFile = try Self.analyzed("--tls-keylog", Self.path("\(version)-login.keys"), Self.path("\(version)-login.pcap"))
        #expect(try Self.picture(dsb) == Self.picture(withFile))
    }

    @Test(arguments: versions)
    func resumedSessionsDecryptWithTheirLoggedSecrets(_ version: String) throws {
        // The second connection resumes the first session (TLS 1.3 PSK, TLS 1.2 abbreviated handshake).
        let r = try pilottrace("messages", "--tls-keylog", Self.path("\(version)-resumed.keys"), Self.path("\(version)-resumed.pcap"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("#1 → HTTP    GET /first") && r.stdout.contains("#2 → HTTP    GET /resumed"), "\(r.stdout)")
        #expect(r.stdout.contains("connections: 2 http\n"))
    }

    @Test func sslKeyLogFileFromTheEnvironment() throws {
        let r = try runProcess(
            "/usr/bin/env", ["SSLKEYLOGFILE=\(Self.path("tls13-login.keys"))", TestPaths.binary.path, "messages", Self.path("tls13-login.pcap")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("POST /manage/api/v1/login"))
        #expect(r.stdout.hasSuffix("10 HTTP, 30 MQTT in 104 frames; connections: 1 http, 2 mqtt\n"), "\(r.stdout)")
    }

    @Test func eachFlowSaysWhyItWasNotDecrypted() throws {
        // No key log: no key for the client randoms.
        let none = try pilottrace("messages", Self.path("tls13-login.pcap"))
        #expect(none.stdout.components(separatedBy: "encrypted (no key for this client random in the key log)").count == 4, "\(none.stdout)")
        // A key log whose secrets are wrong: the records do not authenticate.
        let wrong = FileManager.default.temporaryDirectory.appendingPathComponent("wrong-\(UUID().uuidString).keys")
        defer { try? FileManager.default.removeItem(at: wrong) }
        let keys = try String(contentsOfFile: Self.path("tls12-login.keys"), encoding: .utf8)
        let damaged = keys.split(separator: "\n").map { line -> String in
            var fields = line.split(separator: " ").map(String.init)
            guard fields.count == 3 else { return String(line) }
            fields[2] = String(fields[2].reversed())
            return fields.joined(separator: " ")
        }
        try damaged.joined(separator: "\n").write(to: wrong, atomically: true, encoding: .utf8)
        let bad = try pilottrace("messages", "--tls-keylog", wrong.path, Self.path("tls12-login.pcap"))
        #expect(bad.stdout.contains("record authentication failed"), "\(bad.stdout)")
        #expect(bad.stdout.contains("wrong key or corrupt capture"))
        // The capture-incomplete finding names the undecrypted flows of a session.
        let db = try Self.analyzed("--tls-keylog", Self.path("tls13-login.keys"), Self.path("tls13-login.pcap"), Self.path("tls12-login.pcap"))
        let deviations = try pilottrace("deviations", "--db", db)
        #expect(deviations.stdout.contains("capture-incomplete"), "\(deviations.stdout)")
        #expect(deviations.stdout.contains("3 encrypted (TLS) connections in the capture, not decrypted: #4 no key for this client random"))
    }

    @Test func theKeyLogIsNeverPrintedOrStored() throws {
        let keys = try String(contentsOfFile: Self.path("tls13-login.keys"), encoding: .utf8)
        let secrets = keys.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { $0.split(separator: " ").last.map(String.init) }
        #expect(secrets.count == 15)
        let db = try Self.analyzed("--tls-keylog", Self.path("tls13-login.keys"), Self.path("tls13-login.pcap"))
        var outputs = [try Data(contentsOf: URL(fileURLWithPath: db))]
        for args in [["timeline", "--db", db, "--json"], ["deviations", "--db", db, "--json"], ["report", "--db", db, "--format", "json", "--out", "-"]] {
            outputs.append(Data(try pilottrace(args).stdout.utf8))
        }
        outputs.append(Data(try pilottrace("messages", "--json", "--tls-keylog", Self.path("tls13-login.keys"), Self.path("tls13-login.pcap")).stdout.utf8))
        for output in outputs {
            let text = String(decoding: output, as: UTF8.self).lowercased()
            for secret in secrets {
                #expect(!text.contains(secret.lowercased()))
                // Nor the raw bytes, in the database.
                let raw = Data(
                    stride(from: 0, to: secret.count, by: 2).map { i -> UInt8 in
                        let s = secret.index(secret.startIndex, offsetBy: i)
                        return UInt8(secret[s..<secret.index(s, offsetBy: 2)], radix: 16)!
                    })
                #expect(output.range(of: raw) == nil)
            }
        }
    }
}

/// `capture --tls-keylog` on loopback: the key log grows while the capture runs, and the written pcapng carries it.
@Suite(.serialized) struct TLSLiveCaptureTests {
    static var canCapture: Bool { getuid() == 0 && TestPaths.which("openssl") != nil }

    @Test(.enabled(if: TLSLiveCaptureTests.canCapture, "live capture needs root, and openssl (scripts/bootstrap installs it)"))
    func aLiveCaptureReadsTheGrowingKeyLogAndWritesItIntoThePcapng() throws {
        let openssl = try #require(TestPaths.which("openssl"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-tls-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let cert = try runProcess(
            openssl,
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-keyout", path("key.pem"), "-out", path("cert.pem"),
            ])
        #expect(cert.status == 0, "\(cert.stderr)")
        // The key log exists, empty, when the capture starts; s_client appends to it during the capture.
        FileManager.default.createFile(atPath: path("keys"), contents: nil)
        let port = try freeLoopbackPort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: openssl)
        server.arguments = ["s_server", "-accept", "\(port)", "-cert", path("cert.pem"), "-key", path("key.pem"), "-www", "-quiet"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            kill(server.processIdentifier, SIGKILL)  // s_server ignores SIGTERM
            server.waitUntilExit()
        }
        let capture = Process()
        capture.executableURL = TestPaths.binary
        capture.arguments = [
            "capture", "--interface", "lo", "--filter", "tcp port \(port)", "--duration", "4", "--tls-keylog", path("keys"),
            "--write", path("live.pcapng"), "--db", path("live.sqlite"),
        ]
        FileManager.default.createFile(atPath: path("capture.out"), contents: nil)
        let out = try #require(FileHandle(forWritingAtPath: path("capture.out")))
        capture.standardOutput = out
        capture.standardError = FileHandle.nullDevice
        try capture.run()
        try out.close()
        usleep(1_500_000)
        let client = try runProcess(
            "/bin/sh",
            [
                "-c",
                "(printf 'GET /live HTTP/1.0\\r\\n\\r\\n'; sleep 0.5) | \(openssl) s_client -connect 127.0.0.1:\(port) -keylogfile \(path("keys")) -quiet",
            ], timeout: 20)
        #expect(client.status == 0, "\(client.stderr)")
        capture.waitUntilExit()
        let output = try String(contentsOfFile: path("capture.out"), encoding: .utf8)
        #expect(capture.terminationStatus == 0)
        #expect(output.contains("connections: 1 http; messages: 2 HTTP"), "\(output)")
        // The written file carries the key log: decrypted without --tls-keylog.
        let messages = try pilottrace("messages", path("live.pcapng"))
        #expect(messages.stdout.contains("→ HTTP    GET /live"), "\(messages.stdout)")
        #expect(messages.stdout.contains("connections: 1 http\n"))
    }
}

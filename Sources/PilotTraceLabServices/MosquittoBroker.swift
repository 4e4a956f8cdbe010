import Foundation

/// A real mosquitto broker (the Debian package) started for the lab on a loopback port, with a password file.
///
/// Started as root, mosquitto drops to the `mosquitto` user, so its directory and files are made readable by it.
/// ``stop()`` (also on deinit) signals it and waits; nothing is left running.
public final class MosquittoBroker: @unchecked Sendable {
    public let host: String
    public let port: Int
    public let directory: URL
    private let process = Process()
    private let log: FileHandle

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts mosquitto on `host:port` (port 0: a free ephemeral port) and waits until it accepts connections.
    ///
    /// - Parameters:
    ///   - users: Username/password pairs written to its password file (hashed by `mosquitto_passwd`).
    ///   - allowAnonymous: Whether a CONNECT without username is accepted.
    public init(host: String = "127.0.0.1", port: Int = 0, users: [(String, String)], allowAnonymous: Bool = false) throws {
        guard let mosquitto = Self.which("mosquitto"), let passwd = Self.which("mosquitto_passwd") else {
            throw Failure(description: "mosquitto is not installed (Debian: apt-get install mosquitto; `make demo` does it)")
        }
        self.host = host
        self.port = port == 0 ? try Self.freePort(host: host) : port
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-broker-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        let passwords = directory.appendingPathComponent("passwords")
        fm.createFile(atPath: passwords.path, contents: Data())
        for (user, password) in users {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: passwd)
            p.arguments = ["-b", passwords.path, user, password]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw Failure(description: "mosquitto_passwd failed for user \(user)") }
        }
        try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: passwords.path)
        let conf = directory.appendingPathComponent("mosquitto.conf")
        try """
        # written by pilottrace lab
        per_listener_settings false
        listener \(self.port) \(host)
        allow_anonymous \(allowAnonymous)
        password_file \(passwords.path)
        persistence false
        set_tcp_nodelay true
        log_dest stderr
        log_type error
        log_type warning
        log_type notice
        log_type information
        connection_messages true
        """.write(to: conf, atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: conf.path)
        let logURL = directory.appendingPathComponent("mosquitto.log")
        fm.createFile(atPath: logURL.path, contents: Data())
        log = try FileHandle(forWritingTo: logURL)
        process.executableURL = URL(fileURLWithPath: mosquitto)
        process.arguments = ["-c", conf.path]
        process.standardOutput = log
        process.standardError = log
        try process.run()
        // Who started this broker and its pid: a later lab reaps it if its owner died without stopping it.
        try? "\(getpid()) \(process.processIdentifier)\n".write(to: directory.appendingPathComponent("owner"), atomically: true, encoding: .utf8)
        let deadline = Date().addingTimeInterval(10)
        while !Self.accepts(host: host, port: self.port) {
            guard process.isRunning, Date() < deadline else {
                stop()
                throw Failure(description: "mosquitto did not start on \(host):\(self.port): \(logText.suffix(500))")
            }
            usleep(20_000)
        }
    }

    deinit { stop() }

    /// What mosquitto logged (connections, refusals, disconnects).
    public var logText: String {
        (try? String(contentsOf: directory.appendingPathComponent("mosquitto.log"), encoding: .utf8)) ?? ""
    }

    /// Stops the broker (SIGTERM, then SIGKILL after a second: it keeps nothing on disk) and removes its files.
    public func stop() {
        if process.isRunning {
            // mosquitto runs as its own user after start-up: signal the pid directly and do not wait long (seen
            // here: mosquitto 2.0.11 sometimes sat on a SIGTERM for more than 5 s while a client was connected).
            kill(process.processIdentifier, SIGTERM)
            for _ in 0..<20 where process.isRunning { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        try? log.close()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Stops brokers an earlier lab started whose owner process is gone (killed with SIGKILL, it could not stop
    /// them: mosquitto drops privileges, which clears a parent-death signal) and removes their directories.
    /// Returns the pids stopped.
    @discardableResult
    public static func reapOrphans() -> [Int32] {
        let tmp = FileManager.default.temporaryDirectory
        var reaped: [Int32] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] where name.hasPrefix("pilottrace-broker-") {
            let dir = tmp.appendingPathComponent(name)
            guard let owner = try? String(contentsOf: dir.appendingPathComponent("owner"), encoding: .utf8) else { continue }
            let pids = owner.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            guard pids.count == 2, kill(pids[0], 0) != 0, errno == ESRCH else { continue }  // the owner still lives
            // Only the mosquitto that runs this directory's configuration.
            let cmdline = (try? String(contentsOfFile: "/proc/\(pids[1])/cmdline", encoding: .utf8)) ?? ""
            if cmdline.contains(dir.appendingPathComponent("mosquitto.conf").path) {
                kill(pids[1], SIGKILL)
                reaped.append(pids[1])
            }
            try? FileManager.default.removeItem(at: dir)
        }
        return reaped
    }

    /// A TCP port the kernel calls free on `host` right now.
    public static func freePort(host: String = "127.0.0.1") throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        inet_pton(AF_INET, host.contains(":") ? "127.0.0.1" : host, &addr.sin_addr)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
                bind(fd, p, len) == 0 && getsockname(fd, p, &len) == 0
            }
        }
        guard bound else { throw Failure(description: "cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Whether something accepts TCP connections on `host:port`.
    public static func accepts(host: String, port: Int) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return false }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/usr/sbin").split(separator: ":") + ["/usr/sbin", "/usr/bin"] {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

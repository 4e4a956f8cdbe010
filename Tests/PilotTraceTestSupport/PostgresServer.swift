import Foundation

/// A private, throwaway PostgreSQL cluster for tests: `initdb` into a temporary folder, `pg_ctl start` on a free
/// loopback port, databases created on request, `pg_ctl stop -m immediate` and the folder removed at the end.
///
/// **Sharing**: ``shared()`` starts one cluster per test process, lazily, the first time a test asks, and every test
/// takes a database of its own in it (``createDatabase()``), so suites run concurrently without seeing each other's
/// tables. It is stopped when the process exits (an `atexit` hook), and a watchdog shell stops it and removes its
/// folder if the process dies without exiting (a crash, a kill). ``init()`` starts a cluster of one's own instead,
/// stopped by ``stop()`` or when the object goes.
///
/// The cluster listens on 127.0.0.1 only (and a socket in its folder), runs with `fsync=off` (its data is thrown
/// away), and has TLS on with a self-signed certificate for `localhost` and `127.0.0.1` (``certificatePath``) when
/// `openssl` is there. Authentication: the superuser `postgres` is trusted (no password); every other role must give
/// its password (SCRAM), so tests can check a wrong one.
///
/// As root, `initdb` and `pg_ctl` run as the user `postgres` (`runuser`), which owns the folder: PostgreSQL refuses to
/// run as root. As another user they run as that user.
public final class PostgresServer: @unchecked Sendable {
    public let host = "127.0.0.1"
    public let port: Int
    /// The cluster's folder (data, socket, log, certificate).
    public let directory: URL
    /// The server's certificate (PEM), when it was started with TLS.
    public let certificatePath: String?

    private let tools: Tools
    private let lock = NSLock()
    private var stopped = false
    private var databaseCount = 0

    // MARK: Availability

    /// The PostgreSQL server binaries this machine has (Debian's `/usr/lib/postgresql/VERSION/bin`, the highest
    /// version), and how to run them.
    struct Tools {
        var bin: URL
        var psql: String
        /// `runuser -u postgres --` when running as root, else nothing.
        var asServerUser: [String]
        var serverUser: (uid: uid_t, gid: gid_t)?
        var openssl: String?

        func command(_ tool: String) -> (String, [String]) {
            let path = bin.appendingPathComponent(tool).path
            return asServerUser.isEmpty ? (path, []) : (asServerUser[0], Array(asServerUser.dropFirst()) + [path])
        }
    }

    private static func findTools() -> Result<Tools, SetupError> {
        let fm = FileManager.default
        let root = "/usr/lib/postgresql"
        let versions = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted(by: >)
        var candidates = versions.map { URL(fileURLWithPath: "\(root)/\($0)/bin") }
        if let initdb = TestPaths.which("initdb") { candidates.append(URL(fileURLWithPath: initdb).deletingLastPathComponent()) }
        guard
            let bin = candidates.first(where: { dir in
                ["initdb", "pg_ctl", "postgres"].allSatisfy { fm.isExecutableFile(atPath: dir.appendingPathComponent($0).path) }
            })
        else {
            return .failure(
                SetupError(
                    "no PostgreSQL server binaries (initdb, pg_ctl, postgres) under \(root)/*/bin or on PATH; "
                        + "install Debian's postgresql package (scripts/bootstrap)"))
        }
        let psqlInBin = bin.appendingPathComponent("psql").path
        guard let psql = fm.isExecutableFile(atPath: psqlInBin) ? psqlInBin : TestPaths.which("psql") else {
            return .failure(SetupError("no psql beside \(bin.path) nor on PATH"))
        }
        var asServerUser: [String] = []
        var serverUser: (uid_t, gid_t)?
        if getuid() == 0 {
            guard let runuser = ["/usr/sbin/runuser", "/sbin/runuser"].first(where: fm.isExecutableFile(atPath:)) else {
                return .failure(SetupError("running as root, and no runuser to run the server as the user postgres"))
            }
            guard let pw = getpwnam("postgres") else {
                return .failure(SetupError("running as root, and there is no user postgres to run the server as"))
            }
            asServerUser = [runuser, "-u", "postgres", "--"]
            serverUser = (pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        return .success(
            Tools(
                bin: bin, psql: psql, asServerUser: asServerUser, serverUser: serverUser,
                openssl: TestPaths.which("openssl")))
    }

    private static let tools = findTools()

    /// Whether a private cluster can be started here: the server binaries are installed and, when running as root,
    /// the user `postgres` and `runuser` exist. For `.enabled(if: PostgresServer.isAvailable, …)`.
    public static var isAvailable: Bool {
        if case .success = tools { return true }
        return false
    }

    /// Why ``isAvailable`` is false (empty when it is true).
    public static var unavailableReason: String {
        if case .failure(let error) = tools { return error.description }
        return ""
    }

    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: The shared cluster

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedResult: Result<PostgresServer, any Error>?

    /// The test process's cluster, started on first use (a failure to start is remembered and thrown again).
    public static func shared() throws -> PostgresServer {
        try sharedLock.withLock {
            if let sharedResult { return try sharedResult.get() }
            let result = Result { try PostgresServer() }
            sharedResult = result
            if case .success = result {
                atexit {
                    if case .success(let server)? = PostgresServer.sharedResult { server.stop() }
                }
            }
            return try result.get()
        }
    }

    // MARK: Starting and stopping

    /// Starts a cluster of its own (initdb, then pg_ctl start on a free port, up to three ports tried).
    public init() throws {
        let tools = try Self.tools.get()
        self.tools = tools
        let fm = FileManager.default
        // /tmp when root: the user postgres must be able to reach the folder, which a root-only TMPDIR would forbid.
        let parent = getuid() == 0 ? URL(fileURLWithPath: "/tmp") : fm.temporaryDirectory
        // Short: the socket's path must fit 107 bytes.
        let directory = parent.appendingPathComponent("pilottrace-pg-\(UUID().uuidString.prefix(8))", isDirectory: true)
        self.directory = directory
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        var started = false
        defer { if !started { try? fm.removeItem(at: directory) } }
        try Self.giveToServerUser(directory, tools)

        let data = directory.appendingPathComponent("data").path
        let (initdb, initdbPrefix) = tools.command("initdb")
        let made = try runProcess(
            initdb,
            initdbPrefix + [
                "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C",
            ], timeout: 120)
        guard made.status == 0 else { throw SetupError("initdb failed (\(made.status)): \(made.stderr)") }

        // The superuser is trusted; other roles must give their password.
        let hba = """
            local all all trust
            host all postgres 127.0.0.1/32 trust
            host all all 127.0.0.1/32 scram-sha-256
            host all postgres ::1/128 trust
            host all all ::1/128 scram-sha-256

            """
        let hbaURL = URL(fileURLWithPath: data).appendingPathComponent("pg_hba.conf")
        try hba.write(to: hbaURL, atomically: false, encoding: .utf8)
        try Self.giveToServerUser(hbaURL, tools)

        var options = [
            "-c listen_addresses=127.0.0.1", "-k \(directory.path)", "-c fsync=off", "-c synchronous_commit=off",
            "-c full_page_writes=off", "-c max_connections=200",
        ]
        var certificate: String?
        if let openssl = tools.openssl {
            let crt = directory.appendingPathComponent("server.crt"), key = directory.appendingPathComponent("server.key")
            let made = try runProcess(
                openssl,
                [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key.path, "-out", crt.path,
                ], timeout: 60)
            if made.status == 0 {
                chmod(key.path, 0o600)
                try Self.giveToServerUser(crt, tools)
                try Self.giveToServerUser(key, tools)
                options += ["-c ssl=on", "-c ssl_cert_file=\(crt.path)", "-c ssl_key_file=\(key.path)"]
                certificate = crt.path
            }
        }
        certificatePath = certificate

        var lastFailure = ""
        var chosen: Int?
        let output = directory.appendingPathComponent("pg_ctl.out").path
        for _ in 0..<3 {
            let port = Int(try freeLoopbackPort())
            let (pgctl, prefix) = tools.command("pg_ctl")
            // Not runProcess: Foundation's Process learns that a child ended when a socket it gave the child closes,
            // and the server pg_ctl leaves running would hold it (and runProcess wait) until the server stops.
            let status = try Self.run(
                [pgctl] + prefix + [
                    "-D", data, "-l", directory.appendingPathComponent("postgres.log").path, "-w", "-t", "60",
                    "-o", (options + ["-p \(port)"]).joined(separator: " "), "start",
                ], output: output, timeout: 90)
            if status == 0 {
                chosen = port
                break
            }
            let said = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            let log = (try? String(contentsOf: directory.appendingPathComponent("postgres.log"), encoding: .utf8)) ?? ""
            lastFailure = "pg_ctl start failed (\(status)): \(said)\n\(log.suffix(2000))"
        }
        guard let port = chosen else { throw SetupError(lastFailure) }
        self.port = port
        started = true

        let isready = tools.bin.appendingPathComponent("pg_isready").path
        let ready =
            fm.isExecutableFile(atPath: isready)
            ? try waitUntil(timeout: 30, poll: 0.1) {
                try runProcess(isready, ["-q", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres"], timeout: 10).status == 0
            } : true
        guard ready else {
            stop()
            throw SetupError("the server on port \(port) did not accept connections within 30 s")
        }
        startWatchdog()
    }

    /// A shell that waits for this process to end, then stops the cluster and removes its folder: what `stop()` would
    /// have done, for a process that crashed or was killed.
    private func startWatchdog() {
        let (pgctl, prefix) = tools.command("pg_ctl")
        let stopCommand = ([pgctl] + prefix + ["-D", directory.appendingPathComponent("data").path, "stop", "-m", "immediate"])
            .map { "'\($0)'" }.joined(separator: " ")
        let script =
            "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; "
            + "[ -d '\(directory.path)' ] && { \(stopCommand); rm -rf '\(directory.path)'; }"
        _ = try? Self.spawn(["/bin/sh", "-c", script], output: "/dev/null")
    }

    /// Stops the cluster at once (`pg_ctl stop -m immediate`) and removes its folder. Idempotent.
    public func stop() {
        let shouldStop = lock.withLock {
            defer { stopped = true }
            return !stopped
        }
        guard shouldStop else { return }
        let (pgctl, prefix) = tools.command("pg_ctl")
        _ = try? Self.run(
            [pgctl] + prefix + ["-D", directory.appendingPathComponent("data").path, "stop", "-m", "immediate", "-w"],
            output: "/dev/null", timeout: 60)
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Processes that leave a daemon behind

    /// Starts `arguments` (an absolute executable first) with stdin from /dev/null, stdout and stderr appended to
    /// `output`, in a process group of its own, with every other file descriptor closed before the program runs (bash
    /// closes them, then execs it): a server it leaves behind holds nothing of this process's (Foundation's Process
    /// sockets, other tests' pipes), which would keep their readers waiting.
    static func spawn(_ arguments: [String], output: String) throws -> pid_t {
        let closeAll = #"for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null; exec "$@""#
        let argv = ["/bin/bash", "-c", closeAll, "bash"] + arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // No blocked signals, SIGPIPE and SIGCHLD at their defaults (a test process may ignore them), a new group.
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGCHLD)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, environ)
        guard code == 0 else { throw SetupError("cannot start \(arguments.joined(separator: " ")): \(String(cString: strerror(code)))") }
        return pid
    }

    /// ``spawn(_:output:)``, then waits for the program to exit and returns its exit status (128 + the signal when a
    /// signal ended it). At the deadline its process group is killed and an error thrown.
    static func run(_ arguments: [String], output: String, timeout: TimeInterval) throws -> Int32 {
        let pid = try spawn(arguments, output: output)
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0 && errno != EINTR {
                throw SetupError("waitpid: \(String(cString: strerror(errno)))")
            }
            if Date() >= deadline {
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw SetupError("\(arguments.joined(separator: " ")) did not exit within \(timeout) s and was killed")
            }
            usleep(20_000)
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    deinit { stop() }

    private static func giveToServerUser(_ url: URL, _ tools: Tools) throws {
        guard let user = tools.serverUser else { return }
        guard chown(url.path, user.uid, user.gid) == 0 else {
            throw SetupError("cannot give \(url.path) to the user postgres: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Databases

    /// The URL of a database on this cluster, as pilottrace takes it.
    public func url(database: String, user: String = "postgres", password: String? = nil, parameters: String? = nil) -> String {
        let credentials = user + (password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0) } ?? "")
        return "postgresql://\(credentials)@\(host):\(port)/\(database)" + (parameters.map { "?" + $0 } ?? "")
    }

    /// Creates an empty database (`name`: lowercase letters, digits, `_`) and returns its URL
    /// (`postgresql://postgres@127.0.0.1:PORT/name`).
    @discardableResult
    public func createDatabase(_ name: String) throws -> String {
        guard let first = name.first, first.isLowercase || first == "_",
            name.allSatisfy({ ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "_" })
        else {
            throw SetupError("\(name) is not a plain database name (a-z, 0-9, _)")
        }
        _ = try psql("CREATE DATABASE \(name)")
        return url(database: name)
    }

    /// Creates an empty database with a name of its own (`t1`, `t2`, … with the process id) and returns its URL.
    public func createDatabase() throws -> String {
        let n = lock.withLock {
            databaseCount += 1
            return databaseCount
        }
        return try createDatabase("t\(getpid())_\(n)")
    }

    /// Runs SQL with `psql` as the superuser (`ON_ERROR_STOP`, no `.psqlrc`) and returns what it printed
    /// (unaligned, tuples only).
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let result = try runProcess(
            tools.psql,
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", String(port), "-U", "postgres",
                "-d", database, "-c", sql,
            ], timeout: 60)
        guard result.status == 0 else { throw SetupError("psql failed (\(result.status)) on \(sql): \(result.stderr)") }
        return result.stdout
    }
}

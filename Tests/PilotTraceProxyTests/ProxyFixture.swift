import Foundation
import GRDB
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PilotTraceTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A temporary folder readable by mosquitto's own user (it drops privileges when started as root).
final class TempDir {
    let url: URL
    init(_ name: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ name: String, _ text: String) throws -> String {
        let p = path(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: p)
        return p
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A free TCP port on loopback (bound, then released).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    a.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: a.sin_port))
}

/// A real mosquitto on an ephemeral loopback port (anonymous allowed), optionally with a TLS listener, logging
/// connections to a file.
final class Broker {
    let process = Process()
    let port: Int
    let log: String
    static var available: Bool { TestPaths.which("mosquitto") != nil }

    /// A second listener speaking MQTT over WebSocket, when asked for.
    var webSocketPort: Int?

    init(dir: TempDir, tls: (cert: String, key: String)? = nil, webSocket: Bool = false) throws {
        port = freePort()
        log = dir.path("mosquitto.log")
        FileManager.default.createFile(atPath: log, contents: nil, attributes: [.posixPermissions: 0o666])
        var conf = "per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest file \(log)\nlog_type all\nconnection_messages true\n"
        conf += "listener \(port) 127.0.0.1\n"
        if let tls { conf += "certfile \(tls.cert)\nkeyfile \(tls.key)\n" }
        if webSocket {
            let ws = freePort()
            webSocketPort = ws
            conf += "listener \(ws) 127.0.0.1\nprotocol websockets\n"
        }
        let path = try dir.write("mosquitto.conf", conf)
        process.executableURL = URL(fileURLWithPath: TestPaths.which("mosquitto")!)
        process.arguments = ["-c", path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try waitForPort(port)
        if let ws = webSocketPort { try waitForPort(ws) }
    }

    /// The source ports the broker saw connections from, for a client id.
    func connectionsSeen(clientID: String) -> [Int] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line -> Int? in
            guard line.contains("New client connected from"), line.contains(" as \(clientID) ") else { return nil }
            guard let from = line.range(of: "connected from ")?.upperBound else { return nil }
            let addr = line[from...].split(separator: " ").first ?? ""
            return addr.split(separator: ":").last.flatMap { Int($0) }
        }
    }

    deinit {
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
func waitForPort(_ port: Int, timeout: TimeInterval = 10) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let c = try? RawClient(port: port) { c.close(); return }
        usleep(50_000)
    }
    throw FixtureError("nothing listening on \(port) after \(timeout) s")
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A blocking TCP client with a receive timeout, for HTTP and MQTT bytes written by hand.
final class RawClient {
    let fd: Int32
    var closed = false

    /// - Parameter receiveBuffer: a small SO_RCVBUF makes the peer's writes queue up while this side does not read.
    init(port: Int, timeout: Int = 10, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        let r = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else {
            Glibc.close(fd)
            throw FixtureError("connect to \(port): errno \(errno)")
        }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    var localPort: Int {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw FixtureError("send: errno \(errno)") }
            off += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Exactly `count` bytes.
    func receive(_ count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < count {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - out.count), 0) }
            guard n > 0 else { throw FixtureError("receive: got \(out.count) of \(count) bytes (errno \(errno))") }
            out += buf[0..<n]
        }
        return out
    }

    /// Everything until the peer closes.
    func receiveAll() throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return out }
            guard n > 0 else { throw FixtureError("receive: errno \(errno)") }
            out += buf[0..<n]
        }
    }

    /// An HTTP/1.1 response head and a Content-Length body.
    func receiveHTTPResponse() throws -> (status: Int, head: String, body: [UInt8]) {
        var head: [UInt8] = []
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) { head += try receive(1) }
        let text = String(decoding: head, as: UTF8.self)
        let status = Int(text.split(separator: " ")[1]) ?? 0
        var length = 0
        for line in text.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return (status, text, try receive(length))
    }

    /// One MQTT packet (fixed header, remaining length, body).
    func receiveMQTT() throws -> [UInt8] {
        var packet = try receive(1)
        var length = 0, shift = 0
        while true {
            let b = try receive(1)[0]
            packet.append(b)
            length |= Int(b & 0x7F) << shift
            shift += 7
            if b & 0x80 == 0 { break }
        }
        return packet + (try receive(length))
    }

    /// Aborts the connection: SO_LINGER 0 makes close() send RST.
    func reset() {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close()
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    deinit { close() }
}

/// A small upstream HTTP server on SwiftNIO (optionally TLS): fixed routes answered from a closure, a chunked
/// route, and a WebSocket route that accepts the upgrade and echoes text frames.
final class Upstream {
    struct Response {
        var status: HTTPResponseStatus = .ok
        var contentType = "application/json"
        var body: String
        var chunked = false
    }

    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var channel: Channel!
    var port: Int { channel.localAddress!.port! }

    init(tls: NIOSSLContext? = nil, route: @escaping @Sendable (HTTPRequestHead, String) -> Response) throws {
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    if let tls { try ch.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try ch.pipeline.syncOperations.addHandler(HTTPResponseEncoder())
                    try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
                    try ch.pipeline.syncOperations.addHandler(UpstreamRoutes(route: route))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    deinit {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

final class UpstreamRoutes: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let route: @Sendable (HTTPRequestHead, String) -> Upstream.Response
    var head: HTTPRequestHead?
    var body = ""
    var webSocket = false

    init(route: @escaping @Sendable (HTTPRequestHead, String) -> Upstream.Response) { self.route = route }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = ""
        case .body(var b):
            body += b.readString(length: b.readableBytes) ?? ""
        case .end:
            guard let head else { return }
            if head.headers.first(name: "upgrade")?.lowercased() == "websocket" {
                upgrade(context, head)
                return
            }
            let r = route(head, body)
            var headers = HTTPHeaders([("content-type", r.contentType)])
            if r.chunked {
                headers.add(name: "transfer-encoding", value: "chunked")
            } else {
                headers.add(name: "content-length", value: String(r.body.utf8.count))
            }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: r.status, headers: headers))), promise: nil)
            if r.chunked {
                // Three chunks, flushed one by one.
                let parts = [String(r.body.prefix(5)), String(r.body.dropFirst(5).prefix(7)), String(r.body.dropFirst(12))]
                for p in parts where !p.isEmpty {
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: p)))), promise: nil)
                }
            } else {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: r.body)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// RFC 6455 §4.2.2: 101 with the accept key; then raw frames: every text frame comes back unmasked.
    func upgrade(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let key = head.headers.first(name: "sec-websocket-key") ?? ""
        let accept = Data(SHA1.hash(Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
        let headers = HTTPHeaders([("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", accept)])
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))))
            .whenComplete { _ in
                // In front of the HTTP codec: frames never reach the decoder, and echoes go straight to the socket.
                try? context.pipeline.syncOperations.addHandler(WebSocketEcho(), position: .first)
            }
    }
}

/// Echoes each (masked, unfragmented, short) text frame as an unmasked one.
final class WebSocketEcho: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var pending: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var b = unwrapInboundIn(data)
        pending += b.readBytes(length: b.readableBytes) ?? []
        while pending.count >= 6 {
            let len = Int(pending[1] & 0x7F)
            guard len < 126, pending.count >= 6 + len else { return }
            let mask = Array(pending[2..<6])
            let payload = (0..<len).map { pending[6 + $0] ^ mask[$0 % 4] }
            let opcode = pending[0] & 0x0F
            pending.removeFirst(6 + len)
            if opcode == 8 {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: [0x88, 0x00])), promise: nil)
                context.close(promise: nil)
                return
            }
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: [0x81, UInt8(len)] + payload)), promise: nil)
        }
    }
}

/// SHA-1 (FIPS 180-4 §6.1), for the WebSocket accept key only.
enum SHA1 {
    static func hash(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var m = message + [0x80]
        while m.count % 64 != 56 { m.append(0) }
        let bits = UInt64(message.count) * 8
        for s in stride(from: 56, through: 0, by: -8) { m.append(UInt8((bits >> UInt64(s)) & 0xFF)) }
        for chunk in stride(from: 0, to: m.count, by: 64) {
            var w = (0..<16).map { i in (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(m[chunk + i * 4 + $1]) } }
            for i in 16..<80 { let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]; w.append(x << 1 | x >> 31) }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let (f, k): (UInt32, UInt32) =
                    i < 20
                    ? ((b & c) | (~b & d), 0x5A82_7999)
                    : i < 40
                        ? (b ^ c ^ d, 0x6ED9_EBA1)
                        : i < 60 ? ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC) : (b ^ c ^ d, 0xCA62_C1D6)
                let t = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, b << 30 | b >> 2, a, t)
            }
            h = [h[0] &+ a, h[1] &+ b, h[2] &+ c, h[3] &+ d, h[4] &+ e]
        }
        return h.flatMap { v in [24, 16, 8, 0].map { UInt8((v >> UInt32($0)) & 0xFF) } }
    }
}

/// `pilottrace proxy` running as a process; stderr and stdout go to files.
final class ProxyProcess {
    let process = Process()
    let stdout: String
    let stderr: String
    var httpPort = 0
    var mqttPort: Int?

    init(dir: TempDir, _ arguments: [String], name: String = "proxy") throws {
        stdout = dir.path("\(name).out")
        stderr = dir.path("\(name).err")
        FileManager.default.createFile(atPath: stdout, contents: nil)
        FileManager.default.createFile(atPath: stderr, contents: nil)
        process.executableURL = TestPaths.binary
        process.arguments = ["proxy"] + arguments
        process.standardOutput = FileHandle(forWritingAtPath: stdout)
        process.standardError = FileHandle(forWritingAtPath: stderr)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let err = (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? ""
            if err.contains("access link"), let http = Self.port(err, "http listening on") {
                httpPort = http
                mqttPort = Self.port(err, "mqtt listening on")
                return
            }
            if !process.isRunning { throw FixtureError("proxy exited: \(err)") }
            usleep(50_000)
        }
        throw FixtureError("proxy did not start")
    }

    static func port(_ text: String, _ marker: String) -> Int? {
        guard let r = text.range(of: marker + " ") else { return nil }
        let addr = text[r.upperBound...].split(separator: " ").first ?? ""
        return addr.split(separator: ":").last.flatMap { Int($0) }
    }

    /// SIGTERM, then the output once it has exited.
    func stop() throws -> (status: Int32, stdout: String, stderr: String) {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return (
            process.terminationStatus, (try? String(contentsOfFile: stdout, encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? ""
        )
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// Read-only queries on a pilottrace database.
struct StoredDB {
    let queue: DatabaseQueue
    init(_ path: String) throws {
        var c = Configuration()
        c.readonly = true
        queue = try DatabaseQueue(path: path, configuration: c)
    }
    func int(_ sql: String) throws -> Int { try queue.read { try Int.fetchOne($0, sql: sql) ?? -1 } }
    func strings(_ sql: String) throws -> [String] { try queue.read { try String?.fetchAll($0, sql: sql).map { $0 ?? "NULL" } } }
}

/// A self-signed certificate for 127.0.0.1 / localhost, made by openssl.
func makeCertificate(in dir: TempDir) throws -> (cert: String, key: String) {
    let cert = dir.path("cert.pem"), key = dir.path("key.pem")
    let r = try runProcess(
        TestPaths.which("openssl")!,
        [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
    guard r.status == 0 else { throw FixtureError("openssl: \(r.stderr)") }
    for p in [cert, key] { try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: p) }
    return (cert, key)
}

/// MQTT 3.1.1 by hand: CONNECT → CONNACK, then PUBLISH QoS 1 → PUBACK for each message, then DISCONNECT.
func mqttSession(port: Int, clientID: String, messages: [(String, String)], whileConnected: (RawClient) throws -> Void = { _ in }) throws {
    let c = try RawClient(port: port)
    try c.send(MQTTWire.connect(clientID: clientID, username: "pilot", password: "pilot123"))
    let ack = try c.receiveMQTT()
    guard ack == MQTTWire.connAck(0) else { throw FixtureError("CONNACK \(ack)") }
    try whileConnected(c)
    for (i, (topic, payload)) in messages.enumerated() {
        try c.send(MQTTWire.publish(topic, Array(payload.utf8), qos: 1, id: UInt16(i + 1)))
        let a = try c.receiveMQTT()
        guard a == MQTTWire.pubAck(id: UInt16(i + 1)) else { throw FixtureError("PUBACK \(a)") }
    }
    try c.send(MQTTWire.disconnect)
    c.close()
}

let updateTopo =
    #"{"tid":"t1","bid":"b1","timestamp":1795768089030,"method":"update_topo","data":{"domain":"2","type":119,"sub_type":0,"device_secret":"s","nonce":"n","thing_version":"1.1.2","sub_devices":[]}}"#

import Foundation
import PilotTraceTestSupport

/// A page kept open in headless Chromium, whose scripts keep running, asked questions through the DevTools protocol
/// (`Runtime.evaluate` over the page's WebSocket): what `--dump-dom` cannot do for a page that changes after load.
/// Chromium's DevTools port is chosen by the kernel (`--remote-debugging-port=0`, read back from `DevToolsActivePort`).
final class HeadlessBrowser {
    let process = Process()
    let profile: URL
    private var socket: Int32 = -1
    private var nextID = 0

    struct Failure: Error, CustomStringConvertible { var description: String }

    init(_ url: String, width: Int = 1400) throws {
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("pilottrace-chromium-\(UUID().uuidString)")
        process.executableURL = URL(fileURLWithPath: TestPaths.which("chromium") ?? "/usr/bin/chromium")
        process.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0", "--user-data-dir=\(profile.path)",
            "--window-size=\(width),1000", url,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let portFile = profile.appendingPathComponent("DevToolsActivePort")
        guard waitUntil(timeout: 30, poll: 0.05, { (try? String(contentsOf: portFile, encoding: .utf8))?.contains("\n") == true }),
            let port = UInt16((try String(contentsOf: portFile, encoding: .utf8)).split(separator: "\n").first ?? "")
        else { throw Failure(description: "chromium did not open its DevTools port") }
        // The page's WebSocket, once the page is listed.
        var path: String?
        _ = waitUntil(timeout: 20, poll: 0.1) {
            let list = (try? httpGet(port: port, path: "/json/list").body) ?? ""
            let pages = (try? JSONSerialization.jsonObject(with: Data(list.utf8))) as? [[String: Any]] ?? []
            path = pages.first { $0["type"] as? String == "page" && ($0["url"] as? String ?? "").hasPrefix(url) }
                .flatMap { ($0["webSocketDebuggerUrl"] as? String).flatMap { URL(string: $0)?.path } }
            return path != nil
        }
        guard let path else { throw Failure(description: "chromium lists no page at \(url)") }
        socket = try loopbackSocket(port: port)
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let upgrade =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        _ = upgrade.withCString { send(socket, $0, strlen($0), 0) }
        var head = Data()
        while !head.ends(with: "\r\n\r\n") {
            var byte: UInt8 = 0
            guard recv(socket, &byte, 1, 0) == 1 else { throw Failure(description: "no WebSocket handshake") }
            head.append(byte)
        }
        guard String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101") else { throw Failure(description: String(decoding: head, as: UTF8.self)) }
    }

    /// The value of `expression` in the page (a string, number or boolean, as JSON's).
    func evaluate(_ expression: String) throws -> Any? {
        nextID += 1
        let message = try JSONSerialization.data(withJSONObject: [
            "id": nextID, "method": "Runtime.evaluate", "params": ["expression": expression, "returnByValue": true],
        ])
        try sendFrame(message)
        while true {
            let reply = try receiveFrame()
            guard let object = (try? JSONSerialization.jsonObject(with: reply)) as? [String: Any], object["id"] as? Int == nextID else { continue }
            return ((object["result"] as? [String: Any])?["result"] as? [String: Any])?["value"]
        }
    }

    /// RFC 6455 §5.2: a final text frame, masked (a client's frames are).
    private func sendFrame(_ payload: Data) throws {
        var frame = Data([0x81])
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame.append(0x80 | 126)
            frame.append(contentsOf: [UInt8(payload.count >> 8), UInt8(payload.count & 0xff)])
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame.append(contentsOf: mask)
        frame.append(contentsOf: payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        let sent = frame.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
        guard sent == frame.count else { throw Failure(description: "WebSocket send failed") }
    }

    private func receive(_ count: Int) throws -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while data.count < count {
            let n = recv(socket, &buffer, min(buffer.count, count - data.count), 0)
            guard n > 0 else { throw Failure(description: "the DevTools connection closed") }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }

    /// A whole message (continuation frames joined); the server's frames are not masked.
    private func receiveFrame() throws -> Data {
        var message = Data()
        while true {
            let head = try receive(2)
            var length = Int(head[1] & 0x7f)
            if length == 126 { length = try receive(2).reduce(0) { $0 << 8 | Int($1) } }
            if length == 127 { length = try receive(8).reduce(0) { $0 << 8 | Int($1) } }
            message.append(try receive(length))
            if head[0] & 0x80 != 0 { return message }
        }
    }

    deinit {
        if socket >= 0 { close(socket) }
        if process.isRunning {
            kill(-process.processIdentifier, SIGTERM)  // chromium and its renderers: the process group
            if !waitUntil(timeout: 5, { !process.isRunning }) { kill(-process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: profile)
    }
}

extension Data {
    fileprivate func ends(with text: String) -> Bool { count >= text.utf8.count && suffix(text.utf8.count).elementsEqual(text.utf8) }
}

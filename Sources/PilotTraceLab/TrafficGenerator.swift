import PilotTraceWire

/// Synthetic but protocol-correct Pilot 2 traffic: N remote controllers log in over HTTP, hold MQTT sessions
/// (status and its reply, osd at 0.5 Hz for the RC and its aircraft, some reconnects within the grace), go offline
/// and disconnect; plus unrelated HTTP and MQTT traffic. Deterministic from the seed. Frames come out in time
/// order through a callback, with bounded memory (one pending chunk per device).
///
/// What analysis must find is known from the parameters: one `offline` session per device, no finding above info
/// (in a login storm, ``Expectation/unacknowledged`` sessions with `mqtt-publish-unacknowledged`).
public struct TrafficGenerator {
    /// How the devices behave.
    public enum Shape: Sendable, Equatable {
        /// Each device stays online for ``Parameters/duration``: osd at 0.5 Hz for the RC and its aircraft, every tenth
        /// device reconnecting within the grace half-way.
        case online
        /// A login storm (a broker restart, the start of a shift): each device logs in, connects, publishes
        /// `messages` QoS 1 `state` messages 10 ms apart, each in a frame of its own and acknowledged by a PUBACK in
        /// a frame of its own, and disconnects; every fourth device's last PUBLISH goes unacknowledged.
        case loginStorm(messages: Int)
    }

    public struct Parameters: Sendable {
        public var devices = 10
        public var shape = Shape.online
        /// Seconds each device stays online (``Shape/online``).
        public var duration: Double = 60
        /// Unrelated connections started per second.
        public var noise: Double = 1
        /// Seconds between one device's start and the next's: with a stagger well above `duration / devices`,
        /// devices come and go through the capture instead of all being online together.
        public var stagger: Double = 0.05
        public var seed: UInt64 = 1
        public init() {}
    }

    public let parameters: Parameters

    public init(_ parameters: Parameters) { self.parameters = parameters }

    /// How the generated frames are laid out (Ethernet, minimal headers): ``run(_:)``'s frames are of
    /// `format.link.linkType`.
    public static let format = TCPFrameSynthesizer.Format.generated

    /// What a correct analysis of the generated capture finds.
    public struct Expectation: Sendable {
        public var sessions: Int
        public var reconnects: Int
        /// Sessions with one `mqtt-publish-unacknowledged` finding (the warning a login storm puts in many sessions).
        public var unacknowledged: Int
    }

    public var expectation: Expectation {
        let devices = 0..<parameters.devices
        switch parameters.shape {
        case .online:
            let reconnects = devices.filter { Device.reconnects($0, online: parameters.duration) }.count
            return Expectation(sessions: parameters.devices, reconnects: reconnects, unacknowledged: 0)
        case .loginStorm:
            return Expectation(sessions: parameters.devices, reconnects: 0, unacknowledged: devices.filter(Device.leavesLastUnacknowledged).count)
        }
    }

    /// Seconds one device is connected.
    var online: Double {
        switch parameters.shape {
        case .online: return parameters.duration
        case .loginStorm(let messages): return 0.2 + Double(messages) * 0.01
        }
    }

    /// Generates everything, calling `emit` with each frame (of ``format``) and its time, in time order.
    public func run(_ emit: (Timestamp, [UInt8]) throws -> Void) rethrows {
        var rng = SplitMix64(seed: parameters.seed)
        var sources: [any FrameSource] = (0..<parameters.devices).map {
            Device(index: $0, parameters: parameters, online: online, rng: &rng)
        }
        sources.append(CloudBackend(start: 0.01))
        let span = Double(parameters.devices) * parameters.stagger + online + 5
        var t = 0.0, n = 0
        while parameters.noise > 0 && t < span {
            t += -log(max(1e-9, Double(rng.next() % 1_000_000) / 1e6)) / parameters.noise
            sources.append(Noise(index: n, start: t, mqtt: rng.next() % 3 == 0))
            n += 1
        }
        // A k-way merge on the next frame time of every source.
        var heap = MinHeap()
        for i in sources.indices { if let f = sources[i].next() { heap.push(f.0, i, f.1) } }
        let base: Int64 = 1_795_000_000_000_000_000
        while let (time, i, frame) = heap.pop() {
            try emit(Timestamp(nanoseconds: base + Int64(time * 1e9)), frame)
            if let f = sources[i].next() { heap.push(f.0, i, f.1) }
        }
    }
}

func log(_ x: Double) -> Double {
    // Natural logarithm without Foundation (keeps the target pure): ln(x) = 2·atanh((x-1)/(x+1)).
    var x = x, k = 0.0
    while x > 2 { x /= 2.718281828459045; k += 1 }
    while x < 0.5 { x *= 2.718281828459045; k -= 1 }
    let y = (x - 1) / (x + 1), y2 = y * y
    var term = y, sum = 0.0
    for i in stride(from: 1.0, through: 41, by: 2) { sum += term / i; term *= y2 }
    return k + 2 * sum
}

struct MinHeap {
    var items: [(Double, Int, [UInt8])] = []
    mutating func push(_ t: Double, _ i: Int, _ f: [UInt8]) {
        items.append((t, i, f))
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard (items[c].0, items[c].1) < (items[p].0, items[p].1) else { break }
            items.swapAt(c, p)
            c = p
        }
    }
    mutating func pop() -> (Double, Int, [UInt8])? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var p = 0
        while true {
            let l = 2 * p + 1, r = l + 1
            var m = p
            if l < items.count && (items[l].0, items[l].1) < (items[m].0, items[m].1) { m = l }
            if r < items.count && (items[r].0, items[r].1) < (items[m].0, items[m].1) { m = r }
            if m == p { break }
            items.swapAt(p, m)
            p = m
        }
        return top
    }
}

/// Something that produces frames in time order.
protocol FrameSource {
    mutating func next() -> (Double, [UInt8])?
}

/// One generated TCP connection: Wire's ``TCPFrameSynthesizer`` makes its frames (``TCPFrameSynthesizer/Format/generated``:
/// Ethernet, minimal IPv4 headers), this says when each one goes out.
struct GeneratedConnection {
    var tcp: TCPFrameSynthesizer

    /// - Parameter isn: the client's initial sequence number; the server's is derived from it.
    init(client: Endpoint, server: Endpoint, isn: UInt32) {
        tcp = TCPFrameSynthesizer(
            client: client, server: server, initialSequence: (isn, isn &* 2_654_435_761), maximumSegmentSize: 1448,
            format: TrafficGenerator.format)
    }

    init(client: (UInt32, UInt16), server: (UInt32, UInt16), isn: UInt32) {
        self.init(client: Endpoint(address: .v4(client.0), port: client.1), server: Endpoint(address: .v4(server.0), port: server.1), isn: isn)
    }

    /// SYN at `t`, SYN-ACK 0.1 ms later, ACK 0.1 ms after that.
    mutating func open(at t: Double, into out: inout [(Double, [UInt8])]) {
        for (offset, frame) in zip([0, 0.0001, 0.0002], tcp.handshake()) { out.append((t + offset, frame)) }
    }

    /// Sends `payload`, cut into MSS-sized segments 10 µs apart, acknowledged by the peer 0.1 ms after the last
    /// (unless `acknowledged` is false: the peer's next data segment will carry the acknowledgment).
    mutating func send(fromClient: Bool, _ payload: [UInt8], at t: Double, acknowledged: Bool = true, into out: inout [(Double, [UInt8])]) {
        let direction: Direction = fromClient ? .toServer : .toClient
        var at = t
        for frame in tcp.data(payload, from: direction) {
            out.append((at, frame))
            at += 0.00001
        }
        guard acknowledged else { return }
        for frame in tcp.ack(from: direction.reversed) { out.append((at + 0.0001, frame)) }
    }

    /// The client resets the connection at `t`, or closes it: its FIN, the server's FIN-ACK 0.1 ms later, its ACK
    /// 0.1 ms after that.
    mutating func close(at t: Double, reset: Bool = false, into out: inout [(Double, [UInt8])]) {
        if reset {
            for frame in tcp.rst(from: .toServer) { out.append((t, frame)) }
            return
        }
        let frames = tcp.fin(from: .toServer, peerAcknowledges: false) + tcp.fin(from: .toClient, peerAcknowledges: false) + tcp.ack(from: .toServer)
        for (offset, frame) in zip([0, 0.0001, 0.0002], frames) { out.append((t + offset, frame)) }
    }
}

/// An HTTP message with its Content-Length.
func httpMessage(_ head: String, _ body: String) -> [UInt8] {
    Array((head + "Content-Length: \(body.utf8.count)\r\n\r\n" + body).utf8)
}

/// One remote controller: H5 login, MQTT session with osd, offline.
struct Device: FrameSource {
    let index: Int
    let sn: String
    let aircraft: String
    let start: Double
    let end: Double
    var mqtt: GeneratedConnection
    var chunk: [(Double, [UInt8])] = []
    var position = 0
    var stage = 0
    var osdTime: Double
    var counter: UInt64 = 0
    var reconnected = false

    let shape: TrafficGenerator.Shape
    /// Seconds online, as the parameters say (`end - start` may round below it).
    let online: Double

    /// Every tenth device loses its link half-way and reconnects 5 s later, if it stays online long enough for that
    /// (below 20 s the reconnect would come after its own offline: frames out of time order).
    static func reconnects(_ index: Int, online: Double) -> Bool { index % 10 == 3 && online >= 20 }
    static func leavesLastUnacknowledged(_ index: Int) -> Bool { index % 4 == 1 }

    init(index: Int, parameters: TrafficGenerator.Parameters, online: Double, rng: inout SplitMix64) {
        self.index = index
        shape = parameters.shape
        self.online = online
        sn = "5YSZL\(String(260_000_000 + index).suffix(9))"
        aircraft = "1581F5FHD\(String(23_000_000_000 + index).suffix(11))"
        start = Double(index) * parameters.stagger + Double(rng.next() % 1000) / 1e5
        end = start + online
        let ip = 0x0A00_0000 | UInt32(index + 10)
        mqtt = GeneratedConnection(client: (ip, 50_000), server: (0x0A01_0001, 1883), isn: UInt32(truncatingIfNeeded: rng.next()))
        osdTime = start + 1.5
        chunk = loginAndConnect(ip: ip, rng: &rng)
    }

    mutating func loginAndConnect(ip: UInt32, rng: inout SplitMix64) -> [(Double, [UInt8])] {
        var out: [(Double, [UInt8])] = []
        var h = GeneratedConnection(client: (ip, 40_000), server: (0x0A01_0002, 6789), isn: UInt32(truncatingIfNeeded: rng.next()))
        var t = start
        h.open(at: t, into: &out)
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJkZXZpY2UiOiJ\(index)In0.c2lnbmF0dXJl"
        let exchanges: [(String, String, String)] = [
            (
                "GET /pilot-login HTTP/1.1\r\nHost: cloud\r\n", "",
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n|<!doctype html><title>Cloud Api Platform</title>"
            ),
            (
                "POST /manage/api/v1/login HTTP/1.1\r\nHost: cloud\r\nContent-Type: application/json\r\n",
                #"{"username":"pilot\#(index)","password":"pw\#(index)","flag":2}"#,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n|"
                    + #"{"code":0,"message":"success","data":{"username":"pilot\#(index)","workspace_id":"w1","mqtt_username":"rc\#(index)","mqtt_password":"mp\#(index)","mqtt_addr":"tcp://10.1.0.1:1883","access_token":"\#(token)"}}"#
            ),
            (
                "GET /manage/api/v1/workspaces/current HTTP/1.1\r\nHost: cloud\r\nx-auth-token: \(token)\r\n", "",
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n|"
                    + #"{"code":0,"message":"success","data":{"workspace_id":"w1","workspace_name":"Fleet","platform_name":"Cloud"}}"#
            ),
        ]
        for (request, body, response) in exchanges {
            t += 0.002
            h.send(fromClient: true, httpMessage(request, body), at: t, into: &out)
            let parts = response.split(separator: "|", maxSplits: 1).map(String.init)
            t += 0.004
            h.send(fromClient: false, httpMessage(parts[0], parts[1]), at: t, into: &out)
        }
        h.close(at: t + 0.001, into: &out)
        connect(at: start + 0.1, into: &out)
        return out.sorted { $0.0 < $1.0 }
    }

    mutating func connect(at t0: Double, into out: inout [(Double, [UInt8])]) {
        var t = t0
        mqtt.open(at: t, into: &out)
        t += 0.001
        mqtt.send(fromClient: true, MQTTWire.connect(clientID: sn, username: "rc\(index)", password: "mp\(index)"), at: t, into: &out)
        mqtt.send(fromClient: false, [0x20, 0x02, 0x00, 0x00], at: t + 0.001, into: &out)
        mqtt.send(
            fromClient: true,
            MQTTWire.packet(0x82, [0, 1] + MQTTWire.str("sys/product/\(sn)/status_reply") + [1] + MQTTWire.str("thing/product/\(sn)/services") + [1]),
            at: t + 0.002, into: &out)
        mqtt.send(fromClient: false, MQTTWire.packet(0x90, [0, 1, 1, 1]), at: t + 0.003, into: &out)
        status(aircraft: [aircraft], at: t + 0.004, into: &out)
    }

    mutating func status(aircraft: [String], at t: Double, into out: inout [(Double, [UInt8])]) {
        counter += 1
        let tid = "t-\(index)-\(counter)"
        let subs = aircraft.map { #"{"sn":"\#($0)","domain":"0","type":89,"sub_type":0,"index":"A","device_secret":"s","nonce":"n","thing_version":"1.1.2"}"# }
        let ms = 1_795_000_000_000 + Int64(t * 1000)
        let topo =
            #"{"tid":"\#(tid)","bid":"b\#(tid)","method":"update_topo","timestamp":\#(ms),"gateway":"\#(sn)","data":{"domain":"2","type":119,"sub_type":0,"device_secret":"s","nonce":"n","thing_version":"1.1.2","sub_devices":[\#(subs.joined(separator: ","))]}}"#
        mqtt.send(fromClient: true, MQTTWire.publish("sys/product/\(sn)/status", topo), at: t, into: &out)
        mqtt.send(
            fromClient: false,
            MQTTWire.publish("sys/product/\(sn)/status_reply", #"{"tid":"\#(tid)","bid":"b\#(tid)","timestamp":1795000000100,"data":{"result":0}}"#),
            at: t + 0.02, into: &out)
    }

    mutating func next() -> (Double, [UInt8])? {
        while position >= chunk.count {
            chunk.removeAll(keepingCapacity: true)
            position = 0
            var out: [(Double, [UInt8])] = []
            switch stage {
            case 0 where shape != .online:
                // The storm: QoS 1 state messages, each acknowledged, then offline.
                guard case .loginStorm(let messages) = shape else { return nil }
                stage = 1
                var t = start + 0.15
                for m in 1...max(1, messages) {
                    let id = UInt16(truncatingIfNeeded: m)
                    let state = #"{"tid":"s\#(m)","bid":"s","timestamp":1795000000000,"gateway":"\#(sn)","data":{"mode_code":\#(m % 5)}}"#
                    mqtt.send(fromClient: true, MQTTWire.publish("thing/product/\(sn)/state", state, qos: 1, id: id), at: t, acknowledged: false, into: &out)
                    if m < messages || !Self.leavesLastUnacknowledged(index) {
                        mqtt.send(fromClient: false, MQTTWire.pubAck(id: id), at: t + 0.002, acknowledged: false, into: &out)
                    }
                    t += 0.01
                }
                offline(into: &out)
            case 0:
                // osd for the RC and the aircraft every 2 s.
                if osdTime < end {
                    counter += 1
                    for sn in [sn, aircraft] {
                        mqtt.send(
                            fromClient: true,
                            MQTTWire.publish(
                                "thing/product/\(sn)/osd",
                                #"{"tid":"o\#(counter)","bid":"o","timestamp":1795000000000,"gateway":"\#(self.sn)","data":{"capacity_percent":87,"latitude":22.5,"longitude":113.9,"height":120.5}}"#
                            ),
                            at: osdTime + (sn == self.sn ? 0 : 0.001), into: &out)
                    }
                    osdTime += 2
                    // Some devices lose the link half-way and reconnect within the grace.
                    if Self.reconnects(index, online: online), !reconnected, osdTime > start + (end - start) / 2 {
                        reconnected = true
                        mqtt.close(at: osdTime, reset: true, into: &out)
                        mqtt = GeneratedConnection(
                            client: Endpoint(address: mqtt.tcp.client.address, port: 50_001), server: mqtt.tcp.server,
                            isn: mqtt.tcp.nextSequence.client &+ 99_999)
                        connect(at: osdTime + 5, into: &out)
                        osdTime += 6
                    }
                } else {
                    stage = 1
                    offline(into: &out)
                }
            default:
                return nil
            }
            chunk = out.sorted { $0.0 < $1.0 }
        }
        defer { position += 1 }
        return chunk[position]
    }
}

extension Device {
    /// Active offline at `end`: an update_topo without aircraft, DISCONNECT, close.
    mutating func offline(into out: inout [(Double, [UInt8])]) {
        status(aircraft: [], at: end, into: &out)
        mqtt.send(fromClient: true, [0xE0, 0x00], at: end + 0.1, into: &out)
        mqtt.close(at: end + 0.1001, into: &out)
    }
}

/// The cloud backend's own MQTT client: connects and subscribes with a wildcard.
struct CloudBackend: FrameSource {
    var frames: [(Double, [UInt8])] = []
    var position = 0
    init(start: Double) {
        var c = GeneratedConnection(client: (0x0A01_0003, 45_000), server: (0x0A01_0001, 1883), isn: 7)
        c.open(at: start, into: &frames)
        c.send(
            fromClient: true, MQTTWire.connect(clientID: "cloud-backend", username: "cloud", password: "secret", keepAlive: 10), at: start + 0.001,
            into: &frames)
        c.send(fromClient: false, [0x20, 0x02, 0x00, 0x00], at: start + 0.002, into: &frames)
        c.send(fromClient: true, MQTTWire.packet(0x82, [0, 1] + MQTTWire.str("sys/product/+/status") + [1]), at: start + 0.003, into: &frames)
        c.send(fromClient: false, MQTTWire.packet(0x90, [0, 1, 1]), at: start + 0.004, into: &frames)
        frames.sort { $0.0 < $1.0 }
    }
    mutating func next() -> (Double, [UInt8])? {
        guard position < frames.count else { return nil }
        defer { position += 1 }
        return frames[position]
    }
}

/// Unrelated traffic: a web page fetch, or an MQTT client on other topics.
struct Noise: FrameSource {
    var frames: [(Double, [UInt8])] = []
    var position = 0
    init(index: Int, start: Double, mqtt: Bool) {
        let ip = 0xC0A8_0000 | UInt32(index % 60_000 + 1)
        if mqtt {
            var c = GeneratedConnection(
                client: (ip, UInt16(30_000 + index % 20_000)), server: (0x0A01_0001, 1883), isn: UInt32(truncatingIfNeeded: index &* 7919))
            c.open(at: start, into: &frames)
            c.send(fromClient: true, MQTTWire.connect(clientID: "sensor-\(index)", username: "sensor", password: "x"), at: start + 0.001, into: &frames)
            c.send(fromClient: false, [0x20, 0x02, 0x00, 0x00], at: start + 0.002, into: &frames)
            for k in 0..<5 {
                c.send(fromClient: true, MQTTWire.publish("house/sensor/\(index)", #"{"t":\#(20 + k)}"#), at: start + 0.01 + Double(k) * 0.1, into: &frames)
            }
            c.send(fromClient: true, [0xE0, 0x00], at: start + 0.6, into: &frames)
            c.close(at: start + 0.61, into: &frames)
        } else {
            var c = GeneratedConnection(
                client: (ip, UInt16(30_000 + index % 20_000)), server: (0x5DB8_D822, 80), isn: UInt32(truncatingIfNeeded: index &* 104_729))
            c.open(at: start, into: &frames)
            c.send(fromClient: true, Array("GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n".utf8), at: start + 0.001, into: &frames)
            let body = String(repeating: "<p>hello</p>", count: 300)
            c.send(fromClient: false, httpMessage("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", body), at: start + 0.02, into: &frames)
            c.close(at: start + 0.03, into: &frames)
        }
        frames.sort { $0.0 < $1.0 }
    }
    mutating func next() -> (Double, [UInt8])? {
        guard position < frames.count else { return nil }
        defer { position += 1 }
        return frames[position]
    }
}

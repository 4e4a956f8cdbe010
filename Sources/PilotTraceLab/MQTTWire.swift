/// Builders for MQTT wire bytes, written from the specification independently of the decoder: the synthetic captures
/// (``TrafficGenerator``) and the tests build their packets with them.
public enum MQTTWire {
    /// MQTT 3.1.1 §2.2.3 Variable Byte Integer.
    public static func vbi(_ value: Int) -> [UInt8] {
        var out: [UInt8] = []
        var x = value
        repeat {
            var b = UInt8(x % 128)
            x /= 128
            if x > 0 { b |= 0x80 }
            out.append(b)
        } while x > 0
        return out
    }

    public static func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    public static func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    public static func str(_ s: String) -> [UInt8] { bin(Array(s.utf8)) }
    public static func bin(_ b: [UInt8]) -> [UInt8] { u16(UInt16(b.count)) + b }

    /// First byte, Remaining Length, body.
    public static func packet(_ first: UInt8, _ body: [UInt8]) -> [UInt8] { [first] + vbi(body.count) + body }

    /// A property block: Property Length then the properties.
    public static func props(_ items: [UInt8]...) -> [UInt8] {
        let body = items.flatMap { $0 }
        return vbi(body.count) + body
    }

    public static func userProperty(_ k: String, _ v: String) -> [UInt8] { [0x26] + str(k) + str(v) }
    public static func topicAlias(_ a: UInt16) -> [UInt8] { [0x23] + u16(a) }
    public static func sessionExpiry(_ s: UInt32) -> [UInt8] { [0x11] + u32(s) }
    public static func reasonString(_ s: String) -> [UInt8] { [0x1F] + str(s) }

    public static func hex(_ s: String) -> [UInt8] {
        let digits = Array(s.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    // Frequently used packets.
    public static let pingReq: [UInt8] = [0xC0, 0x00]
    public static let pingResp: [UInt8] = [0xD0, 0x00]

    public static func connect311(clientID: String = "pilot", keepAlive: UInt16 = 60) -> [UInt8] {
        packet(0x10, str("MQTT") + [4, 0x02] + u16(keepAlive) + str(clientID))
    }

    public static func connect5(clientID: String = "pilot", properties: [UInt8] = props()) -> [UInt8] {
        packet(0x10, str("MQTT") + [5, 0x02] + u16(30) + properties + str(clientID))
    }

    public static func publish(
        _ topic: String, _ payload: [UInt8], qos: UInt8 = 0, id: UInt16 = 1, v5props: [UInt8]? = nil,
        dup: Bool = false, retain: Bool = false
    ) -> [UInt8] {
        var body = str(topic)
        if qos > 0 { body += u16(id) }
        if let v5props { body += v5props }
        let first = 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0)
        return packet(first, body + payload)
    }

    /// A PUBLISH of a JSON (or any text) payload.
    public static func publish(_ topic: String, _ text: String, qos: UInt8 = 0, id: UInt16 = 1) -> [UInt8] {
        publish(topic, Array(text.utf8), qos: qos, id: id)
    }

    /// CONNECT 3.1.1 with credentials (flags: username, password, clean session).
    public static func connect(clientID: String, username: String?, password: String?, keepAlive: UInt16 = 60) -> [UInt8] {
        var flags: UInt8 = 0x02
        if username != nil { flags |= 0x80 }
        if password != nil { flags |= 0x40 }
        var body = str("MQTT") + [4, flags] + u16(keepAlive) + str(clientID)
        if let username { body += str(username) }
        if let password { body += str(password) }
        return packet(0x10, body)
    }

    public static func connAck(_ code: UInt8 = 0) -> [UInt8] { [0x20, 0x02, 0x00, code] }
    public static func subscribe(id: UInt16, _ filters: [String]) -> [UInt8] {
        packet(0x82, u16(id) + filters.flatMap { str($0) + [1] })
    }
    public static func subAck(id: UInt16, count: Int) -> [UInt8] { packet(0x90, u16(id) + [UInt8](repeating: 1, count: count)) }
    public static func pubAck(id: UInt16) -> [UInt8] { [0x40, 0x02] + u16(id) }
    public static let disconnect: [UInt8] = [0xE0, 0x00]
}

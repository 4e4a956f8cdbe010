import PilotTraceProtocols

/// The DJI Cloud API envelope of an MQTT payload (protocol reference §4.2): `tid`, `bid`, `timestamp`, `method`,
/// `data`, `gateway`, `need_reply`. Malformed JSON is kept raw, with the reason.
public struct DJIEnvelope: Hashable, Sendable {
    public var tid: String?
    public var bid: String?
    public var timestamp: Int64?
    public var method: String?
    public var data: JSONValue?
    public var gateway: String?
    public var needReply: Int?
    /// The whole payload as parsed.
    public var json: JSONValue?
    /// Why the payload is not a JSON object, when it is not.
    public var problem: String?

    public init(payload: [UInt8]) {
        do {
            let value = try JSONValue.parse(payload)
            guard case .object = value else {
                problem = "the payload is JSON but not an object"
                json = value
                return
            }
            json = value
            tid = value["tid"]?.stringValue
            bid = value["bid"]?.stringValue
            timestamp = value["timestamp"]?.int64Value
            method = value["method"]?.stringValue
            data = value["data"]
            gateway = value["gateway"]?.stringValue
            needReply = value["need_reply"]?.int64Value.map(Int.init)
        } catch {
            problem = payload.isEmpty ? "empty payload" : "the payload is not JSON: \(error)"
        }
    }

    public var isValid: Bool { problem == nil }
}

/// What a topic is in the Cloud API (protocol reference §4.3).
public enum DJITopic: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        case status, statusReply = "status_reply"
        case osd, state, services, servicesReply = "services_reply", events, eventsReply = "events_reply"
        case requests, requestsReply = "requests_reply", propertySet = "property/set", propertySetReply = "property/set_reply"
        case drcUp = "drc/up", drcDown = "drc/down"
        /// `thing/product/{sn}/status`: the documentation's typo for `sys/product/{sn}/status`.
        case statusTypo = "thing-status"
    }

    case device(sn: String, kind: Kind)
    case other(String)

    /// Parses `{sys|thing}/product/{sn}/{kind}`; anything else is `.other`.
    ///
    /// Called for every PUBLISH by the session tracker, the reply correlator and the rules, so it works on the UTF-8
    /// bytes in place (no split into an array of strings).
    public init(_ topic: String) {
        var topic = topic
        self = topic.withUTF8 { Self.parse($0) } ?? .other(topic)
    }

    private static func parse(_ b: UnsafeBufferPointer<UInt8>) -> DJITopic? {
        // The first three "/": parts[0] / parts[1] / parts[2] / rest (rest may hold more "/").
        guard let s1 = b.firstIndex(of: 0x2F),
            let s2 = b[(s1 + 1)...].firstIndex(of: 0x2F),
            let s3 = b[(s2 + 1)...].firstIndex(of: 0x2F),
            equal(b[(s1 + 1)..<s2], "product"), s3 > s2 + 1
        else { return nil }
        let root = b[..<s1], rest = b[(s3 + 1)...]
        let isSys = equal(root, "sys")
        guard isSys || equal(root, "thing") else { return nil }
        let sn = String(decoding: b[(s2 + 1)..<s3], as: UTF8.self)
        if isSys {
            if equal(rest, "status") { return .device(sn: sn, kind: .status) }
            if equal(rest, "status_reply") { return .device(sn: sn, kind: .statusReply) }
            return nil
        }
        if equal(rest, "status") { return .device(sn: sn, kind: .statusTypo) }
        // The kind's name compared in place (no String built for it).
        guard let kind = thingKinds.first(where: { $0.rawValue.utf8.elementsEqual(rest) }) else { return nil }
        return .device(sn: sn, kind: kind)
    }

    /// The kinds published under `thing/product/{sn}/`.
    private static let thingKinds = Kind.allCases.filter { $0 != .status && $0 != .statusReply && $0 != .statusTypo }

    private static func equal(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, _ s: StaticString) -> Bool {
        bytes.count == s.utf8CodeUnitCount && bytes.elementsEqual(UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// `thing/product/…/osd` and `…/state`: periodic telemetry, which no rule or report reads as JSON (the store keeps
    /// its payload only). Checked for every stored PUBLISH, so it compares bytes in place.
    public static func isTelemetry(_ topic: String) -> Bool {
        var topic = topic
        return topic.withUTF8 { t in
            func has(_ s: StaticString, atEnd: Bool) -> Bool {
                let count = s.utf8CodeUnitCount
                guard t.count >= count else { return false }
                let start = atEnd ? t.count - count : 0
                return t[start..<start + count].elementsEqual(UnsafeBufferPointer(start: s.utf8Start, count: count))
            }
            return has("thing/product/", atEnd: false) && (has("/osd", atEnd: true) || has("/state", atEnd: true))
        }
    }

    public var sn: String? {
        if case .device(let sn, _) = self { return sn }
        return nil
    }

    public var kind: Kind? {
        if case .device(_, let kind) = self { return kind }
        return nil
    }

    /// Sent by the device (Pilot 2) to the cloud.
    public var isUplink: Bool {
        switch kind {
        case .status?, .statusTypo?, .osd?, .state?, .servicesReply?, .events?, .requests?, .propertySetReply?, .drcUp?: true
        default: false
        }
    }

    /// Sent by the cloud to the device.
    public var isDownlink: Bool {
        switch kind {
        case .statusReply?, .services?, .eventsReply?, .requestsReply?, .propertySet?, .drcDown?: true
        default: false
        }
    }
}

/// A device model, keyed `domain-type-sub_type` (protocol reference §5).
public struct DeviceModel: Hashable, Sendable, CustomStringConvertible {
    public var domain: Int?
    public var type: Int
    public var subType: Int

    public init(domain: Int?, type: Int, subType: Int) {
        self.domain = domain
        self.type = type
        self.subType = subType
    }

    public var key: String { "\(domain.map(String.init) ?? "?")-\(type)-\(subType)" }
    public var description: String { key }

    /// The product name, when the model is in the documented table.
    public var name: String? {
        let known: [String: String] = [
            "2-56-0": "DJI Smart Controller Enterprise", "2-119-0": "DJI RC Plus", "2-144-0": "DJI RC Pro Enterprise",
            "2-174-0": "DJI RC Plus 2 Enterprise", "0-89-0": "Matrice 350 RTK", "0-60-0": "Matrice 300 RTK",
            "0-67-0": "Matrice 30", "0-67-1": "Matrice 30T", "0-77-0": "Mavic 3E", "0-77-1": "Mavic 3T",
            "0-77-2": "Mavic 3M", "0-77-3": "Mavic 3TA", "0-99-0": "Matrice 4E", "0-99-1": "Matrice 4T",
            "0-103-0": "Matrice 400", "0-91-0": "Matrice 3D", "0-91-1": "Matrice 3TD", "0-100-0": "Matrice 4D",
            "0-100-1": "Matrice 4TD", "3-1-0": "DJI Dock", "3-2-0": "DJI Dock 2", "3-3-0": "DJI Dock 3",
        ]
        if let domain { return known["\(domain)-\(type)-\(subType)"] }
        return known["2-\(type)-\(subType)"] ?? known["0-\(type)-\(subType)"]
    }

    /// Remote controllers (domain 2) that act as a Pilot 2 gateway.
    public var isRemoteController: Bool { (domain ?? 2) == 2 && [56, 119, 144, 174].contains(type) }
}

/// An `update_topo` (protocol reference §4.4), in either documented dialect: `thing_version` string or `version`
/// int; `domain` string, int or absent; `index` string or int.
public struct UpdateTopo: Hashable, Sendable {
    public struct SubDevice: Hashable, Sendable {
        public var sn: String?
        public var model: DeviceModel?
        public var index: String?
        public var missing: [String]
    }

    public var gateway: DeviceModel?
    public var thingVersion: String?
    /// `thing_version` (current docs) or `version` (v1.0 docs).
    public var versionField: String?
    public var subDevices: [SubDevice]
    /// Required fields that are absent (envelope and data), for the deviation rules.
    public var missing: [String]

    /// Parses the `data` of an envelope whose method is `update_topo`.
    public init?(_ envelope: DJIEnvelope) {
        guard envelope.method == "update_topo", let data = envelope.data, case .object = data else { return nil }
        var missing: [String] = []
        for (name, present) in [("tid", envelope.tid != nil), ("bid", envelope.bid != nil), ("timestamp", envelope.timestamp != nil)] where !present {
            missing.append(name)
        }
        gateway = Self.model(data)
        if data["type"] == nil { missing.append("data.type") }
        if data["sub_type"] == nil { missing.append("data.sub_type") }
        for f in ["device_secret", "nonce"] where data[f] == nil { missing.append("data.\(f)") }
        if let v = data["thing_version"] {
            versionField = "thing_version"
            thingVersion = Self.text(v)
        } else if let v = data["version"] {
            versionField = "version"
            thingVersion = Self.text(v)
        } else {
            missing.append("data.thing_version")
        }
        var subs: [SubDevice] = []
        if case .array(let items)? = data["sub_devices"] {
            for (i, item) in items.enumerated() {
                var m: [String] = []
                for f in ["sn", "type", "sub_type", "index", "device_secret", "nonce"] where item[f] == nil { m.append("data.sub_devices[\(i)].\(f)") }
                subs.append(SubDevice(sn: item["sn"].flatMap(Self.text), model: Self.model(item), index: item["index"].flatMap(Self.text), missing: m))
                missing += m
            }
        } else {
            missing.append("data.sub_devices")
        }
        subDevices = subs
        self.missing = missing
    }

    static func int(_ v: JSONValue?) -> Int? {
        guard let v else { return nil }
        if let i = v.int64Value { return Int(i) }
        if let s = v.stringValue { return Int(s) }
        return nil
    }

    static func text(_ v: JSONValue) -> String? {
        if let s = v.stringValue { return s }
        if case .number(let n) = v { return n.literal }
        return nil
    }

    static func model(_ v: JSONValue) -> DeviceModel? {
        guard let type = int(v["type"]), let sub = int(v["sub_type"]) else { return nil }
        return DeviceModel(domain: int(v["domain"]), type: type, subType: sub)
    }
}

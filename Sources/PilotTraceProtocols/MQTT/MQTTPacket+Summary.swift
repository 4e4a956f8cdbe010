extension MQTTPacket {
    /// A one-line description with secrets masked; see ``summary(showSecrets:)``.
    public var summary: String { summary(showSecrets: false) }

    /// A one-line description: type, topic, QoS, packet identifier, return codes, client identifier.
    ///
    /// - Parameter showSecrets: when false (the default for ``summary``), the CONNECT user name and password
    ///   and the AUTH authentication data are reported only as present; when true their values are shown.
    public func summary(showSecrets: Bool) -> String {
        if case .publish(let p) = self, let summary = Self.publishSummary(p) { return summary }
        return generalSummary(showSecrets: showSecrets)
    }

    /// ``summary(showSecrets:)`` without the PUBLISH fast path.
    func generalSummary(showSecrets: Bool) -> String {
        var summary = type.name
        func add(_ s: String) {
            summary += " "
            summary += s
        }
        func id(_ value: UInt16?) { if let value { add("id=\(value)") } }
        func code(_ c: MQTTReasonCode?) { if let c { add("rc=\(c)") } }
        func codes(_ cs: [MQTTReasonCode]) {
            if !cs.isEmpty { add("codes=[" + cs.map(\.description).joined(separator: ", ") + "]") }
        }
        func common(_ p: MQTTProperties) {
            if let reason = p.reasonString { add("reason=\(MQTTText.quoted(reason))") }
            let user = p.userProperties
            if !user.isEmpty { add("user-properties=\(user.count)") }
        }

        switch self {
        case .connect(let c):
            add("\(c.protocolName) \(c.version)")
            add("client-id=\(MQTTText.quoted(c.clientIdentifier))")
            if c.cleanSession { add(c.version == .v5 ? "clean-start" : "clean-session") }
            add("keep-alive=\(c.keepAlive)")
            if let user = c.username { add(showSecrets ? "username=\(MQTTText.quoted(user))" : "username=present") }
            if let password = c.password { add(showSecrets ? "password=\(MQTTText.printable(password))" : "password=<hidden>") }
            if let will = c.will {
                var w = "will=(topic=\(MQTTText.quoted(will.topic)) qos=\(will.qos)"
                if will.retain { w += " retain" }
                w += " payload=\(will.payload.length)B)"
                add(w)
            }
            if let expiry = c.properties.sessionExpiryInterval { add("session-expiry=\(expiry)") }
            common(c.properties)
        case .connAck(let a):
            if a.sessionPresent { add("session-present") }
            code(a.returnCode)
            if let assigned = a.properties.first(.assignedClientIdentifier)?.stringValue {
                add("assigned-client-id=\(MQTTText.quoted(assigned))")
            }
            if let expiry = a.properties.sessionExpiryInterval { add("session-expiry=\(expiry)") }
            common(a.properties)
        case .publish(let p):
            add("topic=\(MQTTText.quoted(p.topic))")
            switch p.topicSource {
            case .literal: break
            case .literalBoundToAlias(let a): add("alias=\(a)(bound)")
            case .resolvedFromAlias(let a): add("alias=\(a)(resolved)")
            case .unresolvedAlias(let a): add("alias=\(a)(unresolved)")
            }
            add("qos=\(p.qos)")
            id(p.packetIdentifier)
            if p.dup { add("dup") }
            if p.retain { add("retain") }
            add(
                p.payload.truncated
                    ? "payload=\(p.payload.length)B(kept \(p.payload.stored.count)B)" : "payload=\(p.payload.length)B")
            common(p.properties)
        case .pubAck(let r), .pubRec(let r), .pubRel(let r), .pubComp(let r):
            id(r.packetIdentifier)
            code(r.reasonCode)
            common(r.properties)
        case .subscribe(let s):
            id(s.packetIdentifier)
            add(
                "filters=["
                    + s.subscriptions.map { "\(MQTTText.quoted($0.topicFilter)) qos=\($0.qos)" }
                    .joined(separator: ", ") + "]")
            common(s.properties)
        case .subAck(let s):
            id(s.packetIdentifier)
            codes(s.returnCodes)
            common(s.properties)
        case .unsubscribe(let u):
            id(u.packetIdentifier)
            add("filters=[" + u.topicFilters.map(MQTTText.quoted).joined(separator: ", ") + "]")
            common(u.properties)
        case .unsubAck(let u):
            id(u.packetIdentifier)
            codes(u.reasonCodes)
            common(u.properties)
        case .pingReq, .pingResp:
            break
        case .disconnect(let d):
            code(d.reasonCode)
            common(d.properties)
        case .auth(let a):
            code(a.reasonCode)
            if let method = a.properties.authenticationMethod { add("method=\(MQTTText.quoted(method))") }
            if case .binary(let data)? = a.properties.first(.authenticationData)?.value {
                add(showSecrets ? "data=0x\(MQTTText.hex(bytes: data))" : "data=<hidden>")
            }
            common(a.properties)
        }
        return summary
    }

    /// The summary of a PUBLISH whose topic needs no escaping, with a literal topic and no reason string or user
    /// properties (every telemetry packet): the same text as the general path, written as bytes at once. One is made
    /// for every stored packet, and appending to a `String` piece by piece cost about 5,000 instructions a packet.
    static func publishSummary(_ p: MQTTPublish) -> String? {
        guard case .literal = p.topicSource,
            !p.properties.contains(where: { $0.identifier == .reasonString || $0.identifier == .userProperty })
        else { return nil }
        var topic = p.topic
        return topic.withUTF8 { topic -> String? in
            guard !topic.contains(where: MQTTText.escaped) else { return nil }
            // "PUBLISH topic=\"…\" qos=2 id=65535 dup retain payload=…B(kept …B)": the numbers take at most 20 digits each.
            return String(unsafeUninitializedCapacity: topic.count + 100) { out in
                var n = 0
                func put(_ s: StaticString) {
                    UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: out[n...]))
                        .copyMemory(from: UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
                    n += s.utf8CodeUnitCount
                }
                func put(_ value: Int) {  // never negative: lengths, counts, QoS, packet id
                    var width = 1
                    var rest = value
                    while rest >= 10 {
                        rest /= 10
                        width += 1
                    }
                    rest = value
                    for i in (n..<n + width).reversed() {
                        out[i] = UInt8(ascii: "0") + UInt8(rest % 10)
                        rest /= 10
                    }
                    n += width
                }
                put("PUBLISH topic=\"")
                UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: out[n...])).copyMemory(from: UnsafeRawBufferPointer(topic))
                n += topic.count
                put("\" qos=")
                put(Int(p.qos.rawValue))
                if let id = p.packetIdentifier {
                    put(" id=")
                    put(Int(id))
                }
                if p.dup { put(" dup") }
                if p.retain { put(" retain") }
                put(" payload=")
                put(p.payload.length)
                put("B")
                if p.payload.truncated {
                    put("(kept ")
                    put(p.payload.stored.count)
                    put("B)")
                }
                return n
            }
        }
    }
}

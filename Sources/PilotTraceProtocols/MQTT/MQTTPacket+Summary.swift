extension MQTTPacket {
    /// A one-line description with secrets masked; see ``summary(showSecrets:)``.
    public var summary: String { summary(showSecrets: false) }

    /// A one-line description: type, topic, QoS, packet identifier, return codes, client identifier.
    ///
    /// - Parameter showSecrets: when false (the default for ``summary``), the CONNECT user name and password
    ///   and the AUTH authentication data are reported only as present; when true their values are shown.
    public func summary(showSecrets: Bool) -> String {
        var parts: [String] = [type.name]
        func add(_ s: String) { parts.append(s) }
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
            add(p.payload.truncated
                ? "payload=\(p.payload.length)B(kept \(p.payload.stored.count)B)" : "payload=\(p.payload.length)B")
            common(p.properties)
        case .pubAck(let r), .pubRec(let r), .pubRel(let r), .pubComp(let r):
            id(r.packetIdentifier)
            code(r.reasonCode)
            common(r.properties)
        case .subscribe(let s):
            id(s.packetIdentifier)
            add("filters=[" + s.subscriptions.map { "\(MQTTText.quoted($0.topicFilter)) qos=\($0.qos)" }
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
        return parts.joined(separator: " ")
    }
}

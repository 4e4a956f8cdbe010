extension MQTTPacket {
    /// Parses one complete frame into a typed packet: the second decoding stage.
    ///
    /// - Parameters:
    ///   - frame: a complete frame from ``MQTTFrame/read(_:at:streamOffset:maxRemainingLength:)``.
    ///   - version: the connection's protocol version (a CONNECT declares its own and ignores this).
    ///   - maxStoredPayload: how many bytes of a PUBLISH payload, will payload or password to keep.
    ///   - topicAliases: the sender's topic-alias table, updated by MQTT 5.0 PUBLISH packets.
    /// - Returns: the packet.
    /// - Throws: ``MQTTError`` for malformed bytes, with the stream offset of the offending field.
    public static func parse(
        _ frame: MQTTFrame, version: MQTTVersion, maxStoredPayload: Int = 1 << 20,
        topicAliases: inout MQTTTopicAliases
    ) throws(MQTTError) -> MQTTPacket {
        let type = try frame.header.validate(version: version, streamOffset: frame.streamOffset)
        let range = frame.bodyRange
        var r = MQTTReader(
            frame.bytes, from: range.lowerBound, to: range.upperBound, base: frame.streamOffset - frame.start,
            packetOffset: frame.streamOffset)
        if type == .publish {
            let head = try MQTTPublishHeader.read(&r, flags: frame.header.flags, version: version)
            let payload = frame.bytes[r.index..<range.upperBound]
            return .publish(
                head.packet(
                    payload: MQTTPayload(stored: Array(payload.prefix(max(0, maxStoredPayload))), length: payload.count),
                    aliases: &topicAliases))
        }
        return try parseBody(type, &r, version: version, maxStoredPayload: maxStoredPayload)
    }

    /// Parses one complete frame with a fresh topic-alias table (aliases bound earlier on the connection are
    /// not known).
    public static func parse(
        _ frame: MQTTFrame, version: MQTTVersion, maxStoredPayload: Int = 1 << 20
    ) throws(MQTTError) -> MQTTPacket {
        var aliases = MQTTTopicAliases()
        return try parse(frame, version: version, maxStoredPayload: maxStoredPayload, topicAliases: &aliases)
    }

    /// Every type but PUBLISH, whose payload the stream decoder may consume incrementally.
    static func parseBody(
        _ type: MQTTPacketType, _ r: inout MQTTReader, version: MQTTVersion, maxStoredPayload: Int
    ) throws(MQTTError) -> MQTTPacket {
        switch type {
        case .connect:
            return .connect(try parseConnect(&r, maxStoredPayload: maxStoredPayload))
        case .connAck:
            return .connAck(try parseConnAck(&r, version: version))
        case .publish:
            preconditionFailure("PUBLISH is parsed by MQTTPublishHeader")
        case .pubAck, .pubRec, .pubRel, .pubComp:
            let response = try parsePublishResponse(&r, type: type, version: version)
            switch type {
            case .pubAck: return .pubAck(response)
            case .pubRec: return .pubRec(response)
            case .pubRel: return .pubRel(response)
            default: return .pubComp(response)
            }
        case .subscribe:
            return .subscribe(try parseSubscribe(&r, version: version))
        case .subAck:
            // MQTT 3.1.1 §3.9.2–3 / 5.0 §3.9.2–3: packet identifier, [properties], one code per filter.
            let id = try r.u16("Packet Identifier")
            let properties = try r.properties(version: version)
            var codes: [MQTTReasonCode] = []
            while !r.isAtEnd {
                let raw = try r.u8("return code")
                codes.append(version == .v5 ? .v5(raw, in: .subAck) : .subscribeReturnCode(raw))
            }
            return .subAck(MQTTSubAck(packetIdentifier: id, properties: properties, returnCodes: codes))
        case .unsubscribe:
            // MQTT 3.1.1 §3.10.3: at least one topic filter.
            let id = try r.u16("Packet Identifier")
            let properties = try r.properties(version: version)
            let payloadAt = r.offset
            var filters: [String] = []
            while !r.isAtEnd { filters.append(try r.string("Topic Filter")) }
            guard !filters.isEmpty else {
                throw r.error(.missingTopicFilter, at: payloadAt, "UNSUBSCRIBE without a topic filter (§3.10.3)")
            }
            return .unsubscribe(MQTTUnsubscribe(packetIdentifier: id, properties: properties, topicFilters: filters))
        case .unsubAck:
            // MQTT 3.1.1 §3.11: just the packet identifier; 5.0 §3.11.2–3 adds properties and reason codes.
            let id = try r.u16("Packet Identifier")
            var codes: [MQTTReasonCode] = []
            var properties = MQTTProperties()
            if version == .v5 {
                properties = try r.properties(version: version)
                while !r.isAtEnd { codes.append(.v5(try r.u8("reason code"), in: .unsubAck)) }
            }
            try r.expectEnd("UNSUBACK")
            return .unsubAck(MQTTUnsubAck(packetIdentifier: id, properties: properties, reasonCodes: codes))
        case .pingReq:
            try r.expectEnd("PINGREQ fixed header (§3.12)")
            return .pingReq
        case .pingResp:
            try r.expectEnd("PINGRESP fixed header (§3.13)")
            return .pingResp
        case .disconnect:
            guard version == .v5 else {
                try r.expectEnd("DISCONNECT fixed header (§3.14)")
                return .disconnect(MQTTDisconnect(reasonCode: nil, properties: MQTTProperties()))
            }
            let (code, properties) = try parseOptionalReason(&r, type: .disconnect)
            return .disconnect(MQTTDisconnect(reasonCode: code, properties: properties))
        case .auth:
            let (code, properties) = try parseOptionalReason(&r, type: .auth)
            return .auth(MQTTAuth(reasonCode: code, properties: properties))
        }
    }

    /// MQTT 3.1.1 §3.1.2–3.1.3, 5.0 §3.1.2–3.1.3.
    static func parseConnect(_ r: inout MQTTReader, maxStoredPayload: Int) throws(MQTTError) -> MQTTConnect {
        let nameAt = r.offset
        let name = try r.string("protocol name")
        let levelAt = r.offset
        let level = try r.u8("protocol level")
        // §3.1.2.1–2: MQIsdp/3 (MQTT 3.1), MQTT/4 (3.1.1), MQTT/5 (5.0).
        let version: MQTTVersion
        switch (name, level) {
        case ("MQIsdp", 3): version = .v3_1
        case ("MQTT", 4): version = .v3_1_1
        case ("MQTT", 5): version = .v5
        case ("MQIsdp", _), ("MQTT", _):
            throw r.error(.unknownProtocol, at: levelAt, "protocol \(name) with unknown level \(level) (§3.1.2.2)")
        default:
            throw r.error(.unknownProtocol, at: nameAt, "unknown protocol name \(MQTTText.quoted(name)) (§3.1.2.1)")
        }
        let flagsAt = r.offset
        let flags = try r.u8("Connect Flags")
        let willFlag = flags & 0x04 != 0
        let willQoSValue = (flags >> 3) & 0b11
        let willRetain = flags & 0x20 != 0
        if version >= .v3_1_1 && flags & 0x01 != 0 {
            // MQTT 3.1.1 §3.1.2.3: the reserved flag must be zero.
            throw r.error(.reservedBits, at: flagsAt, "CONNECT reserved flag (bit 0) is set (§3.1.2.3)")
        }
        guard let willQoS = MQTTQoS(rawValue: willQoSValue) else {
            throw r.error(.invalidQoS, at: flagsAt, "CONNECT Will QoS is 3 (§3.1.2.6)")
        }
        if version >= .v3_1_1 && !willFlag && (willQoSValue != 0 || willRetain) {
            // MQTT 3.1.1 §3.1.2.6–7: without a will, Will QoS and Will Retain must be 0.
            throw r.error(.invalidConnectFlags, at: flagsAt, "Will QoS or Will Retain set without the Will Flag (§3.1.2.6)")
        }
        let keepAlive = try r.u16("Keep Alive")
        let properties = try r.properties(version: version)
        // §3.1.3: Client Identifier, [Will Properties, Will Topic, Will Message], [User Name], [Password].
        let clientIdentifier = try r.string("Client Identifier")
        var will: MQTTWill?
        if willFlag {
            let willProperties = try r.properties(version: version)
            let topic = try r.string("Will Topic")
            let payload = try r.binary("Will Message", cap: maxStoredPayload)
            will = MQTTWill(qos: willQoS, retain: willRetain, properties: willProperties, topic: topic, payload: payload)
        }
        let username = try flags & 0x80 != 0 ? r.string("User Name") : nil
        let password = try flags & 0x40 != 0 ? r.binary("Password", cap: maxStoredPayload) : nil
        try r.expectEnd("CONNECT payload")
        return MQTTConnect(
            protocolName: name, version: version, flags: flags, cleanSession: flags & 0x02 != 0,
            keepAlive: keepAlive, properties: properties, clientIdentifier: clientIdentifier, will: will,
            username: username, password: password)
    }

    /// MQTT 3.1 §3.2 (first byte unused), 3.1.1 §3.2.2, 5.0 §3.2.2.
    static func parseConnAck(_ r: inout MQTTReader, version: MQTTVersion) throws(MQTTError) -> MQTTConnAck {
        let flagsAt = r.offset
        let flags = try r.u8("Connect Acknowledge Flags")
        if version >= .v3_1_1 && flags & 0xFE != 0 {
            // MQTT 3.1.1 §3.2.2.1: bits 7–1 are reserved and must be 0.
            throw r.error(.reservedBits, at: flagsAt, "CONNACK reserved flag bits are set (§3.2.2.1)")
        }
        let raw = try r.u8("return code")
        var properties = MQTTProperties()
        // MQTT 5.0 §3.2.2.3: properties follow; a missing Property Length is read as none.
        if version == .v5 && !r.isAtEnd { properties = try r.properties(version: version) }
        try r.expectEnd("CONNACK")
        return MQTTConnAck(
            sessionPresent: version >= .v3_1_1 && flags & 0x01 != 0,
            returnCode: version == .v5 ? .v5(raw, in: .connAck) : .connectReturnCode(raw),
            properties: properties)
    }

    /// MQTT 3.1.1 §3.4–3.7: a packet identifier only. MQTT 5.0 §3.4.2.1: then a reason code and properties,
    /// which may be omitted (Remaining Length 2 means Success and no properties; 3 means no properties).
    static func parsePublishResponse(
        _ r: inout MQTTReader, type: MQTTPacketType, version: MQTTVersion
    ) throws(MQTTError) -> MQTTPublishResponse {
        let id = try r.u16("Packet Identifier")
        var code: MQTTReasonCode?
        var properties = MQTTProperties()
        if version == .v5 {
            code = .v5(try r.isAtEnd ? 0 : r.u8("reason code"), in: type)
            if !r.isAtEnd { properties = try r.properties(version: version) }
        }
        try r.expectEnd(type.name)
        return MQTTPublishResponse(packetIdentifier: id, reasonCode: code, properties: properties)
    }

    /// MQTT 3.1.1 §3.8.2–3, 5.0 §3.8.2–3.
    static func parseSubscribe(_ r: inout MQTTReader, version: MQTTVersion) throws(MQTTError) -> MQTTSubscribe {
        let id = try r.u16("Packet Identifier")
        let properties = try r.properties(version: version)
        let payloadAt = r.offset
        var subscriptions: [MQTTSubscription] = []
        while !r.isAtEnd {
            let filter = try r.string("Topic Filter")
            let optionsAt = r.offset
            let options = try r.u8("subscription options")
            if version == .v5 {
                // MQTT 5.0 §3.8.3.1: bits 7–6 reserved; Retain Handling 3 is a protocol error.
                if options & 0xC0 != 0 {
                    throw r.error(.reservedBits, at: optionsAt, "subscription options bits 7–6 are set (§3.8.3.1)")
                }
                if (options >> 4) & 0b11 == 3 {
                    throw r.error(.invalidSubscriptionOptions, at: optionsAt, "Retain Handling is 3 (§3.8.3.1)")
                }
            } else if version == .v3_1_1 && options & 0xFC != 0 {
                // MQTT 3.1.1 §3.8.3.1: the upper six bits of the Requested QoS byte are reserved.
                throw r.error(.reservedBits, at: optionsAt, "Requested QoS reserved bits are set (§3.8.3.1)")
            }
            guard let qos = MQTTQoS(rawValue: options & 0b11) else {
                throw r.error(.invalidQoS, at: optionsAt, "requested QoS is 3 (§3.8.3.1)")
            }
            subscriptions.append(
                MQTTSubscription(
                    topicFilter: filter, qos: qos, noLocal: version == .v5 && options & 0x04 != 0,
                    retainAsPublished: version == .v5 && options & 0x08 != 0,
                    retainHandling: version == .v5 ? (options >> 4) & 0b11 : 0, options: options))
        }
        guard !subscriptions.isEmpty else {
            // MQTT 3.1.1 §3.8.3: the payload must contain at least one Topic Filter / QoS pair.
            throw r.error(.missingTopicFilter, at: payloadAt, "SUBSCRIBE without a topic filter (§3.8.3)")
        }
        return MQTTSubscribe(packetIdentifier: id, properties: properties, subscriptions: subscriptions)
    }

    /// MQTT 5.0 §3.14.2.1 / §3.15.2.1: DISCONNECT and AUTH may omit the reason code (meaning 0x00) and the
    /// properties.
    static func parseOptionalReason(
        _ r: inout MQTTReader, type: MQTTPacketType
    ) throws(MQTTError) -> (MQTTReasonCode, MQTTProperties) {
        let code = MQTTReasonCode.v5(try r.isAtEnd ? 0 : r.u8("reason code"), in: type)
        let properties = try r.isAtEnd ? MQTTProperties() : r.properties(version: .v5)
        try r.expectEnd(type.name)
        return (code, properties)
    }
}

/// The variable header of a PUBLISH (MQTT 3.1.1 §3.3.2, 5.0 §3.3.2), parsed before its payload so that a large
/// payload can be consumed incrementally.
struct MQTTPublishHeader {
    var dup: Bool
    var qos: MQTTQoS
    var retain: Bool
    var topic: String
    var packetIdentifier: UInt16?
    var properties: MQTTProperties

    /// Reads Topic Name, Packet Identifier (QoS 1 and 2 only, §3.3.2.2) and, for 5.0, properties.
    static func read(_ r: inout MQTTReader, flags: UInt8, version: MQTTVersion) throws(MQTTError) -> MQTTPublishHeader {
        // The fixed header was validated, so QoS is 0, 1 or 2.
        let qos = MQTTQoS(rawValue: (flags >> 1) & 0b11) ?? .atMostOnce
        let topic = try r.string("Topic Name")
        let id = try qos == .atMostOnce ? nil : r.u16("Packet Identifier")
        let properties = try r.properties(version: version)
        return MQTTPublishHeader(
            dup: flags & 0b1000 != 0, qos: qos, retain: flags & 0b0001 != 0, topic: topic, packetIdentifier: id,
            properties: properties)
    }

    /// Where the variable header ends, measured from its length fields without parsing it, so a stream decoder
    /// can wait for exactly the header before streaming the payload.
    ///
    /// - Parameters:
    ///   - bodyStart: index of the first byte after the fixed header.
    ///   - frameEnd: index one past the packet's last byte (may be beyond `bytes.count`).
    /// - Returns: the index the header ends at, capped at `frameEnd` (when a length overruns the packet, the
    ///   whole packet is needed to report it); nil when more bytes are needed to measure.
    static func measureEnd(
        _ bytes: [UInt8], bodyStart: Int, frameEnd: Int, qos: UInt8, version: MQTTVersion
    ) -> Int? {
        let available = bytes.count
        var p = bodyStart
        if p + 2 > frameEnd { return frameEnd }
        if p + 2 > available { return nil }
        p += 2 + (Int(bytes[p]) << 8 | Int(bytes[p + 1]))
        if qos != 0 { p += 2 }
        guard version == .v5 else { return min(p, frameEnd) }
        var length = 0
        for i in 0..<4 {
            if p >= frameEnd { return frameEnd }
            if p >= available { return nil }
            let b = bytes[p]
            p += 1
            length |= Int(b & 0x7F) << (7 * i)
            if b & 0x80 == 0 { return min(p + length, frameEnd) }
        }
        return min(p, frameEnd)  // a five-byte Property Length: the parser reports it from these four bytes
    }

    /// Builds the packet, resolving or binding the topic alias (MQTT 5.0 §3.3.2.3.4).
    func packet(payload: MQTTPayload, aliases: inout MQTTTopicAliases) -> MQTTPublish {
        let (resolved, source) = aliases.apply(topic: topic, alias: properties.topicAlias)
        return MQTTPublish(
            dup: dup, qos: qos, retain: retain, topic: resolved, topicSource: source,
            packetIdentifier: packetIdentifier, properties: properties, payload: payload)
    }
}

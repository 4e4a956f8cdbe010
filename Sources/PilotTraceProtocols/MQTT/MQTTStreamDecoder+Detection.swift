extension MQTTStreamDecoder {
    /// Content-based detection: whether a connection's first client bytes are an MQTT CONNECT.
    ///
    /// Checks MQTT 3.1.1 §3.1: first byte 0x10 (CONNECT, flags 0000, §2.2.2); a valid Remaining Length of at
    /// least the CONNECT variable header plus an empty Client Identifier; protocol name `MQTT` with level 4 or
    /// 5, or `MQIsdp` with level 3 (§3.1.2.1–2); for 3.1.1 and 5.0, a clear reserved Connect Flags bit
    /// (§3.1.2.3).
    /// - Parameter prefix: the first bytes of the client-to-server stream.
    /// - Returns: true or false, or nil when `prefix` is too short to tell.
    public static func looksLikeConnect(_ prefix: [UInt8]) -> Bool? {
        guard let first = prefix.first else { return nil }
        guard first == 0x10 else { return false }
        let header: MQTTFixedHeader?
        do {
            header = try MQTTFixedHeader.read(
                prefix, maxRemainingLength: MQTTFixedHeader.maximumEncodableRemainingLength)
        } catch {
            return false
        }
        guard let header else { return nil }
        let b = header.headerLength
        guard prefix.count >= b + 2 else { return nil }
        let nameLength = Int(prefix[b]) << 8 | Int(prefix[b + 1])
        let candidates: [(name: [UInt8], levels: [UInt8])] = [(Array("MQTT".utf8), [4, 5]), (Array("MQIsdp".utf8), [3])]
        guard let candidate = candidates.first(where: { $0.name.count == nameLength }) else { return false }
        // Name (2 + n), level, flags, keep alive (2), Client Identifier length (2).
        guard header.remainingLength >= nameLength + 8 else { return false }
        let nameStart = b + 2
        for i in 0..<nameLength {
            guard nameStart + i < prefix.count else { return nil }
            guard prefix[nameStart + i] == candidate.name[i] else { return false }
        }
        let levelAt = nameStart + nameLength
        guard levelAt < prefix.count else { return nil }
        let level = prefix[levelAt]
        guard candidate.levels.contains(level) else { return false }
        guard levelAt + 1 < prefix.count else { return nil }
        if level >= 4 && prefix[levelAt + 1] & 0x01 != 0 { return false }
        return true
    }

    /// Whether bytes from the middle of a connection parse as consecutive well-formed MQTT packets.
    ///
    /// Decodes from the first byte, trying MQTT 3.1.1, then 5.0, then 3.1; a trailing incomplete packet is
    /// allowed (the bytes may be cut anywhere), an error before `minimumPackets` packets is not.
    /// - Parameters:
    ///   - bytes: stream bytes starting at what should be a packet boundary.
    ///   - minimumPackets: complete packets required (at least 1).
    public static func plausibleStream(_ bytes: [UInt8], minimumPackets: Int) -> Bool {
        let needed = max(1, minimumPackets)
        for version in [MQTTVersion.v3_1_1, .v5, .v3_1] {
            var decoder = MQTTStreamDecoder(
                configuration: Configuration(defaultVersion: version, maxStoredPayload: 0, maxTopicAliasBytes: 0))
            decoder.feed(bytes)
            var count = 0
            while count < needed, let record = try? decoder.next() {
                _ = record
                count += 1
            }
            if count >= needed { return true }
        }
        return false
    }
}

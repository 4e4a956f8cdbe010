/// SHA-256 as specified by FIPS 180-4, and HMAC-SHA-256 (RFC 2104): pure Swift, for file digests and the lab's HS256
/// tokens (the project takes no crypto dependency).
/// SHA-256 (FIPS 180-4 §6.2), fed incrementally.
public struct SHA256: Sendable {
    /// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    /// FIPS 180-4 §5.3.3: the initial hash value.
    private var h: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]
    /// Bytes waiting for a complete 64-byte block.
    private var pending: [UInt8] = []
    /// The message length so far, in bytes.
    private var length: UInt64 = 0
    /// The message schedule, kept to avoid an allocation per block.
    private var w = [UInt32](repeating: 0, count: 64)

    public init() { pending.reserveCapacity(64) }

    public mutating func update<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8, Bytes.Index == Int {
        length &+= UInt64(bytes.count)
        var index = bytes.startIndex
        if !pending.isEmpty {
            let take = min(64 - pending.count, bytes.count)
            pending.append(contentsOf: bytes[index..<index + take])
            index += take
            guard pending.count == 64 else { return }
            let block = pending
            pending.removeAll(keepingCapacity: true)
            block.withUnsafeBufferPointer { compress($0) }
        }
        let whole = (bytes.endIndex - index) / 64 * 64
        if whole > 0 {
            let done = bytes[index..<index + whole].withContiguousStorageIfAvailable { buffer -> Bool in
                var offset = 0
                while offset < buffer.count {
                    compress(UnsafeBufferPointer(rebasing: buffer[offset..<offset + 64]))
                    offset += 64
                }
                return true
            }
            if done == nil {
                var start = index
                while start < index + whole {
                    Array(bytes[start..<start + 64]).withUnsafeBufferPointer { compress($0) }
                    start += 64
                }
            }
            index += whole
        }
        pending.append(contentsOf: bytes[index...])
    }

    /// FIPS 180-4 §5.1.1: pad with 0x80, zeros, and the message length in bits (big-endian, 64 bits).
    public mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        var tail: [UInt8] = [0x80]
        let used = (pending.count + 1) % 64
        tail += [UInt8](repeating: 0, count: used <= 56 ? 56 - used : 120 - used)
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        let savedLength = length
        update(tail)
        length = savedLength
        precondition(pending.isEmpty)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for word in h { out += [UInt8(word >> 24), UInt8((word >> 16) & 0xff), UInt8((word >> 8) & 0xff), UInt8(word & 0xff)] }
        return out
    }

    /// FIPS 180-4 §6.2.2: one 512-bit block.
    private mutating func compress(_ block: UnsafeBufferPointer<UInt8>) {
        let p = block.baseAddress!
        w.withUnsafeMutableBufferPointer { wb in
            h.withUnsafeMutableBufferPointer { hb in
                SHA256.k.withUnsafeBufferPointer { kb in
                    let w = wb.baseAddress!, h = hb.baseAddress!, k = kb.baseAddress!
                    for t in 0..<16 {
                        w[t] = UInt32(p[t &* 4]) << 24 | UInt32(p[t &* 4 &+ 1]) << 16
                            | UInt32(p[t &* 4 &+ 2]) << 8 | UInt32(p[t &* 4 &+ 3])
                    }
                    for t in 16..<64 {
                        let s0 = w[t &- 15].rotatedRight(7) ^ w[t &- 15].rotatedRight(18) ^ (w[t &- 15] >> 3)
                        let s1 = w[t &- 2].rotatedRight(17) ^ w[t &- 2].rotatedRight(19) ^ (w[t &- 2] >> 10)
                        w[t] = w[t &- 16] &+ s0 &+ w[t &- 7] &+ s1
                    }
                    var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
                    for t in 0..<64 {
                        let s1 = e.rotatedRight(6) ^ e.rotatedRight(11) ^ e.rotatedRight(25)
                        let ch = (e & f) ^ (~e & g)
                        let t1 = hh &+ s1 &+ ch &+ k[t] &+ w[t]
                        let s0 = a.rotatedRight(2) ^ a.rotatedRight(13) ^ a.rotatedRight(22)
                        let maj = (a & b) ^ (a & c) ^ (b & c)
                        let t2 = s0 &+ maj
                        hh = g; g = f; f = e; e = d &+ t1
                        d = c; c = b; b = a; a = t1 &+ t2
                    }
                    h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d
                    h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
                }
            }
        }
    }
}

/// HMAC-SHA-256 (RFC 2104, FIPS 198-1).
public enum HMACSHA256 {
    /// The 32-byte authentication code of `message` under `key`.
    public static func authenticationCode(for message: some Collection<UInt8>, key: some Collection<UInt8>) -> [UInt8] {
        var k = Array(key)
        if k.count > 64 {
            var h = SHA256()
            h.update(k)
            k = h.finalize()
        }
        k += [UInt8](repeating: 0, count: 64 - k.count)
        var inner = SHA256()
        inner.update(k.map { $0 ^ 0x36 })
        inner.update(Array(message))
        var outer = SHA256()
        outer.update(k.map { $0 ^ 0x5c })
        outer.update(inner.finalize())
        return outer.finalize()
    }
}

extension UInt32 {
    @inline(__always) fileprivate func rotatedRight(_ n: UInt32) -> UInt32 { (self >> n) | (self << (32 - n)) }
}

import CZlib
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceProtocols

/// Helpers for the HTTP and WebSocket decoder tests (namespaced so as not to clash with other test files).
enum HTTPTestSupport {
    /// The shared seeded generator (PilotTraceTestSupport).
    typealias SplitMix64 = PilotTraceTestSupport.SplitMix64

    /// One input to a connection decoder.
    enum Step {
        case data(Direction, [UInt8])
        case gap(Direction, Int)
        case end(Direction)
    }

    /// How data steps are cut into feeds.
    enum Split: CustomStringConvertible {
        case whole
        case byteByByte
        case random(seed: UInt64)

        var description: String {
            switch self {
            case .whole: "whole"
            case .byteByByte: "byte by byte"
            case .random(let seed): "random splits (seed \(seed))"
            }
        }
    }

    static let splits: [Split] = [.whole, .byteByByte] + (1...6).map { .random(seed: UInt64($0) * 7919) }

    /// The capture time given to every byte of step `k` (so that any split gives the same times).
    static func time(_ k: Int) -> Timestamp { Timestamp(seconds: 1_700_000_000 + Int64(k), nanoseconds: 0) }

    static func pieces(_ bytes: [UInt8], _ split: Split, _ rng: inout SplitMix64) -> [[UInt8]] {
        switch split {
        case .whole: return [bytes]
        case .byteByByte: return bytes.map { [$0] }
        case .random:
            var out: [[UInt8]] = []
            var i = 0
            while i < bytes.count {
                let n = Int.random(in: 1...max(1, min(bytes.count - i, Int.random(in: 1...40, using: &rng))), using: &rng)
                out.append(Array(bytes[i..<(i + n)]))
                i += n
            }
            return out
        }
    }

    /// Runs a script through a fresh decoder, draining after every call.
    static func run(_ steps: [Step], split: Split, configuration: HTTPDecoderConfiguration = .init()) -> [HTTPConnectionEvent] {
        var decoder = HTTPConnectionDecoder(configuration: configuration)
        var rng = SplitMix64(seed: { if case .random(let s) = split { s } else { 1 } }())
        var events: [HTTPConnectionEvent] = []
        for (k, step) in steps.enumerated() {
            switch step {
            case .data(let d, let bytes):
                for piece in pieces(bytes, split, &rng) {
                    decoder.feed(d, piece, at: time(k))
                    events += decoder.drainEvents()
                }
            case .gap(let d, let n):
                decoder.gap(d, length: n, at: time(k))
            case .end(let d):
                decoder.end(d, at: time(k))
            }
            events += decoder.drainEvents()
        }
        return events
    }

    /// Runs the script whole, byte by byte and in random splits, expects identical events, returns them.
    static func decode(
        _ steps: [Step], configuration: HTTPDecoderConfiguration = .init(), sourceLocation: SourceLocation = #_sourceLocation
    ) -> [HTTPConnectionEvent] {
        let reference = run(steps, split: .whole, configuration: configuration)
        for split in splits.dropFirst() {
            let other = run(steps, split: split, configuration: configuration)
            if other != reference {
                Issue.record(Comment(rawValue: difference(reference, other, split)), sourceLocation: sourceLocation)
            }
        }
        return reference
    }

    /// A short description of where two event lists first differ.
    static func difference<E: Equatable>(_ a: [E], _ b: [E], _ split: Split) -> String {
        let k = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
        func at(_ list: [E]) -> String { k < list.count ? String(String(describing: list[k]).prefix(600)) : "nothing" }
        return "fed \(split): \(b.count) events instead of \(a.count); event \(k) is\n  \(at(b))\ninstead of\n  \(at(a))"
    }

    static func requests(_ events: [HTTPConnectionEvent]) -> [HTTPRequest] {
        events.compactMap { if case .request(let r) = $0 { r } else { nil } }
    }

    static func responses(_ events: [HTTPConnectionEvent]) -> [HTTPResponse] {
        events.compactMap { if case .response(let r) = $0 { r } else { nil } }
    }

    static func errors(_ events: [HTTPConnectionEvent]) -> [HTTPDecodingError] {
        events.compactMap { if case .error(let e) = $0 { e } else { nil } }
    }

    static func webSocketMessages(_ events: [HTTPConnectionEvent]) -> [WebSocketMessage] {
        events.compactMap { if case .webSocket(let m) = $0 { m } else { nil } }
    }

    // MARK: - WebSocket

    /// Runs bytes through a frame decoder in the given split.
    static func runWebSocket(
        _ bytes: [UInt8], split: Split, configuration: WebSocketFrameDecoder.Configuration = .init(), direction: Direction = .toClient
    ) -> [WebSocketEvent] {
        var decoder = WebSocketFrameDecoder(direction: direction, configuration: configuration)
        var rng = SplitMix64(seed: { if case .random(let s) = split { s } else { 1 } }())
        var events: [WebSocketEvent] = []
        for piece in pieces(bytes, split, &rng) {
            decoder.feed(piece, at: time(0))
            events += decoder.drainEvents()
        }
        decoder.end(at: time(1))
        return events + decoder.drainEvents()
    }

    static func decodeWebSocket(
        _ bytes: [UInt8], configuration: WebSocketFrameDecoder.Configuration = .init(), direction: Direction = .toClient,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [WebSocketEvent] {
        let reference = runWebSocket(bytes, split: .whole, configuration: configuration, direction: direction)
        for split in splits.dropFirst() {
            let other = runWebSocket(bytes, split: split, configuration: configuration, direction: direction)
            if other != reference {
                Issue.record(Comment(rawValue: difference(reference, other, split)), sourceLocation: sourceLocation)
            }
        }
        return reference
    }

    /// One RFC 6455 frame, with the shortest length encoding unless `lengthBytes` (0, 2 or 8) forces one.
    static func frame(
        fin: Bool = true, rsv: UInt8 = 0, opcode: UInt8, payload: [UInt8], mask: [UInt8]? = nil, lengthBytes: Int? = nil
    ) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        let n = payload.count
        let ext = lengthBytes ?? (n < 126 ? 0 : n <= 0xFFFF ? 2 : 8)
        switch ext {
        case 0: out.append(maskBit | UInt8(n))
        case 2: out.append(maskBit | 126); out += [UInt8(n >> 8), UInt8(n & 0xFF)]
        default: out.append(maskBit | 127); out += (0..<8).reversed().map { UInt8((UInt64(n) >> (8 * UInt64($0))) & 0xFF) }
        }
        if let mask {
            out += mask
            out += payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
        } else {
            out += payload
        }
        return out
    }

    static func wsMessages(_ events: [WebSocketEvent]) -> [WebSocketMessage] {
        events.compactMap { if case .message(let m) = $0 { m } else { nil } }
    }

    static func wsErrors(_ events: [WebSocketEvent]) -> [WebSocketDecodingError] {
        events.compactMap { if case .error(let e) = $0 { e } else { nil } }
    }

    // MARK: - zlib

    /// Compresses with deflateInit2: windowBits 31 gives gzip, 15 zlib, -15 raw deflate.
    static func deflate(_ input: [UInt8], windowBits: Int32) -> [UInt8] {
        var stream = z_stream()
        let rc = deflateInit2_(
            &stream, Z_BEST_COMPRESSION, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
            Int32(MemoryLayout<z_stream>.size))
        precondition(rc == Z_OK)
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
        var input = input
        let produced = input.withUnsafeMutableBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                stream.next_in = inp.baseAddress
                stream.avail_in = uInt(inp.count)
                stream.next_out = o.baseAddress
                stream.avail_out = uInt(o.count)
                let r = CZlib.deflate(&stream, Z_FINISH)
                precondition(r == Z_STREAM_END)
                return o.count - Int(stream.avail_out)
            }
        }
        return Array(out[0..<produced])
    }

    /// zlib-wrapped deflate with compress2.
    static func compress(_ input: [UInt8]) -> [UInt8] {
        var length = compressBound(uLong(input.count))
        var out = [UInt8](repeating: 0, count: Int(length))
        let rc = compress2(&out, &length, input, uLong(input.count), Z_BEST_COMPRESSION)
        precondition(rc == Z_OK)
        return Array(out[0..<Int(length)])
    }

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
}

import CZlib

/// zlib inflation for Content-Encoding (RFC 9110 §8.4.1) and permessage-deflate, bounded in output.
enum HTTPInflate {
    enum Format {
        /// RFC 1952 (gzip, x-gzip); concatenated members are inflated one after another.
        case gzip
        /// RFC 1950 (the zlib wrapper that `deflate` names).
        case zlib
        /// RFC 1951 without a wrapper (what many servers send as `deflate`, and permessage-deflate).
        case raw

        var windowBits: Int32 {
            switch self {
            case .gzip: 16 + 15
            case .zlib: 15
            case .raw: -15
            }
        }
    }

    enum Outcome: Equatable {
        /// The compressed stream ended properly.
        case complete
        /// The output reached the cap; inflation stopped there.
        case outputCapped
        /// The input ran out before the compressed stream ended.
        case inputEnded
        /// The input is not valid for the format.
        case failed(String)
    }

    /// Inflates `input` in `format`, producing at most `maxOutput` bytes.
    static func inflate(_ input: [UInt8], format: Format, maxOutput: Int) -> (output: [UInt8], outcome: Outcome) {
        var stream = z_stream()
        guard pilottrace_inflateInit2(&stream, format.windowBits) == Z_OK else {
            return ([], .failed("zlib could not be initialised"))
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        let chunkSize = 16 * 1024
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        return input.withUnsafeBufferPointer { inp -> ([UInt8], Outcome) in
            stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
            stream.avail_in = UInt32(inp.count)
            while true {
                let rc = chunk.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunkSize - Int(stream.avail_out)
                if produced > 0 {
                    let room = maxOutput - output.count
                    output.append(contentsOf: chunk[0..<min(produced, room)])
                    if produced > room { return (output, .outputCapped) }
                }
                switch rc {
                case Z_STREAM_END:
                    // RFC 1952 §2.2: a gzip file is a series of members.
                    if format == .gzip, stream.avail_in >= 2, stream.next_in[0] == 0x1F, stream.next_in[1] == 0x8B {
                        guard inflateReset(&stream) == Z_OK else { return (output, .failed("zlib reset failed")) }
                        continue
                    }
                    return (output, .complete)
                case Z_OK:
                    // Input used up and the output not full: the compressed stream needs more input.
                    if stream.avail_in == 0 && produced < chunkSize { return (output, .inputEnded) }
                case Z_BUF_ERROR:
                    return (output, .inputEnded)
                case Z_NEED_DICT:
                    return (output, .failed("a preset dictionary is required"))
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                    return (output, .failed(message))
                }
            }
        }
    }

    /// Undoes the content codings of a body (RFC 9110 §8.4: applied in the order listed, so undone in reverse).
    /// - Returns: the decoded bytes (nil on failure), whether they stop short of the real content, and why
    ///   decoding failed.
    static func decode(
        _ raw: [UInt8], codings: [String], rawTruncated: Bool, maxOutput: Int
    ) -> (decoded: [UInt8]?, truncated: Bool, failure: String?) {
        var data = raw
        var truncated = rawTruncated
        for coding in codings.reversed() {
            let formats: [Format]
            switch coding {
            case "gzip", "x-gzip": formats = [.gzip]
            // RFC 9110 §8.4.1.2 says zlib-wrapped; servers often send raw deflate, so try both.
            case "deflate": formats = [.zlib, .raw]
            default: return (nil, false, "unsupported content coding '\(coding)'")
            }
            var lastFailure = ""
            var succeeded = false
            for format in formats {
                let (out, outcome) = inflate(data, format: format, maxOutput: maxOutput)
                switch outcome {
                case .complete:
                    data = out
                    succeeded = true
                case .outputCapped:
                    data = out
                    truncated = true
                    succeeded = true
                case .inputEnded:
                    if truncated {
                        data = out
                        succeeded = true
                    } else {
                        lastFailure = "\(coding) data ends before the end of the compressed stream"
                    }
                case .failed(let why):
                    lastFailure = "\(coding): \(why)"
                }
                if succeeded { break }
            }
            guard succeeded else { return (nil, false, lastFailure) }
        }
        return (data, truncated, nil)
    }
}

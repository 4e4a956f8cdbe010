// `scripts/fuzz` compiles Sources/PilotTraceProxy/MQTTAddressRewriter.swift into the fuzzer itself (linking the
// proxy's module would bring SwiftNIO and BoringSSL into the sanitized build), so there the types are this module's.
#if !FUZZ_REWRITER_INLINE
import PilotTraceProxy
#endif

/// One input of the `address-rewriter` fuzz target: the bytes as a JSON response body through
/// ``MQTTAddressRewriter``, with the proxy's rewrite (parse the address, point it at the proxy's listener).
///
/// Besides not crashing: a body with nothing replaced comes back unchanged, and a rewritten body is still JSON
/// in which the rewriter finds the same addresses, now holding the new values, so Pilot 2 reads exactly what the
/// proxy meant. Returns the number of addresses replaced. Shared by `Fuzz/FuzzAddressRewriter.swift` (libFuzzer)
/// and the replay of `Fuzz/regressions/address-rewriter/`.
public enum AddressRewriterFuzzTarget {
    @discardableResult
    public static func run(_ input: [UInt8]) -> Int {
        // The last byte picks the listener's TLS, so both scheme mappings are explored.
        let tls = input.last.map { $0 & 1 == 1 } ?? false
        var expected: [String] = []
        let result = MQTTAddressRewriter.rewrite(input) { original in
            let new = BrokerAddress(original)?.through(host: "127.0.0.1", port: 18883, tls: tls).description
            expected.append(new ?? original)
            return new
        }
        guard !result.replacements.isEmpty else {
            precondition(result.body == input, "nothing was replaced, yet the body changed")
            return 0
        }
        var found: [String] = []
        _ = MQTTAddressRewriter.rewrite(result.body) { value in
            found.append(value)
            return nil
        }
        precondition(found == expected, "the rewritten body holds \(found), not \(expected)")
        return result.replacements.count
    }
}

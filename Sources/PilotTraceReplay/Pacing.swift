/// How fast a replay goes: the recorded timing, scaled, or as fast as the replies allow.
public enum Pacing: Sendable, Hashable, CustomStringConvertible {
    case original
    /// `N×` faster than recorded (`2x` halves every wait; `0.5x` doubles them).
    case scaled(Double)
    /// No waits between steps; awaited replies are still awaited.
    case max

    /// Parses `original`, `max`, `N×`, `Nx` or `N`.
    public init?(_ text: String) {
        switch text.lowercased() {
        case "original", "1x", "1×": self = .original
        case "max", "fast": self = .max
        default:
            var t = Substring(text.lowercased())
            if t.hasSuffix("x") { t = t.dropLast() } else if t.hasSuffix("×") { t = t.dropLast() }
            guard let f = Double(t), f > 0, f.isFinite else { return nil }
            self = .scaled(f)
        }
    }

    /// Seconds after the replay's start that a step recorded `at` seconds into the session goes out; nil for `max`.
    public func due(_ at: Double) -> Double? {
        switch self {
        case .original: at
        case .scaled(let f): at / f
        case .max: nil
        }
    }

    public var description: String {
        switch self {
        case .original: "original"
        case .scaled(let f): "\(f)×"
        case .max: "max"
        }
    }
}

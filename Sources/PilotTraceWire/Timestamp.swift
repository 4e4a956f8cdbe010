/// A capture timestamp: nanoseconds since the Unix epoch.
///
/// Time in pilottrace comes only from capture timestamps; nothing in the pure core reads a clock.
public struct Timestamp: Hashable, Comparable, Sendable {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public init(seconds: Int64, nanoseconds: Int64) {
        self.nanoseconds = seconds &* 1_000_000_000 &+ nanoseconds
    }

    public static let zero = Timestamp(nanoseconds: 0)

    public var seconds: Double { Double(nanoseconds) / 1e9 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// The duration from `earlier` to `self`, in seconds.
    public func seconds(since earlier: Timestamp) -> Double {
        Double(nanoseconds &- earlier.nanoseconds) / 1e9
    }

    public func adding(seconds: Double) -> Timestamp {
        Timestamp(nanoseconds: nanoseconds &+ Int64(seconds * 1e9))
    }

    /// Seconds since the epoch to the microsecond, as ``iso8601`` shows them: the numeric twin of a JSON time.
    public var epochSeconds: Double {
        var micros = nanoseconds / 1000
        if nanoseconds % 1000 < 0 { micros -= 1 }  // floor, without overflowing at the ends of the range
        return Double(micros) / 1e6
    }

    /// ISO 8601 (RFC 3339) in UTC with microseconds, e.g. `2026-11-27T08:30:00.123456Z`.
    public var iso8601: String {
        // Floor division, without overflowing at the ends of the range (a tracker's clock starts at `.min`).
        var secs = nanoseconds / 1_000_000_000, frac = nanoseconds % 1_000_000_000
        if frac < 0 { (secs, frac) = (secs - 1, frac + 1_000_000_000) }
        let (y, mo, d, h, mi, s) = Timestamp.civil(fromUnixSeconds: secs)
        func pad(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return s.count >= w ? s : String(repeating: "0", count: w - s.count) + s
        }
        return "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(frac / 1000, 6))Z"
    }

    /// Howard Hinnant's days-from-civil inverse; valid for the whole Int64 range we care about.
    static func civil(fromUnixSeconds t: Int64) -> (Int64, Int64, Int64, Int64, Int64, Int64) {
        var days = t / 86_400
        var rem = t % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
    }
}

extension Timestamp: CustomStringConvertible {
    public var description: String { iso8601 }
}

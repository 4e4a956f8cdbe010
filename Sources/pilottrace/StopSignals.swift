import Dispatch
import Foundation

/// Ctrl-C (SIGINT) and SIGTERM, caught for a command that stops cleanly: their default action is ignored and
/// `handler` runs on a global queue instead, until ``cancel()``.
struct StopSignals {
    private let sources: [DispatchSourceSignal]

    init(_ handler: @escaping () -> Void) {
        self.init { (_: Int32) in handler() }
    }

    /// `handler` is told which signal came (SIGINT or SIGTERM).
    init(_ handler: @escaping (Int32) -> Void) {
        sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { handler(sig) }
            source.resume()
            return source
        }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}

import Dispatch
import Foundation

/// Ctrl-C (SIGINT) and SIGTERM, caught for a command that stops cleanly: their default action is ignored and
/// `handler` runs on a global queue instead, until ``cancel()``.
struct StopSignals {
    private let sources: [DispatchSourceSignal]

    init(_ handler: @escaping () -> Void) {
        sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}

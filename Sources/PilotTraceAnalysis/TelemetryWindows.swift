import PilotTraceFlow
import PilotTraceProtocols
import PilotTraceStore
import PilotTraceWire

/// Folds periodic telemetry into the store's telemetry windows (``MQTTPacketRow``, "Telemetry windows"): one row per
/// connection, direction, topic, QoS and 10-second window instead of one per PUBLISH, with the PUBACKs that
/// acknowledge them counted in it.
///
/// Folded: a PUBLISH on `thing/product/{sn}/osd` or `…/state` (``DJITopic/isTelemetry(_:)``) of QoS 0 or 1 with
/// neither RETAIN nor DUP set (a retained or resent telemetry message is unusual enough to keep whole), and a PUBACK
/// reporting success for one of them while its window is open. Everything else is stored packet by packet.
///
/// A window's row is its first PUBLISH's, stored as the window opens (the `row` given to ``fold(_:connection:direction:time:row:)``);
/// an open window keeps only its counts and frame list. It stays open until the capture clock passes its end by
/// ``grace`` (late PUBACKs still find it), its connection closes, a PUBLISH for it comes from another file of a rotated
/// capture, or the run flushes; then what completes its row is ready (``takeReady()``). At most the windows of the last
/// 15 seconds of each connection are held.
struct TelemetryWindows {
    /// Seconds a window stays open after its end, for PUBACKs still on their way.
    static let grace = 5.0

    struct AckKey: Hashable {
        var connection: ConnectionID
        /// The direction of the PUBLISH (the PUBACK goes the other way).
        var direction: Direction
        var packetID: UInt16
    }

    /// An open window (a class: updated in place wherever it is listed).
    final class Window {
        let connection: ConnectionID
        let direction: Direction
        let topic: String
        let qos: UInt8
        let index: Int64
        let closesAt: Double
        /// The row's id, capture file, time and last frame as stored when the window opened.
        let id: Int64
        let captureOrdinal: Int?
        let start: Double
        let firstLastFrame: Int?
        var count = 0
        var lastTime: Double
        var lastFrame: Int?
        var payloadBytes: Int
        var acknowledged = 0
        /// The last frame of each PUBLISH, as the `frames` column's text.
        var frames: [UInt8] = []
        /// Whether every PUBLISH's frame is known (else the list is left out).
        var framesKnown = true
        /// Packet identifiers of its PUBLISHes not acknowledged yet.
        var awaiting: [UInt16] = []
        var isOpen = true

        init(connection: ConnectionID, direction: Direction, topic: String, qos: UInt8, index: Int64, row: MQTTPacketRow, time: Double) {
            (self.connection, self.direction, self.topic, self.qos, self.index) = (connection, direction, topic, qos, index)
            (id, captureOrdinal, start, firstLastFrame) = (row.id, row.captureOrdinal, row.time, row.lastFrame)
            closesAt = Double(index + 1) * MQTTPacketRow.telemetryWindow + TelemetryWindows.grace
            lastTime = time
            payloadBytes = 0
        }
    }

    /// Each connection's open windows (a handful: one per telemetry topic and direction, two around a window's end).
    private var byConnection: [ConnectionID: [Window]] = [:]
    /// Windows in the order they opened (closing times nearly in order); closed ones are skipped as they come up.
    private var order = ExpiringQueue<Window>()
    private var awaitingAck: [AckKey: Window] = [:]
    private var ready: [MQTTPacketRow.WindowClose] = []

    /// Whether closed windows wait to be taken.
    var hasReady: Bool { !ready.isEmpty }

    /// Folds a telemetry PUBLISH or its PUBACK into its window; returns the window row's id (the message's reference),
    /// or nil when the packet is not folded and needs a row of its own.
    ///
    /// - Parameters:
    ///   - row: Builds the packet's row with an id and stores it: called for the PUBLISH that opens a window.
    mutating func fold(
        _ record: MQTTPacketRecord, connection: ConnectionID, direction: Direction, time: Double,
        row: () throws -> MQTTPacketRow
    ) rethrows -> Int64? {
        switch record.packet {
        case .publish(let p):
            guard p.qos.rawValue < 2, !p.retain, !p.dup, DJITopic.isTelemetry(p.topic) else { return nil }
            let place = AnalysisRun.place(record.frames)
            let qos = p.qos.rawValue
            let index = Int64((time / MQTTPacketRow.telemetryWindow).rounded(.down))
            var window = byConnection[connection]?.first {
                $0.index == index && $0.direction == direction && $0.qos == qos && $0.topic == p.topic
            }
            if let w = window, w.captureOrdinal != place.capture {
                close(w)  // from another file of a rotated capture: a window keeps to one file
                window = nil
            }
            let w: Window
            if let window {
                w = window
            } else {
                w = Window(connection: connection, direction: direction, topic: p.topic, qos: qos, index: index, row: try row(), time: time)
                order.append(w)
                byConnection[connection, default: []].append(w)
            }
            w.count += 1
            w.lastTime = time
            w.lastFrame = place.last
            w.payloadBytes += p.payload.length
            if let frame = place.last ?? place.first {
                if !w.frames.isEmpty { w.frames.append(UInt8(ascii: ",")) }
                Self.appendNumber(frame, to: &w.frames)
            } else {
                w.framesKnown = false
            }
            if let id = p.packetIdentifier {
                awaitingAck[AckKey(connection: connection, direction: direction, packetID: id)] = w
                w.awaiting.append(id)
            }
            return w.id
        case .pubAck(let ack):
            guard ack.reasonCode?.isSuccess ?? true else { return nil }
            let key = AckKey(connection: connection, direction: direction.reversed, packetID: ack.packetIdentifier)
            guard let w = awaitingAck.removeValue(forKey: key), w.isOpen else { return nil }
            w.acknowledged += 1
            if let i = w.awaiting.firstIndex(of: ack.packetIdentifier) { w.awaiting.remove(at: i) }
            return w.id
        default:
            return nil
        }
    }

    /// Closes the windows that ended more than ``grace`` seconds before `time`.
    mutating func closeDue(at time: Double) {
        var due: [Window] = []
        order.expire(while: { !$0.isOpen || $0.closesAt <= time }) { due.append($0) }
        for w in due { close(w) }
    }

    /// Closes a connection's windows (it closed).
    mutating func close(connection: ConnectionID) {
        for w in byConnection[connection] ?? [] { close(w) }
    }

    /// Closes every window.
    mutating func closeAll() {
        var all: [Window] = []
        order.expireAll { all.append($0) }
        for w in all { close(w) }
    }

    /// What completes the rows of the windows closed since the last call, in the order they closed.
    mutating func takeReady() -> [MQTTPacketRow.WindowClose] {
        defer { ready = [] }
        return ready
    }

    private mutating func close(_ w: Window) {
        guard w.isOpen else { return }
        w.isOpen = false
        if var list = byConnection.removeValue(forKey: w.connection) {
            list.removeAll { $0 === w }
            if !list.isEmpty { byConnection[w.connection] = list }
        }
        for id in w.awaiting {
            let key = AckKey(connection: w.connection, direction: w.direction, packetID: id)
            if awaitingAck[key] === w { awaitingAck[key] = nil }
        }
        ready.append(
            MQTTPacketRow.WindowClose(
                id: w.id, packetCount: w.count, lastTime: w.lastTime,
                lastFrame: w.captureOrdinal != nil ? w.lastFrame : w.firstLastFrame, totalPayloadLength: w.payloadBytes,
                acknowledged: w.qos == 1 ? w.acknowledged : nil,
                // (Frames not known — a capture without frame numbers — leave the list NULL, as a packet's frames are.)
                frames: w.framesKnown ? String(decoding: w.frames, as: UTF8.self) : nil,
                summarySuffix: w.count > 1 ? " ×\(w.count) in \(Self.seconds(w.lastTime - w.start)) s" : ""))
    }

    /// Appends `n`'s decimal digits.
    static func appendNumber(_ n: Int, to out: inout [UInt8]) {
        let n = max(0, n)
        var divisor = 1
        while divisor <= n / 10 { divisor *= 10 }
        repeat {
            out.append(UInt8(ascii: "0") + UInt8((n / divisor) % 10))
            divisor /= 10
        } while divisor > 0
    }

    /// Seconds with one decimal (`8.0`).
    static func seconds(_ s: Double) -> String {
        let tenths = Int((s * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

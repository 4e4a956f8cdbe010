import PilotTraceWire

/// Where a connection's ``RecordingHandler`` reports what it saw: the ``TrafficRecorder`` of the proxy and of the
/// replay, which turns the reports into synthesised TCP frames (``TCPFrameSynthesizer``) for the live analysis.
///
/// Every event loop may call in, so a conformer orders the calls itself (a lock).
public protocol TrafficRecording: AnyObject, Sendable {
    /// A connection from `client` to `server` opened (its handshake is recorded now). Returns its handle.
    func open(client: Endpoint, server: Endpoint) -> Int
    /// `bytes` went over the connection in `direction`.
    func data(_ id: Int, _ bytes: [UInt8], from direction: Direction)
    /// The side that sends in `direction` half-closed (FIN).
    func fin(_ id: Int, from direction: Direction)
    /// The side that sends in `direction` reset the connection (RST).
    func rst(_ id: Int, from direction: Direction)
    /// The connection is gone: whatever half is still open closes (the server's FIN first when `serverFirst`).
    func close(_ id: Int, serverFirst: Bool)
}

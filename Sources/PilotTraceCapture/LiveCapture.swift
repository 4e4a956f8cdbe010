import CPcap
import Foundation
import PilotTraceWire

/// Why live capture could not start or stopped.
public struct LiveCaptureError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

/// Captures frames from an interface with libpcap (memory-mapped blocks or immediate mode, nanosecond timestamps where
/// the platform has them), non-blocking with poll(2).
public final class LiveCapture {
    let handle: OpaquePointer
    /// Whether libpcap delivers nanoseconds in `tv_usec` (PCAP_TSTAMP_PRECISION_NANO).
    let nanosecond: Bool
    public let interface: String
    public let linkType: LinkType
    public private(set) var frames = 0
    public private(set) var bytes = 0

    /// Opens `interface`; the BPF `filter` is compiled and checked before anything is captured.
    ///
    /// - Parameter bufferSize: The kernel buffer in bytes. In immediate mode libpcap uses fixed, MTU-sized slots
    ///   (TPACKET_V2), so on loopback (MTU 64 KiB) 32 MiB holds only about 500 frames: a burst of 50 devices
    ///   logging in at once overflowed it in the load test.
    /// - Parameter immediate: Deliver each frame as it arrives (TPACKET_V2: one MTU-sized slot per frame). Otherwise
    ///   libpcap packs frames into blocks handed over when full or after 100 ms (TPACKET_V3): far more frames fit
    ///   in the same buffer, at up to 100 ms of latency, which a once-a-second live refresh never notices.
    public init(interface: String, filter: String?, snaplen: Int32 = 262_144, bufferSize: Int32 = 32 << 20, immediate: Bool = false) throws {
        self.interface = interface
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_create(interface, &errbuf) else {
            throw LiveCaptureError(message: "\(interface): \(String(cString: errbuf))")
        }
        handle = h
        pcap_set_snaplen(h, snaplen)
        pcap_set_promisc(h, 0)
        pcap_set_timeout(h, 100)
        pcap_set_immediate_mode(h, immediate ? 1 : 0)
        pcap_set_buffer_size(h, bufferSize)
        nanosecond = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO)) == 0
        let rc = pcap_activate(h)
        if rc < 0 {
            let reason = String(cString: pcap_geterr(h))
            pcap_close(h)
            if rc == PCAP_ERROR_PERM_DENIED {
                throw LiveCaptureError(
                    message: "\(interface): permission denied: live capture needs root or the CAP_NET_RAW and CAP_NET_ADMIN capabilities (\(reason))")
            }
            if rc == PCAP_ERROR_NO_SUCH_DEVICE {
                throw LiveCaptureError(message: "\(interface): no such interface (see `pilottrace interfaces`)")
            }
            throw LiveCaptureError(message: "\(interface): cannot start capturing: \(reason)")
        }
        linkType = LinkType(rawValue: UInt32(pcap_datalink(h)))
        // Non-blocking reads plus poll(2): the stop condition is checked even when no packet arrives (a
        // blocking pcap_next_ex in immediate mode may never time out).
        pcap_setnonblock(h, 1, &errbuf)
        if let filter {
            var program = bpf_program()
            // From here on every stored property is set, so a throw runs deinit, which closes the handle.
            guard pcap_compile(h, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
                let reason = String(cString: pcap_geterr(h))
                throw LiveCaptureError(message: "invalid capture filter \"\(filter)\": \(reason)")
            }
            defer { pcap_freecode(&program) }
            guard pcap_setfilter(h, &program) == 0 else {
                let reason = String(cString: pcap_geterr(h))
                throw LiveCaptureError(message: "cannot apply the capture filter: \(reason)")
            }
        }
    }

    deinit {
        pcap_close(handle)
    }

    /// Captures until `shouldStop` says so, calling `body` for every frame; `shouldStop` and `tick` run at least
    /// every 100 ms, packets or not. Frames the kernel captured before the stop are still delivered.
    public func run(shouldStop: () -> Bool, tick: () throws -> Void = {}, _ body: (CaptureRecord) throws -> Void) throws {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let fd = pcap_get_selectable_fd(handle)
        var lastTick = DispatchTime.now()
        var draining = false
        var drainDeadline = DispatchTime.now()
        while true {
            if !draining && shouldStop() {
                // What the kernel already captured is still analyzed: drain the buffer (for at most a second).
                draining = true
                drainDeadline = .now() + 1
            }
            if draining && DispatchTime.now() >= drainDeadline { return }
            if DispatchTime.now().uptimeNanoseconds - lastTick.uptimeNanoseconds >= 100_000_000 {
                lastTick = .now()
                try tick()
            }
            let rc = pcap_next_ex(handle, &header, &data)
            if rc == 0 {
                if draining { return }
                // Nothing buffered: wait up to 100 ms for more.
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, 100)
                continue
            }
            if rc < 0 {
                if rc == PCAP_ERROR_BREAK { return }
                throw LiveCaptureError(message: "\(interface): capture failed: \(String(cString: pcap_geterr(handle)))")
            }
            guard let h = header, let d = data else { continue }
            frames += 1
            bytes += Int(h.pointee.caplen)
            let ts = Timestamp(seconds: Int64(h.pointee.ts.tv_sec), nanoseconds: Int64(h.pointee.ts.tv_usec) * (nanosecond ? 1 : 1000))
            try body(
                CaptureRecord(
                    timestamp: ts, linkType: linkType, data: UnsafeRawBufferPointer(start: d, count: Int(h.pointee.caplen)),
                    originalLength: Int(h.pointee.len)))
        }
    }

    /// Packets received and dropped by the kernel and the interface, from pcap_stats.
    public var statistics: (received: UInt32, dropped: UInt32, interfaceDropped: UInt32) {
        var s = pcap_stat()
        guard pcap_stats(handle, &s) == 0 else { return (0, 0, 0) }
        return (s.ps_recv, s.ps_drop, s.ps_ifdrop)
    }

    /// The interfaces libpcap can capture on: (name, description, flags).
    public static func interfaces() throws -> [(name: String, description: String?, up: Bool, loopback: Bool)] {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        var list: UnsafeMutablePointer<pcap_if_t>?
        guard pcap_findalldevs(&list, &errbuf) == 0 else { throw LiveCaptureError(message: String(cString: errbuf)) }
        defer { pcap_freealldevs(list) }
        var out: [(String, String?, Bool, Bool)] = []
        var p = list
        while let dev = p {
            let flags = dev.pointee.flags
            out.append(
                (
                    String(cString: dev.pointee.name), dev.pointee.description.map { String(cString: $0) },
                    flags & UInt32(PCAP_IF_UP) != 0, flags & UInt32(PCAP_IF_LOOPBACK) != 0
                ))
            p = dev.pointee.next
        }
        return out
    }
}

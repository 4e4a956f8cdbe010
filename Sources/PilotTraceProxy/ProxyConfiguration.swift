import Foundation

/// A host and port to listen on or connect to: `HOST:PORT`, `[V6]:PORT`, or a bare `PORT` (loopback).
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `[V6]:PORT` or `PORT`; a bare port means 127.0.0.1 (listeners bind to loopback unless
    /// an address is given explicitly).
    public init?(_ text: String) {
        if let p = Int(text), (0...65535).contains(p) {
            self.init(host: "127.0.0.1", port: p)
            return
        }
        // Port 0 (any free port) is fine for a listener.
        if text.hasSuffix(":0"), let a = BrokerAddress("tcp://" + text.dropLast(2) + ":1"), a.path.isEmpty {
            self.init(host: a.host, port: 0)
            return
        }
        guard let a = BrokerAddress("tcp://" + text), a.path.isEmpty, text.contains(":") else { return nil }
        self.init(host: a.host, port: a.port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether the address is a wildcard (every interface).
    public var isWildcard: Bool { host == "0.0.0.0" || host == "::" || host == "*" }
}

/// The HTTP upstream: `http://host[:port]` or `https://host[:port]` (a path prefix is not supported).
public struct UpstreamURL: Hashable, Sendable, CustomStringConvertible {
    public var tls: Bool
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        let lower = text.lowercased()
        let tls: Bool
        if lower.hasPrefix("https://") { tls = true } else if lower.hasPrefix("http://") { tls = false } else { return nil }
        guard let a = BrokerAddress(tls ? "wss://" + text.dropFirst(8) : "ws://" + text.dropFirst(7)), a.path.isEmpty || a.path == "/" else {
            return nil
        }
        self.tls = tls
        host = a.host
        port = a.port
    }

    /// The `Host` header value for upstream requests.
    public var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return (tls && port == 443) || (!tls && port == 80) ? h : "\(h):\(port)"
    }

    public var description: String { "\(tls ? "https" : "http")://\(hostHeader)" }
}

/// What `pilottrace proxy` was asked to do.
public struct ProxyConfiguration: Sendable {
    public var httpListen: HostPort
    public var httpUpstream: UpstreamURL
    /// The MQTT listener; nil: MQTT is not proxied and `mqtt_addr` is left alone.
    public var mqttListen: HostPort?
    /// Where MQTT goes; nil: the broker address the cloud last handed out (remembered while rewriting).
    public var mqttUpstream: HostPort?
    /// Certificate chain and key (PEM) for TLS towards the app, on both listeners.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// TLS towards the upstreams (HTTP also when the upstream URL is https; MQTT also when the issued address is ssl/wss).
    public var upstreamTLS = false
    /// PEM file of the certificates trusted for upstream TLS (default: the system's).
    public var upstreamCA: String?
    /// Do not verify upstream certificates.
    public var upstreamInsecure = false
    /// Rewrite `mqtt_addr` (and a `thing` module host) in JSON responses to the MQTT listener.
    public var rewrite = true
    /// Inject the JSBridge script into HTML pages.
    public var bridge = true
    /// The host put in rewritten addresses; default: the MQTT listener's address, or (for a wildcard listener)
    /// the host the app used to reach the HTTP listener.
    public var advertiseHost: String?
    /// Largest response body held to rewrite or inject into (bigger ones pass through untouched).
    public var maxRewriteBody = 8 << 20

    public init(httpListen: HostPort, httpUpstream: UpstreamURL) {
        self.httpListen = httpListen
        self.httpUpstream = httpUpstream
    }

    public var appTLS: Bool { tlsCertificate != nil }
}

// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "PilotTrace",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pilottrace", targets: ["pilottrace"]),
        // Libraries meant for reuse (docs/architecture.md): the pure core, which analyses bytes from any source, the
        // capture-file reader and writer, and the pure traffic generator (the Benchmarks package's input).
        .library(name: "PilotTraceWire", targets: ["PilotTraceWire"]),
        .library(name: "PilotTraceProtocols", targets: ["PilotTraceProtocols"]),
        .library(name: "PilotTraceFlow", targets: ["PilotTraceFlow"]),
        .library(name: "PilotTraceCapture", targets: ["PilotTraceCapture"]),
        .library(name: "PilotTraceLab", targets: ["PilotTraceLab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    ],
    // Each target declares exactly the modules its sources import, no more (Tests/EndToEndTests/ArchitectureTests.swift
    // checks it); docs/architecture.md says what each may import and why.
    targets: [
        // C libraries behind system-library targets (the GRDBSQLite pattern).
        .systemLibrary(name: "CPcap", providers: [.apt(["libpcap-dev"])]),
        .systemLibrary(name: "CMosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),

        // PURE: link layers, IP, TCP, reassembly (bytes and capture timestamps in, events out), and the one TCP frame
        // synthesiser: the proxy and the replay record relayed bytes with it, the lab generates its captures with it;
        // the project's digests (swift-crypto's).
        .target(name: "PilotTraceWire", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // PURE: HTTP/1.1, WebSocket, MQTT and TLS decoders over reassembled streams (zlib for gzip/deflate bodies;
        // swift-crypto for TLS decryption with a key log: HKDF, HMAC, AES-GCM, ChaCha20-Poly1305).
        .target(name: "PilotTraceProtocols", dependencies: ["PilotTraceWire", "CZlib", .product(name: "Crypto", package: "swift-crypto")]),
        // PURE: the DJI Cloud API layer and the Pilot 2 session model (sessions, six-phase timelines).
        .target(name: "PilotTraceFlow", dependencies: ["PilotTraceProtocols", "PilotTraceWire"]),
        // The record on two engines behind one interface: SQLite through GRDB, PostgreSQL through a blocking link on
        // postgres-nio (one NIO event loop, TLS by NIOSSL); schema, migrations, batched writes, queries, stitching of
        // capture points; capture files' SHA-256 (Wire's).
        .target(
            name: "PilotTraceStore",
            dependencies: [
                "PilotTraceWire", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // The analysis run: capture files → pipeline → decoders → sessions → the store; and the one live loop (LiveAnalysis)
        // that live capture and the proxy feed frames to.
        .target(name: "PilotTraceAnalysis", dependencies: ["PilotTraceCapture", "PilotTraceProtocols", "PilotTraceFlow", "PilotTraceStore", "PilotTraceWire"]),
        // Reports for people and tools (HTML with SVG sequence diagrams, Markdown, JSON, Mermaid) from the store.
        .target(name: "PilotTraceReport", dependencies: ["PilotTraceStore", "PilotTraceFlow", "PilotTraceProtocols", "PilotTraceWire"]),
        // PURE: synthetic Pilot 2 traffic (correct TCP from Wire's frame synthesiser, HTTP, MQTT) for benchmarks and tests.
        .target(name: "PilotTraceLab", dependencies: ["PilotTraceWire"]),
        // I/O: the lab's reference cloud (NIO HTTP, HS256 tokens, mosquitto, a libmosquitto backend) and Pilot 2 simulator.
        .target(
            name: "PilotTraceLabServices",
            dependencies: [
                "PilotTraceClients", "PilotTraceWire", "PilotTraceProtocols",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // I/O: a keep-alive HTTP/1.1 client on NIO and a libmosquitto MQTT client, used by the replay and by the lab's
        // simulator.
        .target(
            name: "PilotTraceClients",
            dependencies: [
                "CMosquitto",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // PURE: the replay's core: a stored session's plan (steps, learned variables), what to send at each step, the
        // comparison with the recording and the verdict, the summary and JUnit outputs. No clock, no sockets.
        .target(name: "PilotTraceReplay", dependencies: ["PilotTraceProtocols"]),
        // I/O: the replay's shell: re-drives plans against a target (HTTP on NIO keep-alive connections, MQTT through
        // libmosquitto), records its own traffic through the live analysis, stores the comparison.
        .target(
            name: "PilotTraceReplayRunner",
            dependencies: [
                "PilotTraceReplay", "PilotTraceRelay", "PilotTraceClients", "PilotTraceAnalysis", "PilotTraceStore", "PilotTraceFlow", "PilotTraceProtocols",
                "PilotTraceWire",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // I/O: NIO plumbing shared by the proxy and the replay: the handler that reports a connection's bytes, FINs,
        // resets and close to a TrafficRecording (accepted or initiated side), the one recorder that turns those reports
        // into synthesised TCP frames (Wire's TCPFrameSynthesizer) for a serial consumer, and the glue that relays two
        // channels.
        .target(name: "PilotTraceRelay", dependencies: ["PilotTraceWire", .product(name: "NIOCore", package: "swift-nio")]),
        // I/O: capture files (pcap, pcapng, gzip), libpcap.
        .target(name: "PilotTraceCapture", dependencies: ["PilotTraceWire", "CPcap", "CZlib"]),
        // I/O: the HTTP + MQTT recording proxy (SwiftNIO, TLS both ways). Its pure parts (mqtt_addr rewriting, the
        // JSBridge script) take bytes and timestamps only; the relayed bytes go to the recorder it is given (the relay's
        // TrafficRecorder, shared with the replay), whose frames feed the same live analysis as `capture`.
        .target(
            name: "PilotTraceProxy",
            dependencies: [
                "PilotTraceRelay", "PilotTraceProtocols", "PilotTraceFlow",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // I/O: `pilottrace serve`: the read-only web console (HTML pages, Server-Sent Events, the JSON API) and the
        // Prometheus metrics over the store, on Hummingbird; database calls run on a thread pool off the event loop.
        .target(
            name: "PilotTraceServe",
            dependencies: [
                "PilotTraceStore", "PilotTraceReport",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        .executableTarget(
            name: "pilottrace",
            dependencies: [
                "PilotTraceWire", "PilotTraceCapture", "PilotTraceProtocols", "PilotTraceFlow", "PilotTraceStore", "PilotTraceAnalysis", "PilotTraceReport",
                "PilotTraceLab", "PilotTraceLabServices", "PilotTraceClients", "PilotTraceRelay", "PilotTraceProxy", "PilotTraceReplay",
                "PilotTraceReplayRunner", "PilotTraceServe",
                // `version` prints libmosquitto's version.
                "CMosquitto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
                // The shell maps the errors of the libraries below to words (Failure.swift).
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // `serve` sends swift-metrics' metrics (the requests it serves) to a Prometheus registry.
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // What one input of each libFuzzer target does (Fuzz/Targets): scripts/fuzz compiles these files into the fuzzers,
        // and PilotTraceFuzzTargetsTests replays Fuzz/regressions/ through the same functions.
        .target(
            name: "PilotTraceFuzzTargets",
            dependencies: [
                "PilotTraceWire", "PilotTraceProtocols", "PilotTraceCapture", "PilotTraceFlow", "PilotTraceProxy",
            ], path: "Fuzz/Targets"),

        // Shared by the test targets: running processes, finding captures, frames reassembled through Wire's pipeline;
        // re-exports the lab's MQTT builders and seeded random generator.
        .target(name: "PilotTraceTestSupport", dependencies: ["PilotTraceLab", "PilotTraceWire"], path: "Tests/PilotTraceTestSupport"),
        .testTarget(name: "PilotTraceWireTests", dependencies: ["PilotTraceWire", "PilotTraceTestSupport"]),
        .testTarget(name: "PilotTraceCaptureTests", dependencies: ["PilotTraceCapture", "PilotTraceWire", "PilotTraceTestSupport"]),
        .testTarget(
            name: "PilotTraceProtocolsTests", dependencies: ["PilotTraceProtocols", "PilotTraceWire", "PilotTraceCapture", "PilotTraceTestSupport", "CZlib"]),
        .testTarget(name: "PilotTraceFlowTests", dependencies: ["PilotTraceFlow", "PilotTraceProtocols", "PilotTraceWire", "PilotTraceTestSupport"]),
        .testTarget(
            name: "PilotTraceStoreTests",
            dependencies: [
                "PilotTraceStore", "PilotTraceWire", "PilotTraceTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        .testTarget(name: "PilotTraceLabServicesTests", dependencies: ["PilotTraceLabServices", "PilotTraceWire"]),
        .testTarget(name: "PilotTraceReportTests", dependencies: ["PilotTraceReport", "PilotTraceStore"]),
        .testTarget(name: "PilotTraceLabTests", dependencies: ["PilotTraceLab", "PilotTraceWire", "PilotTraceProtocols", "PilotTraceFlow"]),
        .testTarget(name: "PilotTraceReplayTests", dependencies: ["PilotTraceReplay", "PilotTraceProtocols"]),
        .testTarget(
            name: "PilotTraceProxyTests",
            dependencies: [
                "PilotTraceProxy", "PilotTraceWire", "PilotTraceCapture", "PilotTraceTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ], exclude: ["bridge-page.html"]),
        .testTarget(
            name: "PilotTraceRelayTests",
            dependencies: [
                "PilotTraceRelay", "PilotTraceWire", "PilotTraceTestSupport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(name: "PilotTraceServeTests", dependencies: ["PilotTraceServe", "PilotTraceStore", "PilotTraceReport", "PilotTraceTestSupport"]),
        .testTarget(name: "PilotTraceFuzzTargetsTests", dependencies: ["PilotTraceFuzzTargets", "PilotTraceTestSupport", "PilotTraceWire"]),
        .testTarget(name: "EndToEndTests", dependencies: ["PilotTraceWire", "PilotTraceTestSupport"]),
    ]
)

// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "PilotTrace",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pilottrace", targets: ["pilottrace"]),
        .library(name: "PilotTraceWire", targets: ["PilotTraceWire"]),
        .library(name: "PilotTraceCapture", targets: ["PilotTraceCapture"]),
        .library(name: "PilotTraceProtocols", targets: ["PilotTraceProtocols"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C libraries behind system-library targets (the GRDBSQLite pattern).
        .systemLibrary(name: "CPcap", providers: [.apt(["libpcap-dev"])]),
        .systemLibrary(name: "CMosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),

        // PURE: link layers, IP, TCP, reassembly. Bytes and capture timestamps in, events out.
        .target(name: "PilotTraceWire"),
        // PURE: HTTP/1.1, WebSocket and MQTT decoders over reassembled streams (zlib for gzip/deflate bodies).
        .target(name: "PilotTraceProtocols", dependencies: ["PilotTraceWire", "CZlib"]),
        // I/O: capture files (pcap, pcapng, gzip), libpcap.
        .target(name: "PilotTraceCapture", dependencies: ["PilotTraceWire", "CPcap", "CZlib"]),

        .executableTarget(
            name: "pilottrace",
            dependencies: [
                "PilotTraceWire", "PilotTraceCapture", "PilotTraceProtocols", "CMosquitto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Shared by the test targets: running processes, finding captures, a seeded random generator.
        .target(name: "PilotTraceTestSupport", path: "Tests/PilotTraceTestSupport"),
        .testTarget(name: "PilotTraceWireTests", dependencies: ["PilotTraceWire", "PilotTraceTestSupport"]),
        .testTarget(name: "PilotTraceCaptureTests", dependencies: ["PilotTraceCapture", "PilotTraceWire", "PilotTraceTestSupport"]),
        .testTarget(name: "PilotTraceProtocolsTests", dependencies: ["PilotTraceProtocols", "PilotTraceWire", "PilotTraceCapture", "PilotTraceTestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["PilotTraceWire", "PilotTraceTestSupport"]),
    ]
)

// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "PilotTrace",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pilottrace", targets: ["pilottrace"]),
        .library(name: "PilotTraceWire", targets: ["PilotTraceWire"]),
        .library(name: "PilotTraceCapture", targets: ["PilotTraceCapture"]),
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
        // I/O: capture files (pcap, pcapng, gzip), libpcap.
        .target(name: "PilotTraceCapture", dependencies: ["PilotTraceWire", "CPcap", "CZlib"]),

        .executableTarget(
            name: "pilottrace",
            dependencies: [
                "PilotTraceWire", "PilotTraceCapture", "CMosquitto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "PilotTraceWireTests", dependencies: ["PilotTraceWire"]),
        .testTarget(name: "PilotTraceCaptureTests", dependencies: ["PilotTraceCapture", "PilotTraceWire"]),
        .testTarget(name: "EndToEndTests", dependencies: ["PilotTraceWire"]),
    ]
)

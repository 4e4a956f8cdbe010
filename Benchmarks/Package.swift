// swift-tools-version: 6.1
// Micro-benchmarks of the pure core (ordo-one/benchmark): decoders, reassembly and the per-packet pipeline, with
// allocations per packet. A package of its own so the benchmark dependency (and its malloc interposer) never
// enters the main build. Run with `make microbench` (or `swift package benchmark` here).
import PackageDescription

let package = Package(
    name: "PilotTraceBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "PilotTrace", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PilotTraceMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PilotTraceWire", package: "PilotTrace"),
                .product(name: "PilotTraceProtocols", package: "PilotTrace"),
                .product(name: "PilotTraceFlow", package: "PilotTrace"),
                .product(name: "PilotTraceLab", package: "PilotTrace"),
            ],
            path: "Benchmarks/PilotTraceMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

// swift-tools-version: 6.1
//
// Bifrost benchmarks (package-benchmark). A package of its own so that the benchmark harness stays out of
// the main build. Run with `make bench`, or:
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark [--target Codec]

import PackageDescription

let package = Package(
    name: "BifrostBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Bifrost", path: "../"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // The RPC echo benchmark against a raw NIO echo ceiling: swift run -c release rpc-bench
        .executableTarget(
            name: "rpc-bench",
            dependencies: [
                .product(name: "BifrostRPC", package: "Bifrost"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Sources/rpc-bench"
        ),
        // Durable write throughput of a 3-node Raft cluster on loopback: swift run -c release raft-bench
        .executableTarget(
            name: "raft-bench",
            dependencies: [
                .product(name: "BifrostRaft", package: "Bifrost"),
                .product(name: "BifrostRaftCore", package: "Bifrost"),
                .product(name: "BifrostRPC", package: "Bifrost"),
                .product(name: "BifrostStorage", package: "Bifrost"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/raft-bench"
        ),
        // The built-in map at 1,000,000 keys: build, snapshot, restore, list. swift run -c release map-bench
        .executableTarget(
            name: "map-bench",
            dependencies: [.product(name: "BifrostMap", package: "Bifrost")],
            path: "Sources/map-bench"
        ),
        // What applying one replicated `set` costs a node: swift run -c release apply-bench
        .executableTarget(
            name: "apply-bench",
            dependencies: [
                .product(name: "BifrostMap", package: "Bifrost"),
                .product(name: "BifrostRaft", package: "Bifrost"),
                .product(name: "BifrostRaftCore", package: "Bifrost"),
                .product(name: "BifrostWire", package: "Bifrost"),
            ],
            path: "Sources/apply-bench"
        ),
        .executableTarget(
            name: "Codec",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "BifrostWire", package: "Bifrost"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/Codec",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "Storage",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "BifrostStorage", package: "Bifrost"),
            ],
            path: "Benchmarks/Storage",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "RaftCore",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "BifrostRaftCore", package: "Bifrost"),
            ],
            path: "Benchmarks/RaftCore",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

for target in package.targets {
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    target.swiftSettings = settings
}

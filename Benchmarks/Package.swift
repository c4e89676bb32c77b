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
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Codec",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "BifrostWire", package: "Bifrost"),
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

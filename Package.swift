// swift-tools-version: 6.1
//
// Bifrost: a Swift framework for building robust distributed systems (RPC, Raft, membership),
// on a RocksDB log store and LZ4-compressed snapshots.
//
// Layering (lower never imports higher; pure cores import no NIO):
//   BifrostWire (codec, NIOCore ByteBuffer)
//   BifrostStorage (RocksDB log store, LZ4 snapshot store)       -> CRocksDB, CLZ4, CBifrostCRC32C
//   BifrostRaftCore (pure Raft: no I/O, no clock, no randomness)  -> (nothing)
//   BifrostTestKit (deterministic simulation)                    -> BifrostRaftCore
//   BifrostBindings (task-local dynamically scoped bindings)     -> (nothing)

import CompilerPluginSupport
import PackageDescription

let package = Package(
    name: "Bifrost",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "BifrostWire", targets: ["BifrostWire"]),
        .library(name: "BifrostStorage", targets: ["BifrostStorage"]),
        .library(name: "BifrostRPC", targets: ["BifrostRPC"]),
        .library(name: "BifrostMacros", targets: ["BifrostMacros"]),
        .library(name: "BifrostRaftCore", targets: ["BifrostRaftCore"]),
        .library(name: "BifrostRaft", targets: ["BifrostRaft"]),
        .library(name: "BifrostTestKit", targets: ["BifrostTestKit"]),
        .library(name: "BifrostMap", targets: ["BifrostMap"]),
        .library(name: "BifrostBindings", targets: ["BifrostBindings"]),
        .library(name: "BifrostMapHTTP", targets: ["BifrostMapHTTP"]),
        .executable(name: "bifrost-map", targets: ["bifrost-map"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/swiftlang/swift-syntax.git", from: "603.0.1"),
        // Only the executables (bifrost-map, bifrost-loadgen) use it.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Only BifrostMapHTTP (the map's HTTP API) and the bifrost-map executable use these. Hummingbird's default
        // traits (swift-configuration support) are off: nothing here needs them.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // MARK: System libraries (Debian: librocksdb-dev, liblz4-dev, libjemalloc-dev; `make deps` installs them).
        .systemLibrary(
            name: "CRocksDB",
            path: "Modules/CRocksDB",
            pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"]), .brew(["rocksdb"])]
        ),
        // The allocator of the two executables, bifrost-map and bifrost-loadgen (Debian: libjemalloc-dev): linked
        // into them only, it replaces malloc for the whole process. Same-run pairs measured 10-20% more writes than
        // with glibc's malloc for the server, and 5% less CPU per operation for the load generator
        // (docs/benchmarks.md, "jemalloc").
        .systemLibrary(
            name: "CJemalloc",
            path: "Modules/CJemalloc",
            pkgConfig: "jemalloc",
            providers: [.apt(["libjemalloc-dev"]), .brew(["jemalloc"])]
        ),
        .systemLibrary(
            name: "CLZ4",
            path: "Modules/CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]
        ),

        // CRC-32C in hardware (SSE4.2 or the Armv8 CRC extension), used by BifrostStorage's `CRC32C` when the
        // processor has it: a few lines of C, because Swift has no portable way to reach the instructions.
        .target(name: "CBifrostCRC32C", path: "Modules/CBifrostCRC32C"),

        // MARK: Modules
        .target(
            name: "BifrostWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            path: "Modules/BifrostWire"
        ),
        .target(
            name: "BifrostStorage",
            dependencies: [
                "CRocksDB",
                "CLZ4",
                "CBifrostCRC32C",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Modules/BifrostStorage"
        ),
        .target(
            name: "BifrostRPC",
            dependencies: [
                "BifrostWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Modules/BifrostRPC"
        ),
        // Macros (swift-syntax) stay in these leaf targets; nothing below them depends on swift-syntax.
        .macro(
            name: "BifrostMacrosPlugin",
            dependencies: [
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
            ],
            path: "Modules/BifrostMacrosPlugin"
        ),
        .target(
            name: "BifrostMacros",
            dependencies: [
                "BifrostMacrosPlugin", "BifrostRPC", "BifrostWire", "BifrostRaft",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Modules/BifrostMacros"
        ),
        .target(
            name: "BifrostRaftCore",
            dependencies: [],
            path: "Modules/BifrostRaftCore"
        ),
        // The Raft node shell: the core on the RPC and RocksDB, state machines, and the cluster client.
        .target(
            name: "BifrostRaft",
            dependencies: [
                "BifrostRaftCore", "BifrostWire", "BifrostRPC", "BifrostStorage", "BifrostBindings",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Modules/BifrostRaft"
        ),
        // The built-in replicated state machines (map, value, number) with typed clients.
        .target(
            name: "BifrostMap",
            dependencies: ["BifrostMacros", "BifrostRaft"],
            path: "Modules/BifrostMap"
        ),
        // The map's HTTP API (Hummingbird): KV, compare-and-swap, listing, an SSE watch, cluster, health, metrics.
        .target(
            name: "BifrostMapHTTP",
            dependencies: [
                "BifrostMap", "BifrostRaft", "BifrostWire",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Modules/BifrostMapHTTP"
        ),
        // Test support over real nodes (a one-node cluster with its server, storage and client); tests only.
        .target(
            name: "BifrostNodeTestKit",
            dependencies: ["BifrostRaft", "BifrostRPC", "BifrostStorage"],
            path: "Modules/BifrostNodeTestKit"
        ),
        .target(
            name: "BifrostTestKit",
            dependencies: ["BifrostRaftCore"],
            path: "Modules/BifrostTestKit"
        ),
        // Task-local dynamically scoped bindings (Clojure's `binding`). Pure: no NIO, no Foundation.
        .target(
            name: "BifrostBindings",
            dependencies: [],
            path: "Modules/BifrostBindings"
        ),

        // MARK: Apps
        // The replicated map server and its CLI (`bifrost-map serve`, `get`, `set`, ...).
        .executableTarget(
            name: "bifrost-map",
            dependencies: [
                "BifrostMap", "BifrostMapHTTP", "BifrostRaft", "BifrostRPC", "BifrostStorage", "CJemalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Apps/bifrost-map"
        ),

        // MARK: Test helpers
        // A child process that the crash tests SIGKILL in the middle of log appends and snapshot saves.
        .executableTarget(
            name: "bifrost-storage-crasher",
            dependencies: ["BifrostStorage"],
            path: "Tests/StorageCrasher"
        ),

        // MARK: Tests
        .testTarget(
            name: "BifrostWireTests",
            dependencies: [
                "BifrostWire",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            path: "Tests/BifrostWireTests"
        ),
        .testTarget(
            name: "BifrostStorageTests",
            dependencies: ["BifrostStorage", "bifrost-storage-crasher"],
            path: "Tests/BifrostStorageTests"
        ),
        .testTarget(
            name: "BifrostRPCTests",
            dependencies: [
                "BifrostRPC",
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Tests/BifrostRPCTests"
        ),
        .testTarget(
            name: "BifrostMacrosTests",
            dependencies: [
                "BifrostMacros", "BifrostNodeTestKit",
                "BifrostMacrosPlugin",
                "BifrostRaft",
                "BifrostRaftCore",
                "BifrostStorage",
                .product(name: "SwiftSyntaxMacrosGenericTestSupport", package: "swift-syntax"),
            ],
            path: "Tests/BifrostMacrosTests"
        ),
        .testTarget(
            name: "BifrostRaftTests",
            dependencies: [
                "BifrostRaft", "BifrostRaftCore", "BifrostWire", "BifrostRPC", "BifrostStorage", "BifrostBindings",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/BifrostRaftTests"
        ),
        .testTarget(
            name: "BifrostRaftCoreTests",
            dependencies: ["BifrostRaftCore", "BifrostTestKit"],
            path: "Tests/BifrostRaftCoreTests"
        ),
        // End-to-end tests of the bifrost-map app with real processes.
        .testTarget(
            name: "BifrostMapAppTests",
            dependencies: [
                "bifrost-map", "BifrostMapHTTP", "BifrostNodeTestKit", "BifrostRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/BifrostMapAppTests"
        ),
        .testTarget(
            name: "BifrostMapTests",
            dependencies: ["BifrostMap", "BifrostNodeTestKit", "BifrostRaft", "BifrostRaftCore", "BifrostStorage"],
            path: "Tests/BifrostMapTests"
        ),
        .testTarget(
            name: "BifrostBindingsTests",
            dependencies: ["BifrostBindings"],
            path: "Tests/BifrostBindingsTests"
        ),
    ]
)

// MARK: bifrost-loadgen
// The load generator (issue 8): a library of workloads, key distributions, drivers and reports, the executable
// over it, and their tests. The executable does not link bifrost-map: it spawns the `bifrost-map` binary built next
// to it; the test target depends on both executables so that `swift build --build-tests` builds them.
package.dependencies.append(.package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"))
package.products.append(.executable(name: "bifrost-loadgen", targets: ["bifrost-loadgen"]))
package.targets.append(contentsOf: [
    .target(
        name: "BifrostLoadgenKit",
        dependencies: [
            "BifrostMap", "BifrostRaft", "BifrostRPC", "BifrostWire",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ],
        path: "Apps/bifrost-loadgen/Kit"
    ),
    .executableTarget(
        name: "bifrost-loadgen",
        dependencies: [
            "BifrostLoadgenKit", "CJemalloc",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ],
        path: "Apps/bifrost-loadgen/Main"
    ),
    .testTarget(
        name: "BifrostLoadgenTests",
        dependencies: [
            "BifrostLoadgenKit", "BifrostNodeTestKit", "bifrost-loadgen", "bifrost-map",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ],
        path: "Tests/BifrostLoadgenTests"
    ),
])

// Settings shared by every target: Swift 6 language mode with strict concurrency, plus upcoming features
// that keep the API honest.
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}

// swift-tools-version:6.2
import PackageDescription

// Layers (an arrow only points down):
//   netmem (CLI) → NetmemURing / NetmemXDP / NetmemKernel → NetmemDevice → Netmem → CNetmemLinux
let package = Package(
    name: "netmem",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Netmem", targets: ["Netmem"]),
        .library(name: "NetmemDevice", targets: ["NetmemDevice"]),
        .library(name: "NetmemURing", targets: ["NetmemURing"]),
        .library(name: "NetmemXDP", targets: ["NetmemXDP"]),
        .library(name: "NetmemKernel", targets: ["NetmemKernel"]),
        .library(name: "NetmemGPU", targets: ["NetmemGPU"]),
        .executable(name: "netmem", targets: ["netmem"]),
        .executable(name: "example-receive", targets: ["example-receive"]),
        .executable(name: "example-framed", targets: ["example-framed"]),
        .executable(name: "example-load", targets: ["example-load"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.4.0"),
    ],
    targets: [
        // Kernel ABI structs/constants and thin syscall wrappers (cnm_ prefix).
        .target(name: "CNetmemLinux"),
        // SHA-256 for the digests the CLI, examples and tests print (not a product);
        // optimized even in debug builds, where tests hash megabytes with it.
        .target(name: "NetmemSHA256", swiftSettings: [.unsafeFlags(["-O"])]),
        // Parsing of command-line values the CLI and the fuzz targets share (not a product):
        // byte sizes. No ArgumentParser dependency.
        .target(name: "NetmemCommandLine"),
        // Counts heap allocations for `netmem bench` (links into the executable only).
        .target(name: "CNetmemMallocCounter"),
        .target(
            name: "Netmem",
            dependencies: [
                "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "NetmemDevice",
            dependencies: [
                "Netmem", "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The frame format: header, parser, writer, CRC-32C. No transport.
        .target(
            name: "NetmemFraming",
            dependencies: ["NetmemDevice", "Netmem", "CNetmemLinux"]
        ),
        .target(
            name: "NetmemURing",
            dependencies: [
                "NetmemDevice", "Netmem", "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "NetmemXDP",
            dependencies: [
                "NetmemDevice", "Netmem", "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "NetmemKernel",
            dependencies: [
                "NetmemDevice", "Netmem", "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The receive session a library user embeds: memory, pool, receiver, framing, the
        // RX thread and the async API; the framed sender.
        .target(
            name: "NetmemSession",
            dependencies: [
                "NetmemURing", "NetmemFraming", "NetmemGPU", "NetmemDevice", "Netmem",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Prometheus metrics of a receive session, served over HTTP/1 with swift-nio.
        .target(
            name: "NetmemMetrics",
            dependencies: [
                "NetmemSession", "NetmemURing", "Netmem",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The session as a swift-service-lifecycle Service (apart, so the core does not
        // pull that package).
        .target(
            name: "NetmemServiceLifecycle",
            dependencies: [
                "NetmemSession",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The engines of `netmem bench` (not public API): loopback pairs, veth labs, CPU
        // accounting.
        .target(
            name: "NetmemBench",
            dependencies: [
                "NetmemSession", "NetmemURing", "NetmemFraming", "Netmem", "CNetmemLinux", "CNetmemMallocCounter",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // GPU memory: a CUDA exporter loaded at run time (dlopen), pinned host staging,
        // bounce copies and the unpack step.
        .target(
            name: "NetmemGPU",
            dependencies: [
                "NetmemDevice", "Netmem", "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "netmem",
            dependencies: [
                "Netmem", "NetmemDevice", "NetmemFraming", "NetmemURing", "NetmemXDP", "NetmemKernel", "NetmemGPU",
                "NetmemSession", "NetmemMetrics", "NetmemBench", "CNetmemMallocCounter", "NetmemCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                "NetmemSHA256",
            ]
        ),
        // Examples the README shows, each a page of code.
        .executableTarget(
            name: "example-receive",
            dependencies: ["NetmemSession", "NetmemURing", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           "NetmemSHA256"],
            path: "Examples/receive"
        ),
        .executableTarget(
            name: "example-framed",
            dependencies: ["NetmemSession", "NetmemURing", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/framed"
        ),
        .executableTarget(
            name: "example-load",
            dependencies: ["NetmemSession", "NetmemURing", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           "NetmemSHA256"],
            path: "Examples/load"
        ),
        // Coverage-guided fuzz targets (libFuzzer, see scripts/fuzz). Built normally each
        // replays its seed corpus in Fuzz/Corpus/<name> and exits non-zero on a broken
        // invariant; built with -sanitize=fuzzer,address -DFUZZING it is a libFuzzer binary.
        .target(name: "CNetmemFuzzSupport", path: "Fuzz/CSupport"),
        .target(name: "NetmemFuzzSupport", dependencies: ["CNetmemFuzzSupport"], path: "Fuzz/Support"),
        .executableTarget(
            name: "fuzz-frame-parser",
            dependencies: ["NetmemFuzzSupport", "NetmemFraming", "NetmemDevice", "Netmem"],
            path: "Fuzz/FrameParser"
        ),
        .executableTarget(
            name: "fuzz-netlink",
            dependencies: ["NetmemFuzzSupport", "NetmemKernel", "CNetmemLinux"],
            path: "Fuzz/Netlink"
        ),
        .executableTarget(
            name: "fuzz-devmem-cmsg",
            dependencies: ["NetmemFuzzSupport", "NetmemKernel", "NetmemDevice", "CNetmemLinux"],
            path: "Fuzz/DevmemControl"
        ),
        .executableTarget(
            name: "fuzz-udp-header-split",
            dependencies: ["NetmemFuzzSupport", "NetmemXDP"],
            path: "Fuzz/UDPHeaderSplit"
        ),
        .executableTarget(
            name: "fuzz-byte-size",
            dependencies: ["NetmemFuzzSupport", "NetmemCommandLine"],
            path: "Fuzz/ByteSize"
        ),
        .executableTarget(
            name: "fuzz-socket-address",
            dependencies: ["NetmemFuzzSupport", "NetmemURing"],
            path: "Fuzz/SocketAddress"
        ),
        // What every test target shares: loopback sockets, seeded data, threads.
        .target(
            name: "NetmemTestSupport",
            dependencies: ["Netmem", "CNetmemLinux", .product(name: "SystemPackage", package: "swift-system")],
            path: "Tests/NetmemTestSupport"
        ),
        .testTarget(name: "NetmemTests", dependencies: ["Netmem", "CNetmemLinux", "NetmemTestSupport"]),
        .testTarget(name: "NetmemDeviceTests", dependencies: ["NetmemDevice", "Netmem", "NetmemTestSupport"]),
        .testTarget(name: "NetmemFramingTests", dependencies: ["NetmemFraming", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
        .testTarget(name: "NetmemURingTests", dependencies: ["NetmemURing", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
        .testTarget(
            name: "NetmemSessionTests",
            dependencies: [
                "NetmemSession", "NetmemMetrics", "NetmemServiceLifecycle", "NetmemFraming", "NetmemURing", "NetmemDevice",
                "Netmem", "NetmemTestSupport",
                "NetmemSHA256",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "NetmemXDPTests", dependencies: ["NetmemXDP", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
        .testTarget(name: "NetmemGPUTests", dependencies: ["NetmemGPU", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
        .testTarget(name: "NetmemCommandLineTests", dependencies: ["NetmemCommandLine"]),
        .testTarget(name: "NetmemKernelTests", dependencies: ["NetmemKernel", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

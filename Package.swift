// swift-tools-version:6.2
import PackageDescription

/// How libnccl-net-netmem.so is linked: the Swift runtime statically (the library loads
/// into processes without a Swift toolchain), only the plugin symbols exported, and
/// never unloaded (NCCL may dlclose it; a Swift runtime cannot be unmapped safely).
let ncclPluginLinkFlags = [
    "-static-stdlib",
    "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/CNetmemNCCLExports/netmem-nccl.map",
    "-Xlinker", "-z", "-Xlinker", "nodelete",
]

// Layers (an arrow only points down; each module depends only on modules below it):
//
//   netmem (CLI), example-receive, example-framed, example-load, fuzz-* (NetmemFuzzSupport)
//   nccl-net-netmem (CNetmemNCCLExports + NetmemNCCL)     NetmemNCCLCheck
//   NetmemMetrics  NetmemServiceLifecycle  NetmemBench (engines of `netmem bench`)
//   NetmemDoctor                          what this machine supports, with fixes
//   NetmemSession                         the receive session, RegionMemory, StreamSender
//   NetmemURing  NetmemXDP  NetmemKernel  NetmemGPU (+ NetmemGPUStandIn, a test double)
//   NetmemFraming  NetmemNamespace        frames and CRC-32C; running code in a netns
//   NetmemDevice                          regions, bindings, region maps, tokens, messages
//   Netmem                                refs, areas, providers, the page pool
//   CNetmemLinux  CNetmemCUDA  CNetmemNCCL   kernel, CUDA driver and NCCL ABI, thin wrappers
//   CNetmemCRC32C                         CRC-32C (crc32 chains, carry-less multiply folding)
//   NetmemSHA256  CNetmemMallocCounter    digests for tools and tests; bench allocation counts
//   NetmemLab  NetmemCommandLine          veth labs and UDP frames for tests and benches; CLI values
//
// Linux only: io_uring, AF_XDP, netlink and memfd are Linux interfaces. SwiftPM has no
// way to say so, so no platforms line claims anything else.
let package = Package(
    name: "netmem",
    products: [
        .library(name: "Netmem", targets: ["Netmem"]),
        .library(name: "NetmemDevice", targets: ["NetmemDevice"]),
        .library(name: "NetmemFraming", targets: ["NetmemFraming"]),
        .library(name: "NetmemSession", targets: ["NetmemSession"]),
        .library(name: "NetmemMetrics", targets: ["NetmemMetrics"]),
        .library(name: "NetmemServiceLifecycle", targets: ["NetmemServiceLifecycle"]),
        .library(name: "NetmemURing", targets: ["NetmemURing"]),
        .library(name: "NetmemXDP", targets: ["NetmemXDP"]),
        .library(name: "NetmemKernel", targets: ["NetmemKernel"]),
        .library(name: "NetmemGPU", targets: ["NetmemGPU"]),
        .library(name: "NetmemGPUStandIn", targets: ["NetmemGPUStandIn"]),
        .library(name: "NetmemDoctor", targets: ["NetmemDoctor"]),
        .library(name: "NetmemNamespace", targets: ["NetmemNamespace"]),
        .executable(name: "netmem", targets: ["netmem"]),
        .executable(name: "example-receive", targets: ["example-receive"]),
        .executable(name: "example-framed", targets: ["example-framed"]),
        .executable(name: "example-load", targets: ["example-load"]),
        // The NCCL network plugin: `swift build -c release --product nccl-net-netmem`
        // builds .build/release/libnccl-net-netmem.so (Swift runtime linked in statically).
        .library(name: "nccl-net-netmem", type: .dynamic, targets: ["CNetmemNCCLExports", "NetmemNCCL"]),
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
        // The CUDA driver API loaded at run time (dlopen, never linked): NetmemGPU only.
        .target(name: "CNetmemCUDA"),
        // CRC-32C (hardware chains, carry-less multiply folding): framing and the NCCL plugin.
        .target(name: "CNetmemCRC32C"),
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
            ]
        ),
        // Runs code with the calling thread in another network namespace (setns): the one
        // switcher the netlink clients, the AF_XDP lab and the benchmarks share.
        .target(
            name: "NetmemNamespace",
            dependencies: ["CNetmemLinux", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Network namespaces and veth pairs made with iproute2 for tests and `netmem bench`
        // (not a product): the one such fixture.
        .target(name: "NetmemLab"),
        // The frame format: header, parser, writer, CRC-32C. No transport.
        .target(
            name: "NetmemFraming",
            dependencies: ["NetmemDevice", "Netmem", "CNetmemLinux", "CNetmemCRC32C", .product(name: "SystemPackage", package: "swift-system")]
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
            ]
        ),
        .target(
            name: "NetmemKernel",
            dependencies: [
                "NetmemDevice", "NetmemNamespace", "Netmem", "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // A GPU driver on host memory, with fault injection: runs the GPU paths without a
        // GPU (tests, `--provider cuda:standin`). A test double, apart from NetmemGPU.
        .target(
            name: "NetmemGPUStandIn",
            dependencies: ["NetmemGPU", "NetmemDevice", "Netmem", "CNetmemLinux",
                           .product(name: "SystemPackage", package: "swift-system")]
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
                "NetmemSession", "NetmemURing", "NetmemFraming", "NetmemXDP", "NetmemDevice", "NetmemLab", "NetmemNamespace", "NetmemGPU",
                "Netmem", "CNetmemLinux", "CNetmemMallocCounter", "NetmemSHA256",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // GPU memory: a CUDA exporter loaded at run time (dlopen), pinned host staging,
        // bounce copies and the unpack step.
        .target(
            name: "NetmemGPU",
            dependencies: [
                "NetmemDevice", "Netmem", "CNetmemLinux", "CNetmemCUDA",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // What this machine can do for every data path (`netmem doctor`): above them all,
        // it asks each one's own probe.
        .target(
            name: "NetmemDoctor",
            dependencies: [
                "NetmemURing", "NetmemKernel", "NetmemGPU", "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The NCCL network-plugin ABI (struct layouts, constants, logger calls).
        .target(name: "CNetmemNCCL"),
        // The plugin's exported tables (ncclNetPlugin_v11/_v10/_v9) over NetmemNCCL's
        // entry points; its link settings make the shared library self-contained.
        .target(
            name: "CNetmemNCCLExports",
            dependencies: ["CNetmemNCCL"],
            exclude: ["netmem-nccl.map"],
            linkerSettings: [.unsafeFlags(ncclPluginLinkFlags)]
        ),
        // The NCCL network plugin: comms over io_uring (ZeroCopySender, StreamReceiver).
        .target(
            name: "NetmemNCCL",
            dependencies: [
                "NetmemURing", "NetmemFraming", "NetmemDevice", "Netmem", "CNetmemLinux", "CNetmemCRC32C", "CNetmemNCCL",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Drives any NCCL net plugin (dlopen) as NCCL does: `netmem nccl check`, `netmem bench nccl`.
        .target(
            name: "NetmemNCCLCheck",
            dependencies: [
                "Netmem", "CNetmemLinux", "CNetmemNCCL",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "netmem",
            dependencies: [
                "Netmem", "NetmemDevice", "NetmemFraming", "NetmemURing", "NetmemXDP", "NetmemKernel", "NetmemGPU",
                "NetmemDoctor", "NetmemNamespace", "NetmemCommandLine", "NetmemLab",
                "NetmemSession", "NetmemMetrics", "NetmemBench", "NetmemNCCLCheck", "NetmemGPUStandIn", "CNetmemMallocCounter",
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
            dependencies: ["NetmemFuzzSupport", "NetmemXDP", "NetmemLab"],
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
        .testTarget(name: "NetmemURingTests", dependencies: ["NetmemURing", "NetmemLab", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
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
        .testTarget(name: "NetmemXDPTests", dependencies: ["NetmemXDP", "NetmemNamespace", "NetmemLab", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
        .testTarget(name: "NetmemGPUTests", dependencies: ["NetmemGPU", "NetmemGPUStandIn", "NetmemBench", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
        .testTarget(name: "NetmemCommandLineTests", dependencies: ["NetmemCommandLine"]),
        .testTarget(name: "NetmemKernelTests", dependencies: ["NetmemKernel", "NetmemLab", "NetmemDevice", "Netmem", "NetmemTestSupport"]),
        .testTarget(name: "NetmemNamespaceTests", dependencies: ["NetmemNamespace", "NetmemLab"]),
        .testTarget(name: "NetmemDoctorTests", dependencies: ["NetmemDoctor", "NetmemURing", "NetmemKernel", "NetmemGPU"]),
        .testTarget(
            name: "NetmemNCCLTests",
            dependencies: ["NetmemNCCL", "NetmemNCCLCheck", "CNetmemNCCL", "Netmem", "NetmemTestSupport"],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

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
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
    ],
    targets: [
        // Kernel ABI structs/constants and thin syscall wrappers (cnm_ prefix).
        .target(name: "CNetmemLinux"),
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
        .target(
            name: "NetmemURing",
            dependencies: [
                "NetmemDevice", "Netmem", "CNetmemLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
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
                "NetmemURing", "NetmemDevice", "Netmem", "CNetmemLinux", "CNetmemNCCL",
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
                "Netmem", "NetmemDevice", "NetmemURing", "NetmemXDP", "NetmemKernel", "NetmemGPU",
                "NetmemNCCLCheck", "CNetmemMallocCounter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(name: "NetmemTests", dependencies: ["Netmem", "CNetmemLinux"]),
        .testTarget(name: "NetmemDeviceTests", dependencies: ["NetmemDevice", "Netmem"]),
        .testTarget(
            name: "NetmemURingTests",
            dependencies: ["NetmemURing", "NetmemDevice", "Netmem", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(name: "NetmemXDPTests", dependencies: ["NetmemXDP", "NetmemDevice", "Netmem"]),
        .testTarget(name: "NetmemGPUTests", dependencies: ["NetmemGPU", "NetmemDevice", "Netmem"]),
        .testTarget(name: "NetmemKernelTests", dependencies: ["NetmemKernel", "NetmemDevice", "Netmem"]),
        .testTarget(
            name: "NetmemNCCLTests",
            dependencies: ["NetmemNCCL", "NetmemNCCLCheck", "CNetmemNCCL", "Netmem"],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

import ArgumentParser
import NetmemSHA256
import Glibc
import Netmem
import NetmemBench
import NetmemDevice
import NetmemGPU
import NetmemGPUStandIn
import NetmemSession
import NetmemURing

// GPU memory for the CLI: `--provider cuda[:N]` (and `cuda:standin`, the host stand-in)
// for recv, demo and load; `--gpu-landing pinned|bounce`; bench numbers.
// The commands call into this file; the logic lives in NetmemGPU.

/// `--provider host|hugepage|memfd|cuda|cuda:N|cuda:standin`.
enum CLIMemoryProvider: ExpressibleByArgument, Sendable, Equatable, CustomStringConvertible {
    case standard(CLIProviderKind)
    case gpu(GPUProviderSpec)

    init?(argument: String) {
        if let kind = CLIProviderKind(rawValue: argument) {
            self = .standard(kind)
        } else if let spec = try? GPUProviderSpec(parsing: argument) {
            self = .gpu(spec)
        } else {
            return nil
        }
    }

    static var allValueStrings: [String] { CLIProviderKind.allCases.map(\.rawValue) + ["cuda", "cuda:N", "cuda:standin"] }
    static var defaultCompletionKind: CompletionKind { .list(CLIProviderKind.allCases.map(\.rawValue) + ["cuda", "cuda:standin"]) }

    var description: String {
        switch self {
        case let .standard(k): return k.rawValue
        case let .gpu(s): return s.description
        }
    }

    /// The name as the commands print it (same as `CLIProviderKind.rawValue`).
    var rawValue: String { description }

    var gpu: GPUProviderSpec? {
        if case let .gpu(s) = self { return s }
        return nil
    }

    /// The host/hugepage/memfd kind, nil for a GPU provider.
    var standardKind: CLIProviderKind? {
        if case let .standard(k) = self { return k }
        return nil
    }

    /// The receive session's memory for this provider (opening the GPU driver).
    func sessionMemory(landing: CLIGPULanding) throws -> ReceiveSession.Memory {
        switch self {
        case .standard(.host): return .host
        case .standard(.hugepage): return .hugePages
        case .standard(.memfd): return .memfdRegion
        case let .gpu(spec): return .gpu(try CLIGPU.driver(spec), landing.landing)
        }
    }
}

/// The GPU driver a `--provider cuda…` value names: CUDA, or the host stand-in (a test
/// double of its own module, which only the command line and tests link).
enum CLIGPU {
    static func driver(_ spec: GPUProviderSpec) throws -> any GPUDriver {
        switch spec.backend {
        case .standIn: return HostStandInDriver()
        case .cuda: return try spec.makeDriver()
        }
    }
}

/// `--gpu-landing pinned|bounce`.
enum CLIGPULanding: String, ExpressibleByArgument, CaseIterable, Sendable {
    case pinned, bounce
    var landing: GPULanding { self == .pinned ? .pinned : .bounce }
}

/// `netmem load FILE --provider cuda[:N]`: the file is read into host chunks through
/// io_uring, copied into device memory (HtoD on one stream), and the SHA-256 is computed
/// over what is copied back from the device, so it checks the bytes in GPU memory.
enum CLIGPULoad {
    static func run(file: String, spec: GPUProviderSpec, chunkSize: Int, depth: Int, direct: Bool) throws -> [String] {
        var st = stat()
        guard stat(file, &st) == 0 else { throw CLIError("cannot read '\(file)': \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw CLIError("'\(file)' is not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw CLIError("'\(file)' is empty") }
        let driver = try CLIGPU.driver(spec)
        let region = try DeviceMemoryRegion.gpu(driver: driver, size: size, exportDmaBuf: driver.supportsDmaBufExport)
        let chunks = (size + chunkSize - 1) / chunkSize
        let host = try RegionMemory(kind: .host, chunkSize: chunkSize, chunkCount: chunks, name: "load gpu")
        let pool = host.pool
        let stream = try driver.makeStream()
        defer { driver.destroyStream(stream) }
        let t0 = CLIClock.now
        let loaded = try FileLoader.load(path: file, pool: pool, regions: host.regions,
                                         options: FileLoader.Options(inFlight: depth, direct: direct))
        let t1 = CLIClock.now
        var offset = 0
        let base = region.segments[0].deviceAddress
        for f in loaded.contents.fragments {
            let p = try host.region.bytes(of: f)
            try driver.copy(to: base + UInt64(offset), from: p.baseAddress!, count: f.length, on: stream)
            offset += f.length
        }
        try driver.synchronize(stream)
        let t2 = CLIClock.now
        let usedDirect = loaded.direct
        _ = consume loaded
        // Checksum what is in device memory: copy it back in pieces.
        var sha = SHA256()
        var piece = [UInt8](repeating: 0, count: min(offset, 8 << 20))
        var at = 0
        while at < offset {
            let n = min(piece.count, offset - at)
            try piece.withUnsafeMutableBytes { try region.copy(from: UInt64(at), length: n, into: $0) }
            piece.withUnsafeBytes { sha.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            at += n
        }
        let gb = { (s: Double) in CLIFormat.fixed(s > 0 ? Double(offset) / s / 1e9 : 0, 2) }
        var lines = [
            "loaded \(CLIFormat.bytes(offset)) into \(spec) device memory (\(driver.deviceName)) in \(CLIFormat.fixed(t2 - t0, 3)) s: "
                + "\(gb(t2 - t0)) GB/s (file → host chunks \(gb(t1 - t0)) GB/s \(usedDirect ? "O_DIRECT" : "buffered"), "
                + "host → device \(gb(t2 - t1)) GB/s)",
            "sha256 \(CLIFormat.hex(sha.finalize()))  \(file)  (computed over the bytes copied back from the device)",
            "region: \(region)",
        ]
        if pool.inFlight != 0 { throw CLIError("\(pool.inFlight) chunks still in flight after release") }
        lines.append("pool: \(pool.stats)")
        return lines
    }
}

/// `netmem bench gpu`-style numbers: unpack and bounce GB/s on the given provider.
enum CLIGPUBench {
    static func run(spec: GPUProviderSpec, messageSize: Int, fragmentSize: Int, totalBytes: Int, inFlight: Int) throws -> [GPUBench.Result] {
        let driver = try CLIGPU.driver(spec)
        let p = GPUBench.Parameters(messageSize: messageSize, fragmentSize: fragmentSize, totalBytes: totalBytes, inFlight: inFlight)
        return [try GPUBench.unpack(driver: driver, p), try GPUBench.bounce(driver: driver, p)]
    }
}

import ArgumentParser
import Crypto
import Glibc
import Netmem
import NetmemDevice
import NetmemGPU
import NetmemKernel
import NetmemURing

// GPU memory for the CLI: `--provider cuda[:N]` (and `cuda:standin`, the host stand-in)
// for recv, demo and load; `--gpu-landing pinned|bounce`; doctor lines; bench numbers.
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
}

/// `--gpu-landing pinned|bounce`.
enum CLIGPULanding: String, ExpressibleByArgument, CaseIterable, Sendable {
    case pinned, bounce
    var landing: GPULanding { self == .pinned ? .pinned : .bounce }
}

/// The receive memory of a GPU provider, and what the consumer does with each message:
///
/// - pinned: the page pool draws chunks from a binding over a pinned host region (payload
///   lands where the GPU reads it in place); each message is then unpacked into one
///   contiguous device buffer (DtoD copies from the pinned mapping), tokens back when the
///   batch completes.
/// - bounce: the pool draws host chunks; each message is copied into a device ring
///   (HtoD), tokens back when the copy completes.
final class CLIGPUReceiveMemory {
    let spec: GPUProviderSpec
    let landing: CLIGPULanding
    let driver: any GPUDriver
    /// The page pool's provider.
    let provider: any MemoryProvider
    /// The CPU-readable area the pool's chunks are in.
    let area: NetmemArea
    let binding: DevmemBinding?
    /// The (virtual) receive queue the pinned region is bound to.
    let queue = ReceiveQueue(interface: "gpu-loopback", index: 0)
    /// The device memory messages go to: the unpack destination (pinned) or the bounce ring.
    let deviceRegion: DeviceMemoryRegion
    /// Bytes one message may take in device memory.
    let slotSize: Int
    let slots: Int

    /// `chunkCount` chunks of `chunkSize` bytes of receive memory, and device memory for
    /// `inFlight` messages of up to `maxMessage` bytes.
    init(spec: GPUProviderSpec, landing: CLIGPULanding, chunkSize: Int, chunkCount: Int, maxMessage: Int,
         inFlight: Int = 8) throws {
        self.spec = spec
        self.landing = landing
        driver = try spec.makeDriver()
        slotSize = (max(maxMessage, chunkSize) + 4095) & ~4095
        slots = inFlight
        deviceRegion = try DeviceMemoryRegion.gpu(driver: driver, size: slotSize * inFlight, exportDmaBuf: false)
        switch landing {
        case .pinned:
            guard DevmemBinding.allowedChunkSizes.contains(chunkSize) else {
                throw CLIError("--gpu-landing pinned needs a chunk size of 4K, 64K or 2M (got \(CLIFormat.bytes(chunkSize)))")
            }
            let region = try DeviceMemoryRegion.pinnedHost(driver: driver, size: chunkSize * chunkCount)
            let b = try DevmemBinding(region: region, queues: [queue], chunkSize: chunkSize, registry: BindingRegistry())
            binding = b
            provider = b
            area = b.areas[0]
        case .bounce:
            let host = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunkCount)
            binding = nil
            provider = host
            area = host.area
        }
    }

    /// The receive path's page pool over this memory (call on the RX thread, or adopt
    /// ownership there).
    func makePool(poolSize: Int) throws -> PagePool {
        if let binding { return try binding.makePool(for: queue, poolSize: poolSize) }
        return try PagePool(PagePool.Configuration(provider: provider, poolSize: poolSize, name: "recv gpu bounce"))
    }

    /// The consumer side: takes each message's tokens (return them through `consumer`,
    /// the receive path's ledger) and moves its payload to the GPU.
    func makeConsumer(returningTo consumer: any TokenReturning) throws -> CLIGPUConsumer {
        switch landing {
        case .pinned:
            return CLIGPUConsumer(memory: self, unpacker: try Unpacker(driver: driver, maxInFlight: slots, consumer: consumer), copier: nil)
        case .bounce:
            let copier = try BounceCopier(driver: driver, destination: deviceRegion, consumer: consumer,
                                          configuration: BounceCopier.Configuration(maxInFlight: slots))
            return CLIGPUConsumer(memory: self, unpacker: nil, copier: copier)
        }
    }

    func describe() -> String {
        "\(spec) (\(driver.deviceName)), \(landing.rawValue) landing, device memory \(CLIFormat.bytes(deviceRegion.size))"
    }
}

/// Moves each received message to the GPU and gives its tokens back when the device
/// copy completes (it waits for that before taking the next message: the receive loop
/// has no idle hook to poll completions from). One thread (the receive thread) uses it.
final class CLIGPUConsumer {
    let memory: CLIGPUReceiveMemory
    let unpacker: Unpacker?
    let copier: BounceCopier?
    private var next = 0
    private(set) var messages = 0
    private(set) var bytes = 0
    private var seconds = 0.0

    init(memory: CLIGPUReceiveMemory, unpacker: Unpacker?, copier: BounceCopier?) {
        self.memory = memory
        self.unpacker = unpacker
        self.copier = copier
    }

    /// Takes the message (and its tokens). Throws a GPUError when the GPU side fails; the
    /// tokens are returned either way.
    func consume(_ message: Message) throws {
        let t0 = CLIClock.now
        defer { seconds += CLIClock.now - t0 }
        if let unpacker, let binding = memory.binding {
            let fragments = binding.regionFragments(message.fragments)
            let at = (next % memory.slots) * memory.slotSize
            next += 1
            try unpacker.unpack(fragments, from: binding.region, into: memory.deviceRegion, at: at)
            // The receive loop has no idle hook to poll from, and the ring needs this
            // message's buffers back to take the next one: wait for the batch here.
            _ = try unpacker.drain()
        } else if let copier {
            try copier.submit(message.fragments)
            for l in try copier.drain() { copier.release(l.id) }
        }
        messages += 1
        bytes += message.payloadLength
    }

    /// Waits for every copy still running (its tokens go back).
    func finish() throws {
        let t0 = CLIClock.now
        defer { seconds += CLIClock.now - t0 }
        if let unpacker { _ = try unpacker.drain() }
        if let copier { for l in try copier.drain() { copier.release(l.id) } }
    }

    func summaryLines() -> [String] {
        var lines = ["gpu: " + memory.describe()]
        if let u = unpacker { lines.append("gpu unpack: " + u.statistics.description) }
        if let c = copier { lines.append("gpu bounce: " + c.statistics.description) }
        let gbps = seconds > 0 ? Double(bytes) / seconds / 1e9 : 0
        lines.append("gpu: \(messages) messages, \(CLIFormat.bytes(bytes)) moved to the device; "
            + "\(CLIFormat.fixed(gbps, 2)) GB/s over the time spent issuing and waiting")
        return lines
    }
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
        let driver = try spec.makeDriver()
        let region = try DeviceMemoryRegion.gpu(driver: driver, size: size, exportDmaBuf: driver.supportsDmaBufExport)
        let chunks = (size + chunkSize - 1) / chunkSize
        let provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, name: "load gpu"))
        let stream = try driver.makeStream()
        defer { driver.destroyStream(stream) }
        let t0 = CLIClock.now
        let loaded = try FileLoader.load(path: file, pool: pool, options: FileLoader.Options(inFlight: depth, direct: direct))
        let t1 = CLIClock.now
        var offset = 0
        let base = region.segments[0].deviceAddress
        for (ref, length) in zip(loaded.chunks, loaded.lengths) {
            guard let p = ref.area.address(of: ref) else { continue }
            try driver.copy(to: base + UInt64(offset), from: p, count: length, on: stream)
            offset += length
        }
        try driver.synchronize(stream)
        let t2 = CLIClock.now
        loaded.release(to: pool)
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
                + "\(gb(t2 - t0)) GB/s (file → host chunks \(gb(t1 - t0)) GB/s \(loaded.direct ? "O_DIRECT" : "buffered"), "
                + "host → device \(gb(t2 - t1)) GB/s)",
            "sha256 \(CLIFormat.hex(sha.finalize()))  \(file)  (computed over the bytes copied back from the device)",
            "region: \(region)",
        ]
        if pool.inFlight != 0 { throw CLIError("\(pool.inFlight) chunks still in flight after release") }
        lines.append("pool: \(pool.stats)")
        return lines
    }
}

/// The CUDA lines of `netmem doctor`.
enum CLIGPUDoctor {
    static func checks(device: Int = 0) -> [DoctorCheck] {
        GPUDoctor.lines(device: device).map { l in
            let status: DoctorCheck.Status
            switch l.status {
            case .ok: status = .ok
            case .missing: status = .missing
            case .limited: status = .limited
            case .info: status = .info
            }
            return DoctorCheck(area: "cuda", subject: l.subject, status: status, detail: l.detail, checked: l.checked,
                               fix: l.fix, value: l.value)
        }
    }
}

/// `netmem bench gpu`-style numbers: unpack and bounce GB/s on the given provider.
enum CLIGPUBench {
    static func run(spec: GPUProviderSpec, messageSize: Int, fragmentSize: Int, totalBytes: Int, inFlight: Int) throws -> [GPUBench.Result] {
        let driver = try spec.makeDriver()
        let p = GPUBench.Parameters(messageSize: messageSize, fragmentSize: fragmentSize, totalBytes: totalBytes, inFlight: inFlight)
        return [try GPUBench.unpack(driver: driver, p), try GPUBench.bounce(driver: driver, p)]
    }
}

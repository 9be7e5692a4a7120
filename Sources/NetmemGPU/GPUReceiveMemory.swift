import Netmem
import NetmemDevice

/// Receive memory for landing network data on a GPU (`--provider cuda[:N]`), and the
/// device memory each message moves to:
///
/// - pinned: the page pool draws chunks from a binding over a pinned host region (payload
///   lands where the GPU reads it in place); each message is then unpacked into one
///   contiguous device buffer (device-to-device copies from the pinned mapping).
/// - bounce: the pool draws host chunks; each message is copied into a device ring
///   (host-to-device).
///
/// A receive session uses `provider`, `regions` and `makePool`; a consumer of its
/// messages uses `makeConsumer()`.
public final class GPUReceiveMemory: @unchecked Sendable {
    public let landing: GPULanding
    public let driver: any GPUDriver
    /// The page pool's provider.
    public let provider: any MemoryProvider
    /// Region coordinates of the receive chunks (the pinned region, or the host area).
    public let regions: RegionMap
    /// The binding of the pinned region (pinned landing).
    public let binding: DevmemBinding?
    /// The (virtual) receive queue the pinned region is bound to.
    public let queue = ReceiveQueue(interface: "gpu-loopback", index: 0)
    /// The device memory messages go to: the unpack destination (pinned) or the bounce ring.
    public let deviceRegion: DeviceMemoryRegion
    /// Bytes one message may take in device memory.
    public let slotSize: Int
    /// Messages moving to the device at once.
    public let slots: Int

    /// `chunkCount` chunks of `chunkSize` bytes of receive memory, and device memory for
    /// `inFlight` messages of up to `maxMessage` bytes.
    ///
    /// - Throws: `GPUError` when the driver, the device or its memory is missing, or the
    ///   chunk size does not suit the landing.
    public init(driver: any GPUDriver, landing: GPULanding, chunkSize: Int, chunkCount: Int, maxMessage: Int,
                inFlight: Int = 8) throws(GPUError) {
        self.landing = landing
        self.driver = driver
        slotSize = (max(maxMessage, chunkSize) + 4095) & ~4095
        slots = inFlight
        deviceRegion = try DeviceMemoryRegion.gpu(driver: driver, size: slotSize * inFlight, exportDmaBuf: false)
        switch landing {
        case .pinned:
            guard DevmemBinding.allowedChunkSizes.contains(chunkSize) else {
                throw .invalidArgument("pinned landing needs a chunk size of 4 KiB, 64 KiB or 2 MiB (got \(chunkSize) bytes)")
            }
            let region = try DeviceMemoryRegion.pinnedHost(driver: driver, size: chunkSize * chunkCount)
            do {
                let b = try DevmemBinding(region: region, queues: [queue], chunkSize: chunkSize, registry: BindingRegistry())
                binding = b
                provider = b
                regions = b.regionMap
            } catch { throw .region(error) }
        case .bounce:
            let host: HostPageProvider
            do { host = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunkCount) } catch { throw .region(.core(error)) }
            do { regions = try RegionMap(hostArea: host.area, kind: "host", keepingAlive: host) } catch { throw .region(error) }
            binding = nil
            provider = host
        }
    }

    /// The receive path's page pool over this memory (call on the RX thread, or adopt
    /// ownership there).
    public func makePool(poolSize: Int) throws(GPUError) -> PagePool {
        if let binding {
            do { return try binding.makePool(for: queue, poolSize: poolSize) } catch { throw .region(error) }
        }
        do {
            return try PagePool(PagePool.Configuration(provider: provider, poolSize: poolSize, name: "recv gpu bounce"))
        } catch { throw .region(.core(error)) }
    }

    /// A consumer that moves each message to the device.
    public func makeConsumer() throws(GPUError) -> GPUMessageConsumer {
        switch landing {
        case .pinned:
            return GPUMessageConsumer(memory: self, unpacker: try Unpacker(driver: driver, maxInFlight: slots), copier: nil)
        case .bounce:
            let copier = try BounceCopier(driver: driver, destination: deviceRegion,
                                          configuration: BounceCopier.Configuration(maxInFlight: slots))
            return GPUMessageConsumer(memory: self, unpacker: nil, copier: copier)
        }
    }

    public var description: String {
        "\(driver.kind) \(driver.deviceName), \(landing.rawValue) landing, device memory \(deviceRegion.size) bytes"
    }
}

/// Moves each received message to the GPU and lets it go (its tokens back) when the
/// device copy completes. It waits for that before taking the next message, so the
/// receive ring gets the message's buffers back. One thread uses it.
public final class GPUMessageConsumer {
    public let memory: GPUReceiveMemory
    public let unpacker: Unpacker?
    public let copier: BounceCopier?
    private var next = 0
    public private(set) var messages = 0
    public private(set) var bytes = 0
    /// Time spent issuing and waiting for device copies.
    public private(set) var busy: Duration = .zero

    init(memory: GPUReceiveMemory, unpacker: Unpacker?, copier: BounceCopier?) {
        self.memory = memory
        self.unpacker = unpacker
        self.copier = copier
    }

    /// Moves the message's payload to device memory.
    ///
    /// - Throws: `GPUError` when the device copy fails; the message is let go either way.
    public func consume(_ message: Message) throws(GPUError) {
        let t0 = ContinuousClock.now
        defer { busy += ContinuousClock.now - t0 }
        if let unpacker {
            let at = (next % memory.slots) * memory.slotSize
            next += 1
            try unpacker.unpack(message, into: memory.deviceRegion, at: at)
            _ = try unpacker.drain()
        } else if let copier {
            try copier.submit(message)
            for l in try copier.drain() { copier.release(l.id) }
        }
        messages += 1
        bytes += message.payloadLength
    }

    /// Waits for every copy still running (their messages are let go).
    public func finish() throws(GPUError) {
        let t0 = ContinuousClock.now
        defer { busy += ContinuousClock.now - t0 }
        if let unpacker { _ = try unpacker.drain() }
        if let copier { for l in try copier.drain() { copier.release(l.id) } }
    }

    /// One line per fact, for summaries.
    public var summaryLines: [String] {
        var lines = ["gpu: " + memory.description]
        if let u = unpacker { lines.append("gpu unpack: " + u.statistics.description) }
        if let c = copier { lines.append("gpu bounce: " + c.statistics.description) }
        let c = busy.components
        let seconds = Double(c.seconds) + Double(c.attoseconds) / 1e18
        let gbps = seconds > 0 ? Double(bytes) / seconds / 1e9 : 0
        lines.append("gpu: \(messages) messages, \(bytes) bytes moved to the device; "
            + "\((gbps * 100).rounded() / 100) GB/s over the time spent issuing and waiting")
        return lines
    }
}

import Netmem
import NetmemDevice
import NetmemGPU
import Synchronization
import SystemPackage

/// Which memory received data lands in.
public enum MemoryKind: Sendable, CustomStringConvertible {
    /// Anonymous host pages (`HostPageProvider`).
    case host
    /// 2 MiB huge pages (`HugePageProvider`), falling back to transparent huge pages
    /// when none are reserved.
    case hugePages
    /// A sealed memfd another process can map (`SharedMemoryProvider`).
    case sharedMemory
    /// A memfd region cut into `Configuration.segments` scatter-gather segments and
    /// bound through a `DevmemBinding` to a virtual loopback queue, as a dma-buf is
    /// bound to a NIC queue.
    case memfdRegion
    /// GPU memory of `driver` (a `CUDADriver`, or a stand-in): received data lands in
    /// pinned host memory the GPU reads in place, or in host chunks copied to the GPU
    /// (`landing`); see `GPUReceiveMemory`.
    case gpu(any GPUDriver, GPULanding)

    public var description: String {
        switch self {
        case .host: return "host"
        case .hugePages: return "hugepage"
        case .sharedMemory: return "shared memfd"
        case .memfdRegion: return "memfd region"
        case let .gpu(driver, landing): return "\(driver.kind) \(driver.deviceName) (\(landing) landing)"
        }
    }
}

/// Memory data lands in, made from a `MemoryKind`: the provider, a page pool over it, the
/// region its chunks lie in (and where), and the binding or GPU memory behind them. A
/// receive session makes one; a file load or an application can make its own.
public struct RegionMemory: Sendable {
    /// The provider the pool's chunks come from.
    public let provider: any MemoryProvider
    /// The pool, owned by the thread that made it until another adopts it.
    public let pool: PagePool
    /// Region coordinates of the pool's chunks.
    public let regions: RegionMap
    /// The binding of a memfd region (or of pinned GPU landing).
    public let binding: DevmemBinding?
    /// The GPU memory, for `MemoryKind.gpu`; nil otherwise.
    public let gpu: GPUReceiveMemory?

    /// The region every chunk lies in.
    public var region: DeviceMemoryRegion { regions.region }

    private static let nextQueue = Atomic<Int>(0)

    init(provider: any MemoryProvider, pool: PagePool, regions: RegionMap, binding: DevmemBinding? = nil,
         gpu: GPUReceiveMemory? = nil) {
        self.provider = provider
        self.pool = pool
        self.regions = regions
        self.binding = binding
        self.gpu = gpu
    }

    /// `chunkCount` chunks of `chunkSize` bytes of `kind` memory, with a pool of that
    /// many chunks owned by the calling thread. A memfd region is cut into `segments`
    /// scatter-gather segments and bound to a virtual loopback queue; `maxMessage` sizes
    /// the device memory of GPU landing.
    ///
    /// - Throws: `ReceiveSessionError` naming the memory, region or GPU setup that failed.
    public init(kind: MemoryKind, chunkSize: Int, chunkCount: Int, segments: Int = 1, maxMessage: Int? = nil,
                name: String = "netmem") throws(ReceiveSessionError) {
        self = try Self.make(kind: kind, chunkSize: chunkSize, chunks: chunkCount, segments: segments,
                             maxMessage: maxMessage ?? chunkSize, name: name)
    }

    private static func make(kind: MemoryKind, chunkSize: Int, chunks: Int, segments: Int, maxMessage: Int,
                         name: String) throws(ReceiveSessionError) -> RegionMemory {
        func pool(_ provider: any MemoryProvider) throws(ReceiveSessionError) -> PagePool {
            do {
                return try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, name: "\(name)"))
            } catch { throw .memory(error) }
        }
        func hostRegion(_ area: NetmemArea, _ kind: String, _ owner: AnyObject & Sendable,
                        fd: FileDescriptor? = nil) throws(ReceiveSessionError) -> RegionMap {
            do { return try RegionMap(hostArea: area, kind: kind, fileDescriptor: fd, keepingAlive: owner) } catch { throw .region(error) }
        }
        switch kind {
        case .host:
            let p: HostPageProvider
            // Populated up front: no page faults on the receive path, and a resident size that
            // does not creep up as chunks are first touched.
            do { p = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks, options: [.populate]) } catch { throw .memory(error) }
            return RegionMemory(provider: p, pool: try pool(p), regions: try hostRegion(p.area, "host", p))
        case .hugePages:
            let p: HugePageProvider
            do {
                p = try HugePageProvider(chunkSize: chunkSize, chunkCount: chunks, allowTransparentFallback: true)
            } catch { throw .memory(error) }
            return RegionMemory(provider: p, pool: try pool(p), regions: try hostRegion(p.area, "hugepage", p))
        case .sharedMemory:
            let p: SharedMemoryProvider
            do {
                p = try SharedMemoryProvider(name: "\(name)", chunkSize: chunkSize, chunkCount: chunks)
            } catch { throw .memory(error) }
            return RegionMemory(provider: p, pool: try pool(p),
                               regions: try hostRegion(p.area, "shared memfd", p, fd: p.fileDescriptor))
        case .memfdRegion:
            do throws(DeviceMemoryError) {
                let region = try DeviceMemoryRegion(exporter: MemfdExporter(
                    size: chunks * chunkSize, segmentCount: segments, segmentAlignment: chunkSize,
                    name: "\(name)-region"))
                let queue = ReceiveQueue(interface: "loopback", index: nextQueue.add(1, ordering: .relaxed).newValue)
                let binding = try DevmemBinding(region: region, queues: [queue], chunkSize: chunkSize)
                let pool = try binding.makePool(for: queue, poolSize: chunks)
                return RegionMemory(provider: binding, pool: pool, regions: binding.regionMap, binding: binding)
            } catch {
                throw .region(error)
            }
        case let .gpu(driver, landing):
            do throws(GPUError) {
                let memory = try GPUReceiveMemory(driver: driver, landing: landing, chunkSize: chunkSize,
                                                  chunkCount: chunks, maxMessage: maxMessage)
                return RegionMemory(provider: memory.provider, pool: try memory.makePool(poolSize: chunks),
                                   regions: memory.regions, binding: memory.binding, gpu: memory)
            } catch {
                throw .gpu(error.description)
            }
        }
    }
}

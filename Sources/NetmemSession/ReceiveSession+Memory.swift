import Netmem
import NetmemDevice
import NetmemGPU
import Synchronization
import SystemPackage

extension ReceiveSession {
    /// The memory of a session: provider, pool, region coordinates, and the binding or
    /// GPU memory behind them.
    struct MemorySetup {
        var provider: any MemoryProvider
        var pool: PagePool
        var regions: RegionMap
        var binding: DevmemBinding?
        var gpu: GPUReceiveMemory?

        private static let nextQueue = Atomic<Int>(0)

        /// Makes the configured memory (the pool is owned by the calling thread until the
        /// RX thread adopts it).
        static func make(_ c: Configuration) throws(ReceiveSessionError) -> MemorySetup {
            let chunks = c.chunkCount
            func pool(_ provider: any MemoryProvider) throws(ReceiveSessionError) -> PagePool {
                do {
                    return try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, name: "\(c.name) recv"))
                } catch { throw .memory(error) }
            }
            func hostRegion(_ area: NetmemArea, _ kind: String, _ owner: AnyObject & Sendable,
                            fd: FileDescriptor? = nil) throws(ReceiveSessionError) -> RegionMap {
                do { return try RegionMap(hostArea: area, kind: kind, fileDescriptor: fd, keepingAlive: owner) } catch { throw .region(error) }
            }
            switch c.memory {
            case .host:
                let p: HostPageProvider
                do { p = try HostPageProvider(chunkSize: c.chunkSize, chunkCount: chunks) } catch { throw .memory(error) }
                return MemorySetup(provider: p, pool: try pool(p), regions: try hostRegion(p.area, "host", p))
            case .hugePages:
                let p: HugePageProvider
                do {
                    p = try HugePageProvider(chunkSize: c.chunkSize, chunkCount: chunks, allowTransparentFallback: true)
                } catch { throw .memory(error) }
                return MemorySetup(provider: p, pool: try pool(p), regions: try hostRegion(p.area, "hugepage", p))
            case .sharedMemory:
                let p: SharedMemoryProvider
                do {
                    p = try SharedMemoryProvider(name: "\(c.name)-recv", chunkSize: c.chunkSize, chunkCount: chunks)
                } catch { throw .memory(error) }
                return MemorySetup(provider: p, pool: try pool(p),
                                   regions: try hostRegion(p.area, "shared memfd", p, fd: p.fileDescriptor))
            case .memfdRegion:
                do throws(DeviceMemoryError) {
                    let region = try DeviceMemoryRegion(exporter: MemfdExporter(
                        size: chunks * c.chunkSize, segmentCount: c.segments, segmentAlignment: c.chunkSize,
                        name: "\(c.name)-region"))
                    let queue = ReceiveQueue(interface: "loopback", index: nextQueue.add(1, ordering: .relaxed).newValue)
                    let binding = try DevmemBinding(region: region, queues: [queue], chunkSize: c.chunkSize)
                    let pool = try binding.makePool(for: queue, poolSize: chunks)
                    return MemorySetup(provider: binding, pool: pool, regions: binding.regionMap, binding: binding)
                } catch {
                    throw .region(error)
                }
            case let .gpu(spec, landing):
                do throws(GPUError) {
                    let maxMessage: Int
                    if case let .framed(maxPayload) = c.mode { maxMessage = maxPayload } else { maxMessage = c.chunkSize }
                    let memory = try GPUReceiveMemory(spec: spec, landing: landing, chunkSize: c.chunkSize,
                                                      chunkCount: chunks, maxMessage: maxMessage)
                    return MemorySetup(provider: memory.provider, pool: try memory.makePool(poolSize: chunks),
                                       regions: memory.regions, binding: memory.binding, gpu: memory)
                } catch {
                    throw .gpu(error.description)
                }
            }
        }
    }
}

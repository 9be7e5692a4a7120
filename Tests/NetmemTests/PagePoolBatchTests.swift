import Glibc
import Netmem
import NetmemTestSupport
import Synchronization
import Testing

/// A provider with two areas that hands out their chunks alternately, so a pool's cache
/// holds chunks of its home area and of another (the pool's per-batch area check and its
/// per-chunk lookup path both run).
final class TwoAreaProvider: MemoryProvider {
    let first: HostPageProvider
    let second: HostPageProvider
    private let turn = Atomic<Int>(0)

    init(chunkSize: Int, chunksEach: Int) throws {
        first = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunksEach)
        second = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunksEach)
    }

    var chunkSize: Int { first.chunkSize }
    var available: Int { first.describe().available + second.describe().available }

    func allocateChunks(into buffer: UnsafeMutableBufferPointer<NetmemRef>) -> Int {
        var n = 0
        var misses = 0
        while n < buffer.count && misses < 2 {
            let from = turn.wrappingAdd(1, ordering: .relaxed).oldValue & 1 == 0 ? first : second
            let got = from.allocateChunks(into: UnsafeMutableBufferPointer(rebasing: buffer[n..<(n + 1)]))
            misses = got == 0 ? misses + 1 : 0
            n += got
        }
        return n
    }

    func releaseChunk(_ ref: NetmemRef) -> ChunkRelease {
        ref.areaID == first.area.id ? first.releaseChunk(ref) : second.releaseChunk(ref)
    }

    func describe() -> ProviderDescription { first.describe() }
}

@Suite struct PagePoolBatchTests {
    /// Seeded random single and batch allocations and returns (owner and another thread)
    /// on a pool whose chunks come from two areas: nothing is handed out twice, the
    /// in-flight count follows, and everything goes home.
    @Test func twoAreasKeepEveryChunkOnce() throws {
        let foreign = WorkerThread()
        defer { foreign.join() }
        for seed in 0..<200 as Range<UInt64> {
            var rng = SplitMix64(seed: 0xBA7C_0000 + seed)
            let provider = try TwoAreaProvider(chunkSize: 4096, chunksEach: 48)
            var config = PagePool.Configuration(provider: provider, poolSize: 80)
            config.cacheSize = Int.random(in: 4...64, using: &rng)
            config.refillBatch = Int.random(in: 1...32, using: &rng)
            config.ringSize = Int.random(in: 8...128, using: &rng)
            let pool = try PagePool(config)
            var out = Set<NetmemRef>()
            var order: [NetmemRef] = []
            func note(_ r: NetmemRef) {
                #expect(!out.contains(r), "seed \(seed): \(r) handed out twice")
                out.insert(r)
                order.append(r)
            }
            for _ in 0..<300 {
                switch Int.random(in: 0..<6, using: &rng) {
                case 0:
                    if let r = pool.allocate() { note(r) }
                case 1, 2:
                    var buf = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: Int.random(in: 1...40, using: &rng))
                    let n = buf.withUnsafeMutableBufferPointer { pool.allocate(into: $0) }
                    #expect(n == min(buf.count, 80 - out.count), "seed \(seed): bulk allocate gave \(n)")
                    buf[0..<n].forEach(note)
                default:
                    guard !order.isEmpty else { continue }
                    let k = Int.random(in: 1...min(order.count, 40), using: &rng)
                    var batch: [NetmemRef] = []
                    for _ in 0..<k { batch.append(order.remove(at: Int.random(in: 0..<order.count, using: &rng))) }
                    batch.forEach { out.remove($0) }
                    let sent = batch
                    let give: @Sendable () -> Void = {
                        if sent.count == 1 { pool.recycle(sent[0]) } else { sent.withUnsafeBufferPointer { pool.recycle($0) } }
                    }
                    if Bool.random(using: &rng) { foreign.run(give) } else { give() }
                }
                #expect(pool.inFlight == out.count, "seed \(seed): in flight \(pool.inFlight), model \(out.count)")
            }
            pool.destroy()
            let rest = order
            rest.withUnsafeBufferPointer { pool.recycle($0) }
            #expect(pool.shutdownStatus == .finished, "seed \(seed): \(pool.shutdownStatus)")
            #expect(provider.available == 96, "seed \(seed): provider has \(provider.available) of 96")
        }
    }

    @Test func batchHoldingOneBufferTwiceTraps() async throws {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 64)
            let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
            var refs = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 8)
            _ = refs.withUnsafeMutableBufferPointer { pool.allocate(into: $0) }
            refs[5] = refs[2]
            refs.withUnsafeBufferPointer { pool.recycle($0) }
        }
        #expect(String(decoding: try #require(result).standardErrorContent, as: UTF8.self).contains("double return"))
    }

    @Test func batchFromAnotherThreadWithAReturnedBufferTraps() async throws {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 64)
            let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
            var refs = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 8)
            _ = refs.withUnsafeMutableBufferPointer { pool.allocate(into: $0) }
            pool.recycle(refs[3])
            let batch = refs
            TestThread { batch.withUnsafeBufferPointer { pool.recycle($0) } }.join()
        }
        #expect(String(decoding: try #require(result).standardErrorContent, as: UTF8.self).contains("double return"))
    }

    /// Two pools on one provider share its area, so the batch's area check passes and
    /// the owner field of the metadata word must catch it.
    @Test func batchOfAnotherPoolsBufferTraps() async throws {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 128)
            let a = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
            let b = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
            var fromA = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 4)
            var fromB = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 4)
            _ = fromA.withUnsafeMutableBufferPointer { a.allocate(into: $0) }
            _ = fromB.withUnsafeMutableBufferPointer { b.allocate(into: $0) }
            fromB[1] = fromA[0]
            fromB.withUnsafeBufferPointer { b.recycle($0) }
        }
        #expect(String(decoding: try #require(result).standardErrorContent, as: UTF8.self).contains("belongs to pool id"))
    }
}

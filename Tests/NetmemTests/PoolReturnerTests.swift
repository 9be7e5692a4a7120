import Netmem
import NetmemTestSupport
import Synchronization
import Testing

/// `PoolReturner`: returns from other threads gathered into batches for the recycle ring.
struct PoolReturnerTests {
    /// Chunks the owner allocates (up to `count`, fewer when the pool runs dry first).
    static func allocate(_ pool: PagePool, _ count: Int) -> [NetmemRef] {
        var refs: [NetmemRef] = []
        while refs.count < count, let r = pool.allocate() { refs.append(r) }
        return refs
    }

    @Test("four threads return odd counts through returners; every chunk is back exactly once")
    func manyThreadsReturnEverything() throws {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 1024)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 1024))
        let counts = [1, 37, 255, 700]
        var handedOut: [[NetmemRef]] = []
        for n in counts { handedOut.append(Self.allocate(pool, n)) }
        #expect(handedOut.map(\.count) == counts)
        #expect(pool.inFlight == counts.reduce(0, +))
        let threads = handedOut.enumerated().map { (i, refs) in
            TestThread {
                // Capacities that divide none of the counts, so each ends with a partial batch.
                var returner = PoolReturner(pool: pool, capacity: [32, 7, 64, 3][i])
                for r in refs { returner.recycle(r) }
                #expect(returner.count == refs.count % returner.capacity)
            }
        }
        for t in threads { t.join() }
        // Each returner handed its last partial batch over when it ended.
        #expect(pool.inFlight == 0)
        let again = Self.allocate(pool, 1024)
        #expect(again.count == 1024)
        #expect(Set(again.map(\.rawValue)).count == 1024, "a chunk came back twice or not at all")
        for r in again { pool.recycle(r) }
        #expect(pool.inFlight == 0)
    }

    @Test("held chunks are in flight until flush; on the owner thread a return goes to the cache")
    func heldUntilFlushAndOwnerGoesToCache() throws {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 64)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
        let refs = Self.allocate(pool, 6)
        let counts = Mutex<[Int]>([])
        TestThread {
            var returner = PoolReturner(pool: pool, capacity: 8)
            for r in refs.prefix(5) { returner.recycle(r) }
            counts.withLock { $0 += [returner.count, pool.inFlight] }
            returner.flush()
            counts.withLock { $0 += [returner.count, pool.inFlight] }
        }.join()
        #expect(counts.withLock { $0 } == [5, 6, 0, 1])
        let cached = pool.stats.recycle.cached
        var returner = PoolReturner(pool: pool)
        returner.recycle(refs[5])
        #expect(returner.count == 0)
        #expect(pool.stats.recycle.cached == cached + 1)
        #expect(pool.inFlight == 0)
    }

    @Test("a returner that ends after the pool was destroyed still brings the last chunks home")
    func endsAfterDestroy() throws {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 32)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 32))
        let refs = Self.allocate(pool, 10)
        pool.destroy()
        guard case .draining(let out, _) = pool.shutdownStatus else {
            Issue.record("not draining")
            return
        }
        #expect(out == 10)
        TestThread {
            var returner = PoolReturner(pool: pool)
            for r in refs { returner.recycle(r) }
        }.join()
        #expect(pool.shutdownStatus == .finished)
        #expect(provider.describe().available == 32)
    }

    @Test("batches of odd sizes across capacity boundaries, from two threads and two areas; every chunk back once")
    func batchesAcrossCapacity() throws {
        let provider = try TwoAreaProvider(chunkSize: 4096, chunksEach: 512)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 1024))
        let refs = Self.allocate(pool, 1000)
        #expect(refs.count == 1000)
        let halves = [Array(refs[0..<500]), Array(refs[500...])]
        let threads = halves.enumerated().map { (i, part) in
            TestThread {
                var returner = PoolReturner(pool: pool, capacity: [64, 29][i])
                var at = 0
                var size = 1
                while at < part.count {
                    let n = Swift.min(size, part.count - at)
                    part[at..<(at + n)].withUnsafeBufferPointer { returner.recycle($0) }
                    at += n
                    size = size * 3 % 97 + 1  // 1, 4, 13, 40, 24, 73, …: some larger than the capacity
                }
            }
        }
        for t in threads { t.join() }
        #expect(pool.inFlight == 0)
        let again = Self.allocate(pool, 1024)
        #expect(again.count == 1024)
        #expect(Set(again.map(\.rawValue)).count == 1024, "a chunk came back twice or not at all")
        for r in again { pool.recycle(r) }
    }

    @Test func batchWithABufferAlreadyHeldTraps() async throws {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 64)
            let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
            var refs = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 8)
            _ = refs.withUnsafeMutableBufferPointer { pool.allocate(into: $0) }
            let batch = refs
            TestThread {
                var returner = PoolReturner(pool: pool)
                returner.recycle(batch[6])
                batch.withUnsafeBufferPointer { returner.recycle($0) }  // batch[6] again: traps
            }.join()
        }
        #expect(String(decoding: try #require(result).standardErrorContent, as: UTF8.self).contains("double return"))
    }

    @Test func doubleReturnThroughAReturnerTrapsAtTheCall() async throws {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 64)
            let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
            let r = try #require(pool.allocate())
            TestThread {
                var returner = PoolReturner(pool: pool)
                returner.recycle(r)
                returner.recycle(r)  // still held by the returner: traps here
            }.join()
        }
        #expect(String(decoding: try #require(result).standardErrorContent, as: UTF8.self).contains("double return"))
    }

    @Test func returnToTheWrongPoolThroughAReturnerTraps() async throws {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 128)
            let a = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
            let b = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
            _ = b.allocate()
            let fromA = try #require(a.allocate())
            TestThread {
                var returner = PoolReturner(pool: b)
                returner.recycle(fromA)
            }.join()
        }
        #expect(String(decoding: try #require(result).standardErrorContent, as: UTF8.self).contains("belongs to pool id"))
    }
}

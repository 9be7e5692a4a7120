import Glibc
import Netmem
import NetmemTestSupport
import Testing

@Suite struct PagePoolTests {
    @Test func configurationErrorsAreTyped() throws {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 4)
        var c = PagePool.Configuration(provider: provider, chunkSize: 3000, poolSize: 4)
        #expect(throws: NetmemError.self) { try PagePool(c) }
        c.chunkSize = 1024
        #expect(throws: NetmemError.self) { try PagePool(c) }
        c.chunkSize = 8192
        #expect(throws: NetmemError.chunkSizeMismatch(pool: 8192, provider: 4096)) { try PagePool(c) }
        c.chunkSize = 4096
        c.poolSize = 0
        #expect(throws: NetmemError.invalidChunkCount(0)) { try PagePool(c) }
        c.poolSize = 4
        c.fragmentSize = 5000
        #expect(throws: NetmemError.fragmentLargerThanChunk(fragment: 5000, chunk: 4096)) { try PagePool(c) }
        c.fragmentSize = 1500
        _ = try PagePool(c)
    }

    @Test func allocationTiersAreCounted() throws {
        let (pool, provider) = try makeHostPool(chunks: 200, poolSize: 200)
        // First allocation: bulk from the provider (slow), then the rest of the batch is cached.
        let a = try #require(pool.allocate())
        #expect(pool.stats.alloc.slow == 1)
        let b = try #require(pool.allocate())
        #expect(pool.stats.alloc.fast == 1)
        #expect(a != b)
        pool.recycle(a)
        #expect(pool.stats.recycle.cached == 1)
        // Direct recycling: the next allocation gets the same chunk back (LIFO cache).
        #expect(pool.allocate() == a)
        #expect(pool.inFlight == 2)
        pool.recycle(a)
        pool.recycle(b)
        #expect(pool.inFlight == 0)
        #expect(pool.held == 64)
        #expect(provider.describe().available == 200 - 64)
    }

    @Test func exhaustionReturnsNilAndCountsEmpty() throws {
        let (pool, _) = try makeHostPool(chunks: 16, poolSize: 10)
        var refs: [NetmemRef] = []
        while let r = pool.allocate() { refs.append(r) }
        #expect(refs.count == 10)
        #expect(Set(refs).count == 10)
        #expect(pool.stats.alloc.empty >= 1)
        for r in refs { pool.recycle(r) }
        #expect(pool.inFlight == 0)
    }

    @Test func returnsFromOtherThreadsGoThroughTheRing() throws {
        let (pool, _) = try makeHostPool(chunks: 64, poolSize: 64)
        var refs: [NetmemRef] = []
        for _ in 0..<32 { refs.append(try #require(pool.allocate())) }
        let toReturn = refs
        TestThread { for r in toReturn { pool.recycle(r) } }.join()
        let s = pool.stats
        #expect(s.recycle.ring == 32)
        #expect(s.recycle.cached == 0)
        #expect(pool.inFlight == 0)
        // Drain the cache, then the next allocation refills from the ring.
        var again: [NetmemRef] = []
        while let r = pool.allocate() { again.append(r) }
        #expect(Set(again) .isSuperset(of: Set(refs)))
        #expect(pool.stats.alloc.refill >= 1)
        for r in again { pool.recycle(r) }
    }

    @Test func fullRingSendsChunksToTheProvider() throws {
        let (pool, provider) = try makeHostPool(chunks: 64, poolSize: 64, ringSize: 4)
        var refs: [NetmemRef] = []
        for _ in 0..<20 { refs.append(try #require(pool.allocate())) }
        let before = provider.describe().available
        let toReturn = refs
        TestThread { for r in toReturn { pool.recycle(r) } }.join()
        let s = pool.stats
        #expect(s.recycle.ring == 4)
        #expect(s.recycle.ringFull == 16)
        #expect(provider.describe().available == before + 16)
        #expect(pool.inFlight == 0)
    }

    @Test func bulkAllocationAndReturn() throws {
        let (pool, _) = try makeHostPool(chunks: 256, poolSize: 256)
        var buf = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: 100)
        let n = buf.withUnsafeMutableBufferPointer { pool.allocate(into: $0) }
        #expect(n == 100)
        #expect(Set(buf).count == 100)
        buf[0..<50].withUnsafeBufferPointer { pool.recycle($0) }
        let rest = Array(buf[50...])
        TestThread { rest.withUnsafeBufferPointer { pool.recycle($0) } }.join()
        #expect(pool.inFlight == 0)
        #expect(pool.stats.recycle.ring == 50)
    }

    @Test func fragmentsShareAChunkAndRecycleItWithTheLastOne() throws {
        let (pool, _) = try makeHostPool(chunkSize: 65536, chunks: 8, fragmentSize: 1500)
        var frags: [NetmemFragment] = []
        for _ in 0..<43 { frags.append(try #require(pool.allocateFragment(length: 1448))) }
        // 1448 bytes rounded up to 1472: 44 fit in 64 KiB, so all 43 share one chunk.
        #expect(Set(frags.map(\.ref)).count == 1)
        #expect(Set(frags.map(\.offset)).count == 43)
        #expect(frags.allSatisfy { Int($0.offset) + Int($0.length) <= 65536 })
        let next = try #require(pool.allocateFragment(length: 1448))
        let third = try #require(pool.allocateFragment(length: 1448))
        #expect(next.ref == frags[0].ref)
        #expect(third.ref != frags[0].ref)  // the first chunk is full after 44
        #expect(pool.inFlight == 2)
        for f in frags { pool.releaseFragment(f) }
        #expect(pool.inFlight == 2)  // `next` still holds the first chunk
        pool.releaseFragment(next)
        #expect(pool.inFlight == 1)
        pool.releaseFragment(third)
        #expect(pool.inFlight == 1)  // still the carving chunk
        pool.destroy()
        #expect(pool.shutdownStatus == .finished)
    }

    @Test func retainedFragmentNeedsTwoReleases() throws {
        let (pool, _) = try makeHostPool(chunkSize: 4096, chunks: 4, fragmentSize: 4096)
        let f = try #require(pool.allocateFragment(length: 4096))
        pool.retainFragment(f)
        _ = try #require(pool.allocateFragment(length: 100))  // moves on: f's chunk is finished
        pool.releaseFragment(f)
        #expect(pool.inFlight == 2)
        pool.releaseFragment(f)
        #expect(pool.inFlight == 1)
    }

    @Test func leasedBufferReturnsItself() throws {
        let (pool, _) = try makeHostPool(chunks: 8)
        if let buffer = pool.lease() {
            buffer.withUnsafeMutableBytes { $0[0] = 42 }
            #expect(pool.inFlight == 1)
        } else {
            Issue.record("lease failed")
        }
        #expect(pool.inFlight == 0)
        guard let leased = pool.lease() else { Issue.record("lease failed"); return }
        let raw = leased.take()
        #expect(pool.inFlight == 1)
        pool.recycle(raw)
        #expect(pool.inFlight == 0)
    }

    @Test func destroyWaitsForInFlightBuffersAndWarns() throws {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 32)
        var config = PagePool.Configuration(provider: provider, poolSize: 32, name: "stall-test")
        config.stallWarningAfter = .zero
        let pool = try PagePool(config)
        let a = try #require(pool.allocate())
        let b = try #require(pool.allocate())
        pool.destroy()
        #expect(pool.allocate() == nil)
        guard case .draining(let out, _) = pool.shutdownStatus else { Issue.record("not draining"); return }
        #expect(out == 2)
        #expect(pool.stalledShutdownWarning?.hasPrefix("stalled pool shutdown: 2 in flight for ") == true)
        #expect(pool.stalledWarningsLogged >= 1)
        pool.recycle(a)
        TestThread { pool.recycle(b) }.join()
        #expect(pool.shutdownStatus == .finished)
        #expect(pool.stalledShutdownWarning == nil)
        #expect(provider.describe().available == 32)
        #expect(pool.held == 0)
    }

    @Test func stopAllocatingWaivesRingChunks() throws {
        let (pool, provider) = try makeHostPool(chunks: 16)
        let r = try #require(pool.allocate())
        pool.stopAllocating()
        #expect(pool.allocate() == nil)
        TestThread { pool.recycle(r) }.join()
        _ = pool.pollShutdown()
        #expect(provider.describe().available == 16)
    }

    @Test func doubleReturnTraps() async {
        await #expect(processExitsWith: .failure) {
            let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 4)
            let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 4))
            let r = pool.allocate()!
            pool.recycle(r)
            pool.recycle(r)
        }
    }

    @Test func returnToTheWrongPoolTraps() async {
        await #expect(processExitsWith: .failure) {
            let p1 = try HostPageProvider(chunkSize: 4096, chunkCount: 4)
            let p2 = try HostPageProvider(chunkSize: 4096, chunkCount: 4)
            let a = try PagePool(PagePool.Configuration(provider: p1, poolSize: 4))
            let b = try PagePool(PagePool.Configuration(provider: p2, poolSize: 4))
            b.recycle(a.allocate()!)
        }
    }

    @Test func allocationOffTheOwningThreadTraps() async {
        await #expect(processExitsWith: .failure) {
            let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 4)
            let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 4))
            TestThread { _ = pool.allocate() }.join()
        }
    }
}

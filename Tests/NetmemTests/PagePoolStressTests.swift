import Glibc
import Netmem
import NetmemTestSupport
import Synchronization
import Testing

/// Several threads return buffers while the owner allocates; run under ThreadSanitizer
/// by `.ci/run`. Every buffer must come back exactly once and nothing be handed out twice.
@Suite struct PagePoolStressTests {
    @Test func manyReturningThreads() throws {
        let provider = try HostPageProvider(chunkSize: 2048, chunkCount: 1024)
        var config = PagePool.Configuration(provider: provider, poolSize: 1024, fragmentSize: 700)
        config.ringSize = 256
        let pool = try PagePool(config)
        let returners = 3
        let perRound = 64
        let rounds = 3000
        // Handed-out chunks travel to the returners through a mutex-protected queue.
        let queues = (0..<returners).map { _ in Locked<[NetmemRef]>([]) }
        let fragQueues = (0..<returners).map { _ in Locked<[NetmemFragment]>([]) }
        let stop = Flag()
        let out = (0..<1024).map { _ in Flag() }  // chunk index → currently out
        // What the returners gave back: whole chunks and fragments.
        let returnedChunks = Locked<Int>(0)
        let releasedFragments = Locked<Int>(0)

        // Real threads, not tasks: the cooperative pool has as many threads as cores,
        // and busy returners would starve the owner.
        var threads: [TestThread] = []
        for t in 0..<returners {
            threads.append(TestThread {
                while true {
                    let refs = queues[t].value.withLockChecked { q -> [NetmemRef] in defer { q.removeAll() }; return q }
                    let frags = fragQueues[t].value.withLockChecked { q -> [NetmemFragment] in defer { q.removeAll() }; return q }
                    if refs.isEmpty && frags.isEmpty {
                        if stop.value.load(ordering: .acquiring) { break }
                        sched_yield()
                        continue
                    }
                    for r in refs {
                        let wasOut = out[Int(r.chunk)].value.exchange(false, ordering: .acquiringAndReleasing)
                        precondition(wasOut, "\(r) came back but was not out")
                    }
                    if refs.count >= 2 && t == 0 {
                        refs.withUnsafeBufferPointer { pool.recycle($0) }
                    } else {
                        for r in refs { pool.recycle(r) }
                    }
                    for f in frags { pool.releaseFragment(f) }
                    returnedChunks.value.withLockChecked { $0 += refs.count }
                    releasedFragments.value.withLockChecked { $0 += frags.count }
                }
            })
        }
        let handed = Locked<Int>(0)
        let fragmentsHanded = Locked<Int>(0)
        let firstRound = Locked<Int>(0)
        let owner = TestThread {
            pool.adoptOwnership()
            var count = 0
            var fragmentCount = 0
            var failures = 0
            for round in 0..<rounds {
                var batch: [NetmemRef] = []
                for _ in 0..<perRound {
                    guard let r = pool.allocate() else { failures += 1; continue }
                    let wasOut = out[Int(r.chunk)].value.exchange(true, ordering: .acquiringAndReleasing)
                    precondition(!wasOut, "\(r) handed out while it was out")
                    batch.append(r)
                }
                var frags: [NetmemFragment] = []
                for _ in 0..<8 { if let f = pool.allocateFragment(length: 600) { frags.append(f) } }
                if round == 0 { firstRound.value.withLockChecked { $0 = batch.count } }
                let t = round % returners
                queues[t].value.withLockChecked { $0 += batch }
                fragQueues[(t + 1) % returners].value.withLockChecked { $0 += frags }
                count += batch.count
                fragmentCount += frags.count
                if failures > 100_000 { break }
                sched_yield()
            }
            handed.value.withLockChecked { $0 = count }
            fragmentsHanded.value.withLockChecked { $0 = fragmentCount }
        }
        owner.join()
        stop.value.store(true, ordering: .releasing)
        for t in threads { t.join() }
        // Invariants only (how far the owner got depends on scheduling): a fresh pool of
        // 1024 chunks serves the whole first round, every chunk handed out came back once,
        // and every fragment was released.
        #expect(firstRound.value.withLockChecked { $0 } == perRound)
        #expect(returnedChunks.value.withLockChecked { $0 } == handed.value.withLockChecked { $0 })
        #expect(releasedFragments.value.withLockChecked { $0 } == fragmentsHanded.value.withLockChecked { $0 })
        // Returned from other threads: the pool is whole again once the owner destroys it.
        pool.adoptOwnership()
        pool.destroy()
        let status = pool.shutdownStatus
        #expect(status == .finished)
        #expect(pool.inFlight == 0)
        #expect(provider.describe().available == 1024)
        #expect(out.allSatisfy { !$0.value.load(ordering: .relaxed) })
    }
}

final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}

final class Locked<T: Sendable>: Sendable {
    let value: Mutex<T>
    init(_ v: T) { value = Mutex(v) }
}

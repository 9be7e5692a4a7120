import Glibc
import Netmem
import Synchronization
import Testing

/// Several threads return buffers while the owner allocates; run under ThreadSanitizer
/// by `.ci/run`. Every buffer must come back exactly once and nothing be handed out twice.
@Suite struct PagePoolStressTests {
    @Test func manyReturningThreads() async throws {
        let provider = try HostPageProvider(chunkSize: 2048, chunkCount: 1024)
        var config = PagePool.Configuration(provider: provider, poolSize: 1024, fragmentSize: 700)
        config.ringSize = 256
        let pool = try PagePool(config)
        let returners = 3
        let perRound = 64
        let rounds = 600
        // Handed-out chunks travel to the returners through a mutex-protected queue.
        let queues = (0..<returners).map { _ in Locked<[NetmemRef]>([]) }
        let fragQueues = (0..<returners).map { _ in Locked<[NetmemFragment]>([]) }
        let stop = Flag()
        let out = (0..<1024).map { _ in Flag() }  // chunk index → currently out

        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<returners {
                group.addTask {
                    while true {
                        let refs = queues[t].value.withLock { q -> [NetmemRef] in defer { q.removeAll() }; return q }
                        let frags = fragQueues[t].value.withLock { q -> [NetmemFragment] in defer { q.removeAll() }; return q }
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
                    }
                }
            }
            // The owner: this task's thread must stay the same, so run the loop in a
            // detached thread-bound closure.
            let owner = Task.detached {
                pool.adoptOwnership()
                var next = 0
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
                    let t = round % returners
                    queues[t].value.withLock { $0 += batch }
                    fragQueues[(t + 1) % returners].value.withLock { $0 += frags }
                    next += batch.count
                    if failures > 100_000 { break }
                    sched_yield()
                }
                return next
            }
            let handed = await owner.value
            stop.value.store(true, ordering: .releasing)
            try await group.waitForAll()
            #expect(handed > rounds * perRound / 2)
        }
        // Returned from other threads: the pool is whole again once the owner destroys it.
        let destroyer = Task.detached {
            pool.adoptOwnership()
            pool.destroy()
            return pool.shutdownStatus
        }
        let status = await destroyer.value
        #expect(status == .finished)
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

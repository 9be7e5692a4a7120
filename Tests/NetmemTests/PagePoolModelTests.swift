import Netmem
import NetmemTestSupport
import Testing

/// Seeded random sequences of allocate / fragment / return (same thread and another
/// thread) / destroy, checked against a simple reference model.
@Suite struct PagePoolModelTests {
    enum Held {
        case chunk(NetmemRef)
        case fragment(NetmemFragment)
    }

    @Test func randomSequencesMatchTheModel() throws {
        let foreign = WorkerThread()
        defer { foreign.join() }
        let base: UInt64 = 0x5EED_0000
        for i in 0..<1500 {
            let seed = base + UInt64(i)
            try runSequence(seed: seed, foreign: foreign)
        }
    }

    func runSequence(seed: UInt64, foreign: WorkerThread) throws {
        var rng = SplitMix64(seed: seed)
        let providerChunks = Int.random(in: 4...48, using: &rng)
        let poolSize = Int.random(in: 1...64, using: &rng)
        let fragments = Bool.random(using: &rng)
        let chunkSize = 4096
        let provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: providerChunks)
        var config = PagePool.Configuration(provider: provider, poolSize: poolSize, fragmentSize: fragments ? 1500 : nil)
        config.cacheSize = Int.random(in: 1...16, using: &rng)
        config.refillBatch = Int.random(in: 1...8, using: &rng)
        config.ringSize = Int.random(in: 2...32, using: &rng)
        let pool = try PagePool(config)
        let limit = min(poolSize, providerChunks)

        var held: [Held] = []
        // Chunks the model says are out: whole chunks, plus chunks with live fragments,
        // plus the chunk being carved.
        var wholeChunks = Set<NetmemRef>()
        var fragmentUsers: [NetmemRef: Int] = [:]
        var carving: NetmemRef? = nil
        var carvingOffset = 0
        func modelInFlight() -> Int {
            var fragChunks = Set(fragmentUsers.keys)
            if let c = carving { fragChunks.insert(c) }
            return wholeChunks.count + fragChunks.count
        }
        func fail(_ what: String) -> Comment { "seed \(seed): \(what)" }

        let steps = Int.random(in: 20...200, using: &rng)
        for _ in 0..<steps {
            let op = Int.random(in: 0..<10, using: &rng)
            switch op {
            case 0...2:
                let r = pool.allocate()
                let shouldSucceed = modelInFlight() < limit
                #expect((r != nil) == shouldSucceed, fail("allocate gave \(String(describing: r)) with \(modelInFlight()) of \(limit) out"))
                if let r {
                    #expect(!wholeChunks.contains(r) && fragmentUsers[r] == nil && carving != r, fail("\(r) handed out twice"))
                    wholeChunks.insert(r)
                    held.append(.chunk(r))
                }
            case 3 where fragments:
                let len = Int.random(in: 1...1500, using: &rng)
                let f = pool.allocateFragment(length: len)
                if let c = carving, carvingOffset + len <= chunkSize {
                    // Fits the chunk being carved.
                    #expect(f?.ref == c && f.map { Int($0.offset) } == carvingOffset, fail("fragment not carved from \(c) at \(carvingOffset)"))
                } else {
                    // The carved chunk is finished (it goes back if no fragment holds it).
                    carving = nil
                    let shouldSucceed = modelInFlight() < limit
                    #expect((f != nil) == shouldSucceed, fail("fragment allocation gave \(String(describing: f)) with \(modelInFlight()) of \(limit) out"))
                    if let f {
                        #expect(f.offset == 0, fail("new carved chunk starts at \(f.offset)"))
                        #expect(!wholeChunks.contains(f.ref) && fragmentUsers[f.ref] == nil, fail("\(f.ref) carved while out"))
                        carving = f.ref
                        carvingOffset = 0
                    }
                }
                if let f {
                    carvingOffset = (carvingOffset + len + 63) & ~63
                    fragmentUsers[f.ref, default: 0] += 1
                    held.append(.fragment(f))
                }
            case 4:
                var buf = [NetmemRef](repeating: NetmemRef(rawValue: 0), count: Int.random(in: 1...8, using: &rng))
                let n = buf.withUnsafeMutableBufferPointer { pool.allocate(into: $0) }
                #expect(n == min(buf.count, limit - modelInFlight()), fail("bulk allocate gave \(n)"))
                for r in buf[0..<n] {
                    #expect(!wholeChunks.contains(r) && fragmentUsers[r] == nil && carving != r, fail("\(r) handed out twice"))
                    wholeChunks.insert(r)
                    held.append(.chunk(r))
                }
            default:
                guard !held.isEmpty else { continue }
                let count = op == 9 ? Int.random(in: 1...min(held.count, 8), using: &rng) : 1
                let elsewhere = Bool.random(using: &rng)
                var batch: [Held] = []
                for _ in 0..<count { batch.append(held.remove(at: Int.random(in: 0..<held.count, using: &rng))) }
                let chunks = batch.compactMap { if case .chunk(let r) = $0 { return r } else { return nil } }
                let frags = batch.compactMap { if case .fragment(let f) = $0 { return f } else { return nil } }
                let give: @Sendable () -> Void = {
                    if chunks.count > 1 { chunks.withUnsafeBufferPointer { pool.recycle($0) } } else { chunks.forEach { pool.recycle($0) } }
                    frags.forEach { pool.releaseFragment($0) }
                }
                if elsewhere { foreign.run(give) } else { give() }
                for r in chunks { wholeChunks.remove(r) }
                for f in frags {
                    fragmentUsers[f.ref]! -= 1
                    if fragmentUsers[f.ref] == 0 { fragmentUsers[f.ref] = nil }
                }
            }
            #expect(pool.inFlight == modelInFlight(), fail("in flight \(pool.inFlight), model \(modelInFlight())"))
            let s = pool.stats
            #expect(s.handedOut - s.returned == s.inFlight, fail("stats inconsistent: \(s)"))
            #expect(s.held <= poolSize && s.held >= s.inFlight, fail("held \(s.held) with \(s.inFlight) in flight, pool size \(poolSize)"))
        }

        // Destroy with whatever is still out, then give it all back from both threads.
        pool.destroy()
        #expect(pool.allocate() == nil, fail("allocation after destroy"))
        carving = nil
        let remaining = held
        for (i, h) in remaining.enumerated() {
            let give: @Sendable () -> Void = {
                switch h {
                case .chunk(let r): pool.recycle(r)
                case .fragment(let f): pool.releaseFragment(f)
                }
            }
            if i % 2 == 0 { foreign.run(give) } else { give() }
        }
        #expect(pool.shutdownStatus == .finished, fail("pool not finished: \(pool.shutdownStatus)"))
        #expect(provider.describe().available == providerChunks, fail("provider has \(provider.describe().available) of \(providerChunks)"))
        #expect(pool.held == 0, fail("pool still holds \(pool.held)"))
    }
}

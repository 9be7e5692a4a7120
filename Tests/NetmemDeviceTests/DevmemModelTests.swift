import Glibc
import Netmem
import NetmemTestSupport
@testable import NetmemDevice
import Synchronization
import Testing

/// Seeded random sequences of bind / receive fragments / dontNeed (in and out of order,
/// from other threads) / close consumer / unbind, checked against a model: no chunk is
/// reused while a token holds it, no token frees another consumer's chunk, and after
/// unbind and all returns the chunk allocator is entirely free.
@Suite struct DevmemModelTests {
    struct HeldFragment {
        var token: UInt32
        var offset: UInt64
        var length: Int
        var stamp: UInt8
    }

    @Test func randomSequencesKeepEveryPromise() throws {
        let returner = WorkerThread()
        defer { returner.join() }
        for i in 0..<1000 {
            try run(seed: 0xDE_0000 + UInt64(i), returner: returner)
        }
    }

    func run(seed: UInt64, returner: WorkerThread) throws {
        var rng = SplitMix64(seed: seed)
        func fail(_ s: String) -> Comment { "seed \(seed): \(s)" }
        let chunkSize = [4096, 65536].randomElement(using: &rng)!
        let segments = Int.random(in: 1...8, using: &rng)
        let region = try DeviceMemoryRegion.memfd(size: segments * 4 * 65536, segments: segments, segmentAlignment: 65536)
        let queues = [ReceiveQueue(interface: "model", index: 0), ReceiveQueue(interface: "model", index: 1)]
        let binding = try DevmemBinding(region: region, queues: queues, chunkSize: chunkSize, registry: BindingRegistry())
        let maxFragment = min(chunkSize, 3000)
        let pools = try queues.map { try binding.makePool(for: $0, poolSize: Int.random(in: 2...16, using: &rng), fragmentSize: maxFragment) }
        let consumers = (0..<Int.random(in: 2...4, using: &rng)).map { c in
            binding.makeConsumer(name: "c\(c)", closeBehavior: Bool.random(using: &rng) ? TokenTable.CloseBehavior.releaseHeld : .keepUntilUnbind)
        }
        var held: [[HeldFragment]] = consumers.map { _ in [] }
        var closed = consumers.map { _ in false }
        var unbound = false
        let base = region.baseAddress!

        func stampOK(_ h: HeldFragment) -> Bool {
            let p = (base + Int(h.offset)).assumingMemoryBound(to: UInt8.self)
            return p[0] == h.stamp && p[h.length - 1] == h.stamp
        }

        for _ in 0..<Int.random(in: 30...250, using: &rng) {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0...4 where !unbound:
                let q = Int.random(in: 0..<2, using: &rng)
                let c = Int.random(in: 0..<consumers.count, using: &rng)
                guard !closed[c] else { continue }
                let len = Int.random(in: 1...maxFragment, using: &rng)
                guard let f = pools[q].allocateFragment(length: len) else { continue }
                let frag = binding.deliver(f, from: pools[q], to: consumers[c])
                // No held fragment anywhere overlaps the new one.
                for list in held {
                    for h in list {
                        let overlap = h.offset < frag.regionOffset + UInt64(len) && frag.regionOffset < h.offset + UInt64(h.length)
                        #expect(!overlap, fail("fragment at \(frag.regionOffset) reuses bytes a token still holds"))
                    }
                }
                let stamp = UInt8.random(in: 1...255, using: &rng)
                memset(base + Int(frag.regionOffset), Int32(stamp), len)
                held[c].append(HeldFragment(token: frag.token, offset: frag.regionOffset, length: len, stamp: stamp))
            case 5...7:
                let c = Int.random(in: 0..<consumers.count, using: &rng)
                guard !closed[c], !held[c].isEmpty else { continue }
                held[c].shuffle(using: &rng)
                let k = Int.random(in: 1...min(held[c].count, 40), using: &rng)
                let giving = Array(held[c].prefix(k))
                held[c].removeFirst(k)
                for h in giving { #expect(stampOK(h), fail("bytes of token \(h.token) changed while held")) }
                let ranges = giving.map { TokenRange(token: $0.token) }
                let consumer = consumers[c]
                let freed: Int
                if Bool.random(using: &rng) {
                    freed = returner.run { (try? consumer.dontNeed(ranges)) ?? -1 }
                } else {
                    freed = (try? consumer.dontNeed(ranges)) ?? -1
                }
                #expect(freed == k, fail("dontNeed freed \(freed) of \(k)"))
            case 8:
                // A consumer gives a token it does not hold: typed error, nothing freed.
                let c = Int.random(in: 0..<consumers.count, using: &rng)
                guard !closed[c] else { continue }
                let mine = Set(held[c].map(\.token))
                let others = held.enumerated().filter { $0.offset != c }.flatMap { $0.element.map(\.token) }
                guard let foreign = others.first(where: { !mine.contains($0) }) else { continue }
                let before = consumers.map { $0.heldCount }
                do throws(TokenError) {
                    _ = try consumers[c].dontNeed([TokenRange(token: foreign)])
                    Issue.record(fail("consumer \(c) returned token \(foreign) it does not hold"))
                } catch {
                    switch error {
                    case .unknownToken, .alreadyReturned: break
                    default: Issue.record(fail("unexpected \(error)"))
                    }
                }
                #expect(consumers.map { $0.heldCount } == before, fail("a foreign token changed what consumers hold"))
            default:
                let c = Int.random(in: 0..<consumers.count, using: &rng)
                guard !closed[c] else { continue }
                for h in held[c] { #expect(stampOK(h), fail("bytes changed while held")) }
                let released = consumers[c].close()
                closed[c] = true
                #expect(released == (consumers[c].closeBehavior == TokenTable.CloseBehavior.releaseHeld || unbound ? held[c].count : 0), fail("close released \(released)"))
                if consumers[c].closeBehavior == TokenTable.CloseBehavior.releaseHeld || unbound { held[c] = [] }
            }
            if !unbound && Int.random(in: 0..<60, using: &rng) == 0 {
                binding.unbind()
                unbound = true
                for p in pools { p.destroy() }
                for c in consumers.indices where closed[c] { held[c] = [] }  // kept tokens released now
            }
        }
        if !unbound {
            binding.unbind()
            for p in pools { p.destroy() }
            for c in consumers.indices where closed[c] { held[c] = [] }
        }
        for c in consumers.indices where !closed[c] {
            for h in held[c] { #expect(stampOK(h), fail("bytes changed while held")) }
            consumers[c].close()
        }
        for p in pools { #expect(p.shutdownStatus == PagePool.ShutdownStatus.finished, fail("pool not finished")) }
        #expect(binding.isFreed, fail("binding not freed: \(binding.report)"))
        #expect(consumers.allSatisfy { $0.heldCount == 0 }, fail("tokens still held"))
    }
}

import Netmem
@testable import NetmemDevice
import Testing

@Suite struct BindingTests {
    let q0 = ReceiveQueue(interface: "eth9", index: 0)
    let q1 = ReceiveQueue(interface: "eth9", index: 1)

    @Test func aQueueHasOneBindingAndARegionBindsOncePerQueue() throws {
        let registry = BindingRegistry()
        let r1 = try DeviceMemoryRegion.memfd(size: 1 << 20)
        let r2 = try DeviceMemoryRegion.memfd(size: 1 << 20)
        let b1 = try DevmemBinding(region: r1, queues: [q0], registry: registry)
        #expect(throws: DeviceMemoryError.alreadyBound(queue: q0)) {
            _ = try DevmemBinding(region: r1, queues: [q1, q0], registry: registry)
        }
        #expect(throws: DeviceMemoryError.queueBusy(queue: q0, bindingID: b1.id)) {
            _ = try DevmemBinding(region: r2, queues: [q0], registry: registry)
        }
        #expect(throws: DeviceMemoryError.alreadyBound(queue: q1)) {
            _ = try DevmemBinding(region: r2, queues: [q1, q1], registry: registry)
        }
        // The failed attempts claimed nothing: q1 is still free.
        let b2 = try DevmemBinding(region: r2, queues: [q1], registry: registry)
        #expect(registry.binding(of: q1) == b2.id)
        b1.unbind()
        #expect(registry.binding(of: q0) == nil)
        _ = try DevmemBinding(region: r2, queues: [q0], registry: registry)
    }

    @Test func badChunkSizesAndEmptyQueueListsAreTyped() throws {
        let r = try DeviceMemoryRegion.memfd(size: 1 << 20)
        #expect(throws: DeviceMemoryError.self) { _ = try DevmemBinding(region: r, queues: [q0], chunkSize: 8192, registry: BindingRegistry()) }
        #expect(throws: DeviceMemoryError.noQueues) { _ = try DevmemBinding(region: r, queues: [], registry: BindingRegistry()) }
    }

    @Test(arguments: [4096, 65536, 2 << 20])
    func chunkSizes(chunkSize: Int) throws {
        let r = try DeviceMemoryRegion.memfd(size: 8 << 20, segments: 2)
        let b = try DevmemBinding(region: r, queues: [q0], chunkSize: chunkSize, registry: BindingRegistry())
        #expect(b.chunkCount == (8 << 20) / chunkSize)
        let run = try #require(b.allocateContiguous(count: 2))
        #expect(b.outstanding == 2)
        _ = b.releaseChunk(run)
        _ = b.releaseChunk(NetmemRef(area: run.areaID, chunk: run.chunk + 1))
        #expect(b.outstanding == 0)
    }

    @Test func unbindStopsAllocationAndFreesAfterTheLastReturn() throws {
        let region = try DeviceMemoryRegion.memfd(size: 4 << 20, segments: 3)
        let binding = try DevmemBinding(region: region, queues: [q0, q1], chunkSize: 65536, registry: BindingRegistry())
        let pool = try binding.makePool(for: q0, poolSize: 32, fragmentSize: 1500)
        let consumer = binding.makeConsumer(name: "conn")
        var frags: [Fragment] = []
        for _ in 0..<100 {
            let f = try #require(pool.allocateFragment(length: 1448))
            frags.append(binding.deliver(f, from: pool, to: consumer))
        }
        #expect(binding.outstanding > 0)
        binding.unbind()
        #expect(!binding.isLending)
        #expect(pool.allocateFragment(length: 100) == nil)  // stops at once
        #expect(throws: DeviceMemoryError.unbound(bindingID: binding.id)) { _ = try binding.makePool(for: q1, poolSize: 4) }
        // The RX thread destroys its pool when it sees the binding unbound.
        pool.destroy()
        #expect(!binding.isFreed)
        #expect(binding.report.unbound)
        let tokens = frags.map(\.token)
        var freed = 0
        for start in stride(from: 0, to: tokens.count, by: 30) {
            let part = tokens[start..<min(start + 30, tokens.count)]
            freed += try consumer.dontNeed(part.map { TokenRange(token: $0) })
        }
        #expect(freed == 100)
        #expect(pool.shutdownStatus == .finished)
        #expect(binding.isFreed)
        #expect(binding.outstanding == 0)
    }

    @Test func fragmentsOf1448BytesIn64KiBChunksHoldLittleExtra() throws {
        let region = try DeviceMemoryRegion.memfd(size: 16 << 20)
        let binding = try DevmemBinding(region: region, queues: [q0], chunkSize: 65536, registry: BindingRegistry())
        let pool = try binding.makePool(for: q0, poolSize: 256, fragmentSize: 1500)
        var frags: [NetmemFragment] = []
        for _ in 0..<10_000 { frags.append(try #require(pool.allocateFragment(length: 1448))) }
        let held = Double(pool.inFlight) * 65536
        let ratio = held / Double(10_000 * 1448)
        #expect(ratio <= 1.10, "held \(held) bytes for \(10_000 * 1448) payload bytes: \(ratio)")
        for f in frags { pool.releaseFragment(f) }
    }
}

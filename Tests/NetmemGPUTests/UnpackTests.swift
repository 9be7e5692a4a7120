import Glibc
import Netmem
import NetmemDevice
@testable import NetmemGPU
import NetmemGPUStandIn
import Testing

/// A device region bound to a queue with a pool and a consumer, as devmem TCP lands
/// payload: fragments scattered over the region, tokens from the consumer.
struct DeviceReceiveFixture {
    let driver: HostStandInDriver
    let region: DeviceMemoryRegion
    let exporter: CUDAExporter
    let binding: DevmemBinding
    let pool: PagePool
    let consumer: TokenTable

    init(driver: HostStandInDriver, size: Int = 4 << 20) throws {
        self.driver = driver
        region = try DeviceMemoryRegion.gpu(driver: driver, size: size)
        exporter = region.exporter as! CUDAExporter
        let queue = ReceiveQueue(interface: "gpu-unpack", index: 0)
        binding = try DevmemBinding(region: region, queues: [queue], chunkSize: 4096, registry: BindingRegistry())
        pool = try binding.makePool(for: queue, poolSize: size / 4096, fragmentSize: 4096)
        consumer = binding.makeConsumer(name: "unpack")
    }

    /// A message of received fragments that owns their tokens.
    func message(_ fragments: [Fragment]) -> Message {
        Message(fragments: fragments, region: region, returningTokensTo: consumer)
    }

    /// A received fragment of `length` bytes whose payload ("written by the NIC") is
    /// `pattern(seed, …)`.
    func receive(length: Int, seed: Int) throws -> Fragment {
        let f = try #require(pool.allocateFragment(length: length))
        let fragment = binding.deliver(f, from: pool, to: consumer)
        let bytes = (0..<length).map { pattern(seed, $0) }
        try bytes.withUnsafeBytes { try exporter.write($0, at: Int(fragment.regionOffset)) }
        return fragment
    }
}

@Suite struct UnpackTests {
    @Test(arguments: [1, 2, 3])
    func gathersScatteredFragmentsInOrder(seed: UInt64) throws {
        let driver = HostStandInDriver()
        let rx = try DeviceReceiveFixture(driver: driver)
        let destination = try DeviceMemoryRegion.gpu(driver: driver, size: 4 << 20, exportDmaBuf: false)
        var rng = SplitMix64(seed: seed)
        // Receive 200 fragments of random sizes, then build messages from random picks in
        // random order, so a message's fragments are scattered over the region.
        var received: [(Fragment, Int)] = []
        for k in 0..<200 { received.append((try rx.receive(length: Int(rng.next() % 4096) + 1, seed: k), k)) }
        received.shuffle(using: &rng)
        let unpacker = try Unpacker(driver: driver, maxInFlight: 4)
        var expected: [UInt64: (offset: Int, bytes: [UInt8])] = [:]
        var at = 0
        var index = 0
        while index < received.count {
            let n = min(Int(rng.next() % 20) + 1, received.count - index)
            let picks = received[index..<index + n]
            index += n
            let id = try unpacker.unpack(rx.message(picks.map(\.0)), into: destination, at: at)
            expected[id] = (at, picks.flatMap { f, k in (0..<f.length).map { pattern(k, $0) } })
            at += expected[id]!.bytes.count
            #expect(unpacker.inFlightCount <= 4)
        }
        var completed = try unpacker.poll()
        completed += try unpacker.drain()
        #expect(completed.map(\.id) == expected.keys.sorted())
        for c in completed {
            let e = try #require(expected[c.id])
            #expect(c.destinationOffset == e.offset && c.length == e.bytes.count)
            #expect(try readRegion(destination, offset: e.offset, count: e.bytes.count) == e.bytes)
        }
        // Messages were let go as batches completed: nothing is held, the pool gets every chunk back.
        #expect(rx.consumer.heldCount == 0)
        #expect(unpacker.statistics.messagesReleased == expected.count)
        rx.pool.destroy()
        #expect(rx.pool.inFlight == 0)
        #expect(rx.binding.outstanding == 0)
    }

    @Test func adjacentFragmentsMergeIntoOneCopy() throws {
        let driver = HostStandInDriver()
        let rx = try DeviceReceiveFixture(driver: driver)
        let destination = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        // Two 64-byte-aligned pieces of one chunk, back to back in the region.
        let a = try rx.receive(length: 1024, seed: 1)
        let b = try rx.receive(length: 1024, seed: 2)
        #expect(b.regionOffset == a.regionOffset + 1024)
        let unpacker = try Unpacker(driver: driver)
        // One message, gathered twice in two orders: it goes when both batches are done.
        let message = rx.message([a, b])
        try unpacker.unpack(message, into: destination)
        try unpacker.unpack([b, a], from: rx.region, into: destination, at: 4096)
        #expect(rx.consumer.heldCount == 2)
        _ = consume message
        let done = try unpacker.drain()
        #expect(done.map(\.copies) == [1, 2])
        #expect(try readRegion(destination, offset: 4096, count: 2048)
            == (0..<1024).map { pattern(2, $0) } + (0..<1024).map { pattern(1, $0) })
        #expect(rx.consumer.heldCount == 0)
        rx.pool.destroy()
        #expect(rx.pool.inFlight == 0)
    }

    @Test func aFragmentOutsideTheRegionIsTypedAndLeaksNothing() throws {
        let driver = HostStandInDriver()
        let rx = try DeviceReceiveFixture(driver: driver, size: 1 << 20)
        let destination = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let unpacker = try Unpacker(driver: driver)
        let good = try rx.receive(length: 500, seed: 1)
        var bad = try rx.receive(length: 500, seed: 2)
        bad.regionOffset = UInt64(rx.region.size) - 100
        let copiedBefore = driver.bytesCopied.load(ordering: .relaxed)
        #expect(throws: GPUError.fragmentOutsideRegion(index: 1, offset: bad.regionOffset, length: 500, regionSize: 1 << 20)) {
            try unpacker.unpack(rx.message([good, bad]), into: destination)
        }
        #expect(driver.bytesCopied.load(ordering: .relaxed) == copiedBefore)  // nothing issued
        #expect(unpacker.inFlightCount == 0)
        #expect(rx.consumer.heldCount == 0)  // the refused message was let go

        let other = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let c = try rx.receive(length: 500, seed: 3)
        #expect(throws: GPUError.fragmentFromOtherRegion(index: 0, regionID: rx.region.id, expected: other.id)) {
            try unpacker.unpack(Message(fragments: [c], region: other, returningTokensTo: rx.consumer), into: destination)
        }
        let d = try rx.receive(length: 4000, seed: 4)
        #expect(throws: GPUError.destinationTooSmall(needed: 4000, capacity: 1000)) {
            try unpacker.unpack(rx.message([d]), into: destination, at: (1 << 20) - 1000)
        }
        #expect(unpacker.statistics.rejected == 3)
        #expect(rx.consumer.heldCount == 0)
        rx.pool.destroy()
        #expect(rx.pool.inFlight == 0)
        #expect(rx.binding.outstanding == 0)
    }

    @Test func unpackFromPinnedHostMemoryIntoTheGPU() throws {
        let driver = HostStandInDriver()
        let pinned = try DeviceMemoryRegion.pinnedHost(driver: driver, size: 1 << 20)
        let destination = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let base = try #require(pinned.baseAddress)
        var fragments: [Fragment] = []
        var bytes: [UInt8] = []
        for (k, offset) in [900_000, 10, 500_000, 4096].enumerated() {
            for i in 0..<3000 { base.storeBytes(of: pattern(k, i), toByteOffset: offset + i, as: UInt8.self) }
            fragments.append(Fragment(regionOffset: UInt64(offset), length: 3000, token: UInt32(k), regionID: pinned.id))
            bytes += (0..<3000).map { pattern(k, $0) }
        }
        let unpacker = try Unpacker(driver: driver)
        try unpacker.unpack(fragments, from: pinned, into: destination, at: 8192)
        let done = try unpacker.drain()
        #expect(done.count == 1 && done[0].copies == 4)
        #expect(try readRegion(destination, offset: 8192, count: bytes.count) == bytes)
    }

    @Test func aFullBatchQueueIsWouldBlockWithoutWaiting() throws {
        let driver = HostStandInDriver()
        let src = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let dst = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let unpacker = try Unpacker(driver: driver, maxInFlight: 1)
        let f = Fragment(regionOffset: 0, length: 100, token: 0, regionID: src.id)
        driver.pause()
        try unpacker.unpack([f], from: src, into: dst)
        #expect(throws: GPUError.wouldBlock) { try unpacker.unpack([f], from: src, into: dst, wait: false) }
        driver.resume()
        try unpacker.unpack([f], from: src, into: dst)  // waits for the first
        #expect(try unpacker.drain().count + unpacker.statistics.completed >= 2)
    }
}

import Glibc
import Netmem
import NetmemBench
import NetmemDevice
@testable import NetmemGPU
import NetmemGPUStandIn
import Testing

@Suite struct BounceTests {
    @Test func bytesLandIntactAndTokensReturnOnlyAfterCompletion() throws {
        let driver = HostStandInDriver()
        let host = try HostReceiveFixture()
        let ring = try DeviceMemoryRegion.gpu(driver: driver, size: 2 << 20, exportDmaBuf: false)
        let copier = try BounceCopier(driver: driver, destination: ring,
                                      configuration: .init(maxInFlight: 8))
        var rng = SplitMix64(seed: 42)
        var expected: [UInt64: [UInt8]] = [:]
        var seed = 0
        driver.pause()
        for _ in 0..<6 {
            var message: [Fragment] = []
            var bytes: [UInt8] = []
            for _ in 0..<Int(rng.next() % 12 + 1) {
                let length = Int(rng.next() % 30_000) + 1
                seed += 1
                message.append(try #require(host.receive(length: length, seed: seed)))
                bytes += (0..<length).map { pattern(seed, $0) }
            }
            let id = try copier.submit(host.message(message))
            expected[id] = bytes
        }
        // Copies are held: no token has come back and nothing is reported.
        let issued = host.table.heldCount
        #expect(issued > 6)
        #expect(try copier.poll().isEmpty)
        #expect(host.table.heldCount == issued)
        #expect(copier.inFlightCount == 6)
        driver.resume()
        let landed = try copier.drain()
        #expect(landed.map(\.id) == expected.keys.sorted())
        #expect(host.table.heldCount == 0)
        for l in landed {
            #expect(try readRegion(ring, offset: l.offset, count: l.length) == expected[l.id])
            #expect(try readDevice(driver, l.deviceAddress, count: l.length) == expected[l.id])
            copier.release(l.id)
        }
        #expect(copier.reservedCount == 0)
        #expect(copier.statistics.messagesReleased == 6)
        host.pool.destroy()
        #expect(host.pool.inFlight == 0)
        #expect(host.pool.shutdownStatus == .finished)
    }

    @Test func manyMessagesWrapTheRingWithBoundedCopies() throws {
        let driver = HostStandInDriver()
        let host = try HostReceiveFixture(chunks: 32)
        let ring = try DeviceMemoryRegion.gpu(driver: driver, size: 256 << 10, exportDmaBuf: false)
        let copier = try BounceCopier(driver: driver, destination: ring,
                                      configuration: .init(maxInFlight: 3))
        var rng = SplitMix64(seed: 5)
        var expected: [UInt64: (seed: Int, length: Int)] = [:]
        var checked = 0
        func check(_ landed: [BounceCopier.Landed]) throws {
            for l in landed {
                let removed = expected.removeValue(forKey: l.id)
                let e = try #require(removed)
                #expect(try readRegion(ring, offset: l.offset, count: l.length) == (0..<e.length).map { pattern(e.seed, $0) })
                copier.release(l.id)
                checked += 1
            }
        }
        for seed in 1...300 {
            let length = Int(rng.next() % 60_000) + 1
            let f = try #require(host.receive(length: length, seed: seed))
            expected[try copier.submit(host.message([f]))] = (seed, length)
            #expect(copier.inFlightCount <= 3)
            try check(copier.poll())
        }
        try check(copier.drain())
        #expect(checked == 300)
        #expect(host.table.heldCount == 0)
        host.pool.destroy()
        #expect(host.pool.inFlight == 0)
    }

    @Test func adjacentHostFragmentsMergeIntoOneCopy() throws {
        let driver = HostStandInDriver()
        let host = try HostReceiveFixture()
        let ring = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let copier = try BounceCopier(driver: driver, destination: ring)
        // 4 KiB fragments are carved back to back; 1000-byte ones leave alignment gaps.
        let adjacent = try (1...4).map { try #require(host.receive(length: 4096, seed: $0)) }
        try copier.submit(host.message(adjacent))
        #expect(copier.statistics.copies == 1)
        let gapped = try (5...7).map { try #require(host.receive(length: 1000, seed: $0)) }
        try copier.submit(host.message(gapped))
        #expect(copier.statistics.copies == 1 + 3)
        let landed = try copier.drain()
        #expect(try readRegion(ring, offset: landed[0].offset, count: 4 * 4096) == (1...4).flatMap { k in (0..<4096).map { pattern(k, $0) } })
        #expect(try readRegion(ring, offset: landed[1].offset, count: 3000) == (5...7).flatMap { k in (0..<1000).map { pattern(k, $0) } })
        for l in landed { copier.release(l.id) }
        #expect(host.table.heldCount == 0)
        host.pool.destroy()
        #expect(host.pool.inFlight == 0)
    }

    @Test func backpressureWithoutWaitingTakesNothing() throws {
        let driver = HostStandInDriver()
        let host = try HostReceiveFixture()
        let ring = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let copier = try BounceCopier(driver: driver, destination: ring,
                                      configuration: .init(maxInFlight: 2))
        driver.pause()
        try copier.submit(host.message([try #require(host.receive(length: 1000, seed: 1))]), wait: false)
        try copier.submit(host.message([try #require(host.receive(length: 1000, seed: 2))]), wait: false)
        let third = host.message([try #require(host.receive(length: 1000, seed: 3))])
        #expect(throws: GPUError.wouldBlock) { try copier.submit(third, wait: false) }
        #expect(host.table.heldCount == 3)  // the third is still the caller's
        driver.resume()
        try copier.submit(consume third)  // waits for a slot
        #expect(copier.statistics.waits <= 1)
        for l in try copier.drain() { copier.release(l.id) }
        #expect(host.table.heldCount == 0)
        host.pool.destroy()
        #expect(host.pool.inFlight == 0)
    }

    @Test func aRingFullOfUnreleasedMessagesIsWouldBlockNotADeadlock() throws {
        let driver = HostStandInDriver()
        let host = try HostReceiveFixture()
        let ring = try DeviceMemoryRegion.gpu(driver: driver, size: 64 << 10, exportDmaBuf: false)
        let copier = try BounceCopier(driver: driver, destination: ring)
        let first = try copier.submit(host.message([try #require(host.receive(length: 40_000, seed: 1))]))
        _ = try copier.drain()  // landed, not released
        let second = host.message([try #require(host.receive(length: 40_000, seed: 2))])
        #expect(throws: GPUError.wouldBlock) { try copier.submit(second) }
        copier.release(first)
        try copier.submit(consume second)
        for l in try copier.drain() { copier.release(l.id) }
        #expect(throws: GPUError.messageLargerThanRing(length: 70_000, ringSize: 65536)) {
            try copier.submit(host.message([try #require(host.receive(length: 35_000, seed: 3)), try #require(host.receive(length: 35_000, seed: 4))]))
        }
        #expect(host.table.heldCount == 0)  // the refused message was let go
        host.pool.destroy()
        #expect(host.pool.inFlight == 0)
    }

    @Test func aFailedCopyLetsTheMessageGoAndFreesItsSpace() throws {
        let driver = HostStandInDriver()
        let host = try HostReceiveFixture()
        let ring = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let copier = try BounceCopier(driver: driver, destination: ring)
        let message = try (1...5).map { try #require(host.receive(length: 3000, seed: $0)) }
        driver.failCopy(after: 2)  // the third fragment's copy fails
        #expect(throws: GPUError.injected("copy failure injected by the test")) { try copier.submit(host.message(message)) }
        #expect(host.table.heldCount == 0)
        #expect(copier.reservedCount == 0 && copier.inFlightCount == 0)
        #expect(copier.statistics.failed == 1)
        // The copier goes on working.
        let ok = try #require(host.receive(length: 3000, seed: 9))
        try copier.submit(host.message([ok]))
        let landed = try copier.drain()
        #expect(try readRegion(ring, offset: landed[0].offset, count: 3000) == (0..<3000).map { pattern(9, $0) })
        copier.release(landed[0].id)
        host.pool.destroy()
        #expect(host.pool.inFlight == 0)
    }

    @Test func fragmentsNotInHostMemoryAreRefusedAndLetGo() throws {
        let driver = HostStandInDriver()
        let host = try HostReceiveFixture()
        let ring = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
        let copier = try BounceCopier(driver: driver, destination: ring)
        let good = try #require(host.receive(length: 100, seed: 1))
        var bad = try #require(host.receive(length: 100, seed: 2))
        bad.regionID = ring.id  // names a device region: no host bytes to copy from
        #expect(throws: GPUError.fragmentNotInHostMemory(index: 1)) { try copier.submit(host.message([good, bad])) }
        #expect(host.table.heldCount == 0)
        #expect(driver.bytesCopied.load(ordering: .relaxed) == 0)
        host.pool.destroy()
        #expect(host.pool.inFlight == 0)
    }

    @Test func closingWithCopiesInFlightWaitsAndLetsTheirMessagesGo() throws {
        let driver = HostStandInDriver()
        let host = try HostReceiveFixture()
        do {
            let ring = try DeviceMemoryRegion.gpu(driver: driver, size: 1 << 20, exportDmaBuf: false)
            let copier = try BounceCopier(driver: driver, destination: ring)
            for seed in 1...4 { try copier.submit(host.message([try #require(host.receive(length: 20_000, seed: seed))])) }
            copier.close()
            #expect(host.table.heldCount == 0)
        }
        #expect(driver.liveObjects == (0, 0, 0, 0))
        host.pool.destroy()
        #expect(host.pool.inFlight == 0)
    }

    @Test func benchFunctionsMoveWhatTheySay() throws {
        let driver = HostStandInDriver()
        let p = GPUBench.Parameters(messageSize: 64 << 10, fragmentSize: 4096, totalBytes: 1 << 20, inFlight: 4)
        let u = try GPUBench.unpack(driver: driver, p)
        #expect(u.bytes == 1 << 20 && u.messages == 16)
        #expect(u.copies >= 16 && u.copies <= 16 * 16)
        #expect(u.verified)
        let b = try GPUBench.bounce(driver: driver, p)
        #expect(b.bytes == 1 << 20 && b.messages == 16)
        // 4 KiB fragments carved back to back from 64 KiB chunks merge into one copy per run.
        #expect(b.copies >= 16 && b.copies < 16 * 16)
        #expect(b.verified)
        #expect(throws: GPUError.self) { _ = try GPUBench.unpack(driver: driver, .init(messageSize: 1000, fragmentSize: 4096)) }
        #expect(driver.liveObjects == (0, 0, 0, 0))
    }
}

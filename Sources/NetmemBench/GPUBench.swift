import Netmem
import NetmemDevice
import NetmemGPU

/// Measurements of the GPU landing paths for `netmem bench`: unpack (scattered device
/// fragments gathered into a contiguous buffer) and bounce (host chunks copied to a device
/// ring, tokens back on completion). They return numbers; the command prints them.
package enum GPUBench {
    package struct Result: Sendable, CustomStringConvertible {
        package var name: String
        package var bytes: Int
        package var seconds: Double
        /// Messages (batches) completed.
        package var messages: Int
        /// Device copies issued.
        package var copies: Int
        /// After the timed run, one message was moved again with known bytes and read back
        /// from the device: whether it arrived intact.
        package var verified: Bool
        package var gigabytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds / 1e9 : 0 }
        package var description: String {
            let gbps = (gigabytesPerSecond * 100).rounded() / 100
            return "\(name): \(bytes) bytes in \(messages) messages, \(copies) copies, \(gbps) GB/s, "
                + (verified ? "bytes verified" : "BYTES DIFFER")
        }
    }

    package struct Parameters: Sendable {
        /// Bytes per message.
        package var messageSize = 1 << 20
        /// Bytes per fragment (the NIC's or receive path's piece size).
        package var fragmentSize = 4096
        /// Bytes moved in all.
        package var totalBytes = 1 << 30
        /// Batches (messages) in flight.
        package var inFlight = 8
        /// Seed of the scatter order.
        package var seed: UInt64 = 7
        package init(messageSize: Int = 1 << 20, fragmentSize: Int = 4096, totalBytes: Int = 1 << 30, inFlight: Int = 8) {
            self.messageSize = messageSize
            self.fragmentSize = fragmentSize
            self.totalBytes = totalBytes
            self.inFlight = inFlight
        }

        func validate() throws(GPUError) {
            guard fragmentSize > 0, messageSize >= fragmentSize, messageSize % fragmentSize == 0 else {
                throw .invalidArgument("message size \(messageSize) must be a positive multiple of the fragment size \(fragmentSize)")
            }
            guard totalBytes >= messageSize, inFlight > 0 else {
                throw .invalidArgument("total \(totalBytes) must hold a message of \(messageSize) bytes, in flight \(inFlight) at least 1")
            }
        }
    }

    /// Unpack GB/s: each message is `messageSize / fragmentSize` fragments at scattered
    /// places of a device source region (4× the in-flight bytes), gathered in order into a
    /// device destination.
    package static func unpack(driver: any GPUDriver, _ p: Parameters = Parameters()) throws(GPUError) -> Result {
        try p.validate()
        let perMessage = p.messageSize / p.fragmentSize
        let slots = perMessage * p.inFlight * 4
        let source = try DeviceMemoryRegion.gpu(driver: driver, size: slots * p.fragmentSize, exportDmaBuf: false)
        let destination = try DeviceMemoryRegion.gpu(driver: driver, size: p.messageSize * p.inFlight, exportDmaBuf: false)
        var rng = SplitMix64(seed: p.seed)
        var order = Array(0..<slots)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let messages = (0..<4 * p.inFlight).map { m in
            (0..<perMessage).map { k in
                Fragment(regionOffset: UInt64(order[(m * perMessage + k) % slots] * p.fragmentSize), length: p.fragmentSize,
                         token: 0, regionID: source.id)
            }
        }
        let unpacker = try Unpacker(driver: driver, maxInFlight: p.inFlight)
        let count = p.totalBytes / p.messageSize
        // One warm-up message.
        try unpacker.unpack(messages[0], from: source, into: destination)
        _ = try unpacker.drain()
        let copiesBefore = unpacker.statistics.copies
        let clock = ContinuousClock()
        let start = clock.now
        for i in 0..<count {
            try unpacker.unpack(messages[i % messages.count], from: source, into: destination,
                                at: (i % p.inFlight) * p.messageSize)
            _ = try unpacker.poll()
        }
        _ = try unpacker.drain()
        let elapsed = clock.now - start
        let copiesTimed = unpacker.statistics.copies - copiesBefore
        // Verify: known bytes in the source, one message gathered, read back and compared.
        let known = UnsafeMutableRawBufferPointer.allocate(byteCount: source.size, alignment: 4096)
        let seen = UnsafeMutableRawBufferPointer.allocate(byteCount: p.messageSize, alignment: 4096)
        defer { known.deallocate(); seen.deallocate() }
        for i in 0..<source.size { known[i] = UInt8(truncatingIfNeeded: i &* 7 &+ i >> 12) }
        try (source.exporter as! CUDAExporter).write(UnsafeRawBufferPointer(known), at: 0)
        let probe = messages[1 % messages.count]
        try unpacker.unpack(probe, from: source, into: destination)
        _ = try unpacker.drain()
        do { try destination.copy(from: 0, length: p.messageSize, into: seen) } catch { throw .region(error) }
        var verified = true
        var at = 0
        for f in probe {
            for j in 0..<f.length where seen[at + j] != known[Int(f.regionOffset) + j] { verified = false }
            at += f.length
        }
        return Result(name: "unpack (\(driver.kind), \(p.fragmentSize)-byte fragments)", bytes: count * p.messageSize,
                      seconds: seconds(elapsed), messages: count, copies: copiesTimed, verified: verified)
    }

    /// Bounce GB/s: messages of `fragmentSize` fragments carved from host chunks (a page
    /// pool with a token table, as the receive path makes them) copied into a device ring;
    /// tokens go back on completion and each landed message is released at once.
    package static func bounce(driver: any GPUDriver, _ p: Parameters = Parameters()) throws(GPUError) -> Result {
        try p.validate()
        let chunkSize = 64 << 10
        guard p.fragmentSize <= chunkSize else { throw .invalidArgument("fragment size \(p.fragmentSize) exceeds the 64 KiB chunk") }
        let chunks = max(64, (p.messageSize * (p.inFlight + 2) * 2) / chunkSize)
        let provider: HostPageProvider
        let pool: PagePool
        do {
            provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks, options: [.populate])
            pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, fragmentSize: p.fragmentSize, name: "bench bounce"))
        } catch { throw .region(.core(error)) }
        let table = TokenTable(name: "bench bounce")
        let regions: RegionMap
        do { regions = try RegionMap(hostArea: provider.area, kind: "host", keepingAlive: provider) } catch { throw .region(error) }
        let ring = try DeviceMemoryRegion.gpu(driver: driver, size: p.messageSize * p.inFlight * 2, exportDmaBuf: false)
        let copier = try BounceCopier(driver: driver, destination: ring,
                                      configuration: BounceCopier.Configuration(maxInFlight: p.inFlight))
        let message = { (fragments: [Fragment]) in
            Message(fragments: fragments, region: regions.region, returningTokensTo: table)
        }
        let perMessage = p.messageSize / p.fragmentSize
        let count = p.totalBytes / p.messageSize
        let clock = ContinuousClock()
        var start = clock.now
        var copiesBefore = 0
        var fragments: [Fragment] = []
        fragments.reserveCapacity(perMessage)
        for i in -1..<count {  // message -1 warms up
            if i == 0 { start = clock.now; copiesBefore = copier.statistics.copies }
            fragments.removeAll(keepingCapacity: true)
            var spins = 0
            while fragments.count < perMessage {
                if let f = pool.allocateFragment(length: p.fragmentSize) {
                    fragments.append(table.issue(f, owner: pool, regions: regions))
                    continue
                }
                // Out of host chunks: they come back as copies complete.
                for l in try copier.drain() { copier.release(l.id) }
                spins += 1
                if spins > 1000 { throw .invalidArgument("the bench pool of \(chunks) chunks cannot hold one message") }
            }
            try copier.submit(message(fragments))
            for l in try copier.poll() { copier.release(l.id) }
        }
        for l in try copier.drain() { copier.release(l.id) }
        let elapsed = clock.now - start
        let copiesTimed = copier.statistics.copies - copiesBefore
        // Verify: one message of known bytes bounced and read back.
        fragments.removeAll(keepingCapacity: true)
        var expected: [UInt8] = []
        for k in 0..<perMessage {
            guard let f = pool.allocateFragment(length: p.fragmentSize), let chunk = f.ref.area.address(of: f.ref) else {
                throw .invalidArgument("the bench pool has no chunk left to verify with")
            }
            for j in 0..<p.fragmentSize {
                let b = UInt8(truncatingIfNeeded: (k &* 31) ^ j ^ (j >> 8))
                chunk.storeBytes(of: b, toByteOffset: Int(f.offset) + j, as: UInt8.self)
                expected.append(b)
            }
            fragments.append(table.issue(f, owner: pool, regions: regions))
        }
        try copier.submit(message(fragments))
        let landed = try copier.drain()
        let seen = UnsafeMutableRawBufferPointer.allocate(byteCount: p.messageSize, alignment: 4096)
        defer { seen.deallocate() }
        var verified = false
        if let l = landed.last, l.length == expected.count {
            do throws(DeviceMemoryError) { try ring.copy(from: UInt64(l.offset), length: l.length, into: seen) } catch { throw .region(error) }
            verified = seen.elementsEqual(expected)
        }
        for l in landed { copier.release(l.id) }
        pool.destroy()
        return Result(name: "bounce (\(driver.kind), \(p.fragmentSize)-byte fragments)", bytes: count * p.messageSize,
                      seconds: seconds(elapsed), messages: count, copies: copiesTimed, verified: verified)
    }

    static func seconds(_ d: Duration) -> Double {
        let c = d.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}


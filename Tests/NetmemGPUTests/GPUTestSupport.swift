import Glibc
import Netmem
import NetmemDevice
@testable import NetmemGPU

/// Deterministic bytes for position `i` of stream `seed`.
func pattern(_ seed: Int, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: (i &* 131) ^ (seed &* 29) ^ (i >> 8)) }

/// Reads `count` bytes at a device address through the driver (a DtoH copy, waited for).
func readDevice(_ driver: any GPUDriver, _ address: DeviceAddress, count: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    guard count > 0 else { return out }
    let stream = try driver.makeStream()
    defer { driver.destroyStream(stream) }
    try out.withUnsafeMutableBytes { b in
        try driver.copy(to: b.baseAddress!, from: address, count: count, on: stream)
        try driver.synchronize(stream)
    }
    return out
}

/// The region's bytes through its copy method (the exporter's DtoH copy when unmapped).
func readRegion(_ region: DeviceMemoryRegion, offset: Int, count: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    try out.withUnsafeMutableBytes { try region.copy(from: UInt64(offset), length: count, into: $0) }
    return out
}

/// A token consumer that records calls and enforces the kernel's limits.
final class RecordingConsumer: TokenReturning {
    var held: Set<UInt32>
    var calls: [[TokenRange]] = []
    init(held: some Sequence<UInt32>) { self.held = Set(held) }
    func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int {
        calls.append(ranges)
        guard ranges.count <= TokenLimits.maxRanges else { throw .tooManyRanges(ranges.count) }
        let total = ranges.reduce(0) { $0 + Int($1.count) }
        guard total <= TokenLimits.maxFragments else { throw .tooManyFragments(total) }
        var freed = 0
        for r in ranges {
            for t in r.start..<(r.start + r.count) {
                guard held.remove(t) != nil else { throw .unknownToken(t, freedBefore: freed) }
                freed += 1
            }
        }
        return freed
    }
}

/// A host pool with fragment support and a token table, as the receive path has them.
struct HostReceiveFixture {
    let provider: HostPageProvider
    let pool: PagePool
    let table: TokenTable

    init(chunkSize: Int = 65536, chunks: Int = 64, fragmentSize: Int = 65536) throws {
        provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks)
        pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, fragmentSize: fragmentSize, name: "gpu-test"))
        table = TokenTable(name: "gpu-test")
    }

    /// A received fragment of `length` bytes filled with `pattern(seed, …)`.
    func receive(length: Int, seed: Int) -> Fragment? {
        guard let f = pool.allocateFragment(length: length) else { return nil }
        let p = f.ref.area.address(of: f.ref)! + Int(f.offset)
        for i in 0..<length { p.storeBytes(of: pattern(seed, i), toByteOffset: i, as: UInt8.self) }
        return table.issue(f, owner: pool, regionOffset: 0, regionID: 0)
    }
}

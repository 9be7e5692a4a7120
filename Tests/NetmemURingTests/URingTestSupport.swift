import Glibc
import Netmem
import NetmemTestSupport
import NetmemURing
import SystemPackage

/// What the io_uring tests need beyond the shared support: the kernel's features (tests
/// that need one are skipped, with the reason printed) and a host-page pool.
enum URingTest {
    static let features: IOURing.Features? = try? IOURing.probeFeatures()
    static var hasBufferRings: Bool { features?.providedBufferRings ?? false }
    static var hasIncremental: Bool { features?.incrementalBuffers ?? false }
    static var hasSendZC: Bool { features?.sendZeroCopy ?? false }
    static var hasBigCompletionRings: Bool { features?.bigCompletionRings ?? false }

    static func skipReason(_ what: String) -> Bool {
        print("SKIP: \(what) is not available on this kernel (features: \(features.map { "\($0)" } ?? "io_uring unavailable"))")
        return false
    }

    /// A pool over host pages.
    static func pool(chunkSize: Int, chunks: Int, name: String) throws -> (PagePool, HostPageProvider) {
        let provider = try HostPageProvider(chunkSize: chunkSize, chunkCount: chunks)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, name: name))
        return (pool, provider)
    }

    static func bytes(count: Int, seed: UInt64) -> [UInt8] { TestData.bytes(count: count, seed: seed) }
}

/// Holds received segments (owned values) for tests that keep them a while.
final class HeldSegment: @unchecked Sendable {
    var segment: ReceivedSegment?
    init(_ segment: consuming ReceivedSegment) { self.segment = .some(segment) }
    var bytes: [UInt8] { segment!.withUnsafeBytes { Array($0) } }
    func release() { segment = nil }
}

/// Collects events (RX thread) and the bytes of each connection.
final class StreamCollector: @unchecked Sendable {
    var bytes: [ConnectionID: [UInt8]] = [:]
    var ends: [ConnectionID: ConnectionEnd] = [:]
    var offsetsContiguous = true

    func take(_ seg: borrowing ReceivedSegment) {
        var b = bytes[seg.connection, default: []]
        if UInt64(b.count) != seg.streamOffset { offsetsContiguous = false }
        seg.withUnsafeBytes { b.append(contentsOf: $0) }
        bytes[seg.connection] = b
    }
}

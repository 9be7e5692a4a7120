import Netmem
import NetmemDevice

/// A received frame as the kernel left it in the UMEM: which chunk, where in it, how
/// long. It owns its UMEM frame: the frame goes back to the pool (and from there to the
/// fill ring) when the value goes away or is released, exactly once, from any thread.
public struct XDPFrame: ~Copyable, Sendable {
    /// The UMEM chunk, leased: recycled when the frame goes away.
    let chunk: PoolBuffer
    /// Offset of the first byte from the start of the chunk (kernel headroom + UMEM headroom).
    public let offset: Int
    /// The frame's length in bytes, from its RX descriptor.
    public let length: Int

    /// The UMEM chunk holding the frame.
    public var ref: NetmemRef { chunk.ref }

    /// The frame's bytes, for reading and writing inside `body`.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try chunk.withUnsafeMutableBytes { (all) throws(E) -> R in
            try body(UnsafeMutableRawBufferPointer(rebasing: all[offset..<(offset + length)]))
        }
    }

    /// Gives the frame back now (the same as letting it go away).
    public consuming func release() {}

    public var description: String { "\(ref)+\(offset) (\(length) bytes)" }
}

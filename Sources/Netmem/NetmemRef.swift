/// One machine word naming a buffer: which area, which chunk. Mirrors the kernel's
/// `netmem_ref`. No reference counting: it is a plain value that can be stored in rings
/// and crossed between threads. Whether the CPU may read the memory it names is a
/// property of its area (`NetmemArea.isReadable`).
///
/// Layout: bits 48–63 area identifier, bits 0–31 chunk index, the rest zero.
@frozen
public struct NetmemRef: BitwiseCopyable, Sendable, Hashable, CustomStringConvertible {
    /// The packed word: area identifier in bits 48–63, chunk index in bits 0–31.
    public let rawValue: UInt64

    /// A reference from its packed word (`rawValue`); no check that the area exists.
    @inlinable
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The reference naming chunk `chunk` of the area with identifier `area`.
    @inlinable
    public init(area: UInt16, chunk: UInt32) {
        self.rawValue = UInt64(area) << 48 | UInt64(chunk)
    }

    /// The identifier of the area the chunk belongs to.
    @inlinable
    public var areaID: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 48) }

    /// The chunk's index inside its area.
    @inlinable
    public var chunk: UInt32 { UInt32(truncatingIfNeeded: rawValue) }

    /// The area this reference names (looked up in the area registry).
    public var area: NetmemArea {
        guard let area = NetmemArea.lookup(areaID) else {
            preconditionFailure("\(self) names an area that is not registered")
        }
        return area
    }

    public var description: String { "netmem(area \(areaID), chunk \(chunk))" }
}

/// A piece of a chunk: the unit handed out by a pool with fragment support (mirrors
/// `page_pool_alloc_frag`'s page + offset). Fragments of one chunk share the chunk's
/// reference count; the chunk recycles when its last fragment returns.
@frozen
public struct NetmemFragment: BitwiseCopyable, Sendable, Hashable, CustomStringConvertible {
    /// The chunk the fragment lies in.
    public var ref: NetmemRef
    /// The fragment's first byte, as an offset from the start of the chunk.
    public var offset: UInt32
    /// The fragment's length in bytes.
    public var length: UInt32

    /// A fragment of `length` bytes at `offset` in `ref`'s chunk.
    @inlinable
    public init(ref: NetmemRef, offset: UInt32, length: UInt32) {
        self.ref = ref
        self.offset = offset
        self.length = length
    }

    public var description: String { "\(ref)+\(offset) (\(length) bytes)" }
}

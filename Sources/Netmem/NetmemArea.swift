import CNetmemLinux
import Synchronization

/// A contiguous run of equal-size chunks from one provider. Mirrors the kernel's
/// `net_iov_area`. The base address is known only when the CPU may read the memory;
/// every chunk has a device (DMA) address.
///
/// Each chunk carries one word of metadata (the kernel keeps the same in `struct
/// net_iov`): which pool owns it, whether it is handed out, and its fragment reference
/// count. Areas register themselves so a `NetmemRef` can be resolved to its area.
public final class NetmemArea: @unchecked Sendable, CustomStringConvertible {
    /// The area's identifier in the registry (never 0); the top 16 bits of every `NetmemRef` into it.
    public let id: UInt16
    /// The name its creator gave it ("host", "hugepage", "memfd", …), for logs and descriptions.
    public let name: String
    /// Bytes per chunk.
    public let chunkSize: Int
    /// The number of chunks in the area.
    public let chunkCount: Int
    /// The CPU address of chunk 0, or nil when the CPU may not read this memory.
    public let baseAddress: UnsafeMutableRawPointer?
    /// The device address of chunk 0; chunk i is at `deviceBase + i * chunkSize`.
    public let deviceBase: UInt64
    @usableFromInline let meta: UnsafeMutablePointer<Atomic<UInt64>>

    /// Creates and registers an area. `baseAddress` must be nil for memory the CPU may not
    /// read. The caller keeps the memory mapped for the area's whole life.
    public init(
        name: String, chunkSize: Int, chunkCount: Int,
        baseAddress: UnsafeMutableRawPointer?, deviceBase: UInt64
    ) throws(NetmemError) {
        guard chunkCount > 0, chunkCount <= Int(UInt32.max) else { throw .invalidChunkCount(chunkCount) }
        self.name = name
        self.chunkSize = chunkSize
        self.chunkCount = chunkCount
        self.baseAddress = baseAddress
        self.deviceBase = deviceBase
        // Cache-line aligned: the words of chunks 8k…8k+7 share one line.
        let meta = UnsafeMutableRawPointer.allocate(byteCount: chunkCount * 8, alignment: Self.metadataAlignment)
            .bindMemory(to: Atomic<UInt64>.self, capacity: chunkCount)
        for i in 0..<chunkCount { (meta + i).initialize(to: Atomic(0)) }
        self.meta = meta
        guard let id = Self.registry.withLockChecked({ $0.reserve() }) else {
            meta.deinitialize(count: chunkCount)
            UnsafeMutableRawPointer(meta).deallocate()
            throw .tooManyAreas
        }
        self.id = id
        Self.registry.withLockChecked { $0.areas[id] = Unmanaged.passUnretained(self) }
        cnm_area_meta_set(id, UnsafeMutableRawPointer(meta))
    }

    deinit {
        cnm_area_meta_set(id, nil)
        _ = Self.registry.withLockChecked { $0.areas.removeValue(forKey: id) }
        meta.deinitialize(count: chunkCount)
        UnsafeMutableRawPointer(meta).deallocate()
    }

    /// The alignment of the metadata array: one cache line, so chunk `i`'s word lies in
    /// the array's line `i / 8`.
    public static let metadataAlignment = 64

    /// Whether the CPU may read and write this area's memory.
    public var isReadable: Bool { baseAddress != nil }

    /// The reference naming chunk `index` of this area.
    @inlinable
    public func ref(chunk index: Int) -> NetmemRef {
        precondition(index >= 0 && index < chunkCount, "chunk \(index) is outside area \(id) (\(chunkCount) chunks)")
        return NetmemRef(area: id, chunk: UInt32(index))
    }

    /// Whether `ref` names a chunk of this area.
    @inlinable
    public func contains(_ ref: NetmemRef) -> Bool {
        ref.areaID == id && Int(ref.chunk) < chunkCount
    }

    /// The CPU address of the chunk `ref` names, or nil when the area is not readable.
    @inlinable
    public func address(of ref: NetmemRef) -> UnsafeMutableRawPointer? {
        precondition(contains(ref), "\(ref) does not belong to area \(id)")
        return baseAddress.map { $0 + Int(ref.chunk) &* chunkSize }
    }

    /// The device (DMA) address of the chunk `ref` names.
    public func deviceAddress(of ref: NetmemRef) -> UInt64 {
        precondition(contains(ref), "\(ref) does not belong to area \(id)")
        return deviceBase + UInt64(ref.chunk) * UInt64(chunkSize)
    }

    /// The bytes of a chunk for reading and writing; traps when the area is not readable
    /// (check `isReadable` first, or use a region's copy method).
    public func withUnsafeMutableBytes<R, E: Error>(
        of ref: NetmemRef, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        guard let p = address(of: ref) else {
            preconditionFailure("\(ref) lies in area '\(name)', which the CPU may not read")
        }
        return try body(UnsafeMutableRawBufferPointer(start: p, count: chunkSize))
    }

    public var description: String {
        "area \(id) '\(name)': \(chunkCount) × \(chunkSize) bytes, " + (isReadable ? "readable" : "device only")
    }

    /// The registered area with this identifier, if any.
    public static func lookup(_ id: UInt16) -> NetmemArea? {
        registry.withLockChecked { $0.areas[id]?.takeUnretainedValue() }
    }

    /// The number of areas registered now.
    public static var registeredCount: Int { registry.withLockChecked { $0.areas.count } }

    struct Registry: ~Copyable {
        var areas: [UInt16: Unmanaged<NetmemArea>] = [:]
        var next: UInt16 = 1

        mutating func reserve() -> UInt16? {
            guard areas.count < Int(UInt16.max) else { return nil }
            while areas[next] != nil || next == 0 { next &+= 1 }
            let id = next
            next &+= 1
            areas[id] = nil
            return id
        }
    }

    static let registry = Mutex(Registry())
}

/// The per-chunk metadata word, kept in the area (the kernel's `net_iov`: `pp` and
/// `pp_ref_count`). Layout: bit 63 handed out, bits 32–62 owning pool, bits 0–31
/// fragment reference count.
@usableFromInline
enum ChunkMeta {
    @usableFromInline static let handedOut: UInt64 = 1 << 63
    @usableFromInline static let refMask: UInt64 = 0xFFFF_FFFF

    /// The metadata word of `ref`'s chunk. The area must be registered.
    @inlinable @inline(__always)
    static func word(_ ref: NetmemRef) -> UnsafeMutablePointer<Atomic<UInt64>> {
        guard let base = cnm_area_meta(ref.areaID) else {
            preconditionFailure("\(ref) names an area that is not registered")
        }
        return base.assumingMemoryBound(to: Atomic<UInt64>.self) + Int(ref.chunk)
    }

    @inlinable @inline(__always)
    static func owner(_ word: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: (word >> 32) & 0x7FFF_FFFF) }

    @inlinable @inline(__always)
    static func make(owner: UInt32, handedOut: Bool, refs: UInt32 = 0) -> UInt64 {
        UInt64(owner) << 32 | (handedOut ? Self.handedOut : 0) | UInt64(refs)
    }
}

import CNetmemLinux
import Synchronization

/// The area a pool's chunks come from (the first area its provider gave it), with the
/// base of that area's metadata array biased so that a chunk's metadata word is
/// `biased + rawValue * 8`: one address computation, no table lookup, no branch.
///
/// For a reference of the home area, `rawValue = area << 48 | chunk`, so
/// `biased + rawValue * 8 = base - (area << 51) + (area << 51) + chunk * 8` in wrapping
/// arithmetic. Batch loops check once per batch that every reference lies in the home
/// area (and has the middle 16 bits clear) before using it; anything else takes the
/// per-chunk lookup path.
///
/// Set once by the owner at the first refill from the provider and never changed; read
/// by any thread (the bits with acquiring order, then the base).
@usableFromInline
struct HomeArea: ~Copyable, Sendable {
    /// `area << 48` of the home area; `UInt64.max` until set (no reference matches it).
    @usableFromInline let bits = Atomic<UInt64>(.max)
    @usableFromInline let biased = Atomic<UInt>(0)
    @usableFromInline init() {}

    /// Whether `ref`'s bits above the chunk index equal `homeBits`.
    @inlinable @inline(__always)
    static func isHome(_ raw: UInt64, _ homeBits: UInt64) -> Bool { (raw ^ homeBits) >> 32 == 0 }

    /// The metadata word of a home-area chunk.
    @inlinable @inline(__always)
    static func word(_ raw: UInt64, biased: UInt) -> UnsafeMutablePointer<Atomic<UInt64>> {
        UnsafeMutablePointer(bitPattern: biased &+ (UInt(truncatingIfNeeded: raw) &<< 3)).unsafelyUnwrapped
    }

    /// Makes `ref`'s area the home area if none is set yet. Owner thread only.
    func adopt(_ ref: NetmemRef) {
        guard bits.load(ordering: .relaxed) == .max, let base = cnm_area_meta(ref.areaID) else { return }
        let areaBits = UInt64(ref.areaID) << 48
        biased.store(UInt(bitPattern: base) &- (UInt(truncatingIfNeeded: areaBits) &<< 3), ordering: .relaxed)
        bits.store(areaBits, ordering: .releasing)
    }
}

extension PagePool {
    /// Whether every reference in `refs` lies in the home area: one pass that ORs the
    /// differences (vectorised by the compiler), no branch per reference.
    @inlinable @inline(__always)
    static func allHome(_ refs: UnsafePointer<NetmemRef>, _ count: Int, _ homeBits: UInt64) -> Bool {
        var acc: UInt64 = 0
        var i = 0
        while i < count {
            acc |= refs[i].rawValue ^ homeBits
            i &+= 1
        }
        return acc >> 32 == 0
    }

    /// `allHome`, copying the references to `dst` in the same pass.
    @inlinable @inline(__always)
    static func copyAllHome(_ refs: UnsafePointer<NetmemRef>, _ count: Int, _ homeBits: UInt64,
                            to dst: UnsafeMutablePointer<NetmemRef>) -> Bool {
        var acc: UInt64 = 0
        var i = 0
        while i < count {
            let raw = refs[i].rawValue
            dst[i] = NetmemRef(rawValue: raw)
            acc |= raw ^ homeBits
            i &+= 1
        }
        return acc >> 32 == 0
    }
}

import CNetmemLinux
import Synchronization

/// A bounded lock-free ring that many threads put chunk references into and one thread
/// (the pool's owner) takes them out of. Mirrors the kernel's `ptr_ring` in `page_pool`:
/// the way buffers freed on other threads get back to the allocating thread.
///
/// A slot holds the bitwise complement of its value while full and 0 while free, so a
/// slot is one word and eight share a cache line. Producers reserve a run of positions
/// with one compare-and-swap on the tail — one atomic read-modify-write per batch, as
/// DPDK's `rte_ring` enqueue — after checking it against the consumer's published head,
/// then fill their slots with plain release stores. The consumer takes slots in order,
/// clears them, and publishes its head once per batch it takes.
///
/// The producers' tail, the consumer's published head and the consumer's private head
/// each live on their own cache line (two lines apart, clear of the adjacent-line
/// prefetcher), and the object's own fields are written only at initialisation, so a
/// producer and the consumer share nothing but the slots they hand over and one word
/// per batch.
///
/// Public so that data paths with their own buffer ids (an io_uring receiver's buffer
/// ids going back to its RX thread) use the same ring rather than another copy.
public final class RecycleRing: @unchecked Sendable {
    /// The number of slots: the requested capacity rounded up to a power of two (at least 2).
    public let capacity: Int
    @usableFromInline let mask: Int
    /// `capacity` slots; ~value when full, 0 when free.
    @usableFromInline let slots: UnsafeMutablePointer<Atomic<UInt64>>
    /// Producers' reservation position.
    @usableFromInline let tail: UnsafeMutablePointer<Atomic<Int>>
    /// The consumer's position as producers see it: every slot before it is free.
    @usableFromInline let published: UnsafeMutablePointer<Atomic<Int>>
    /// The consumer's position, read and written by the consumer only.
    @usableFromInline let consumer: UnsafeMutablePointer<Int>

    /// Bytes between the control words: two cache lines.
    static let lineStride = 128

    /// A ring of at least `requested` slots (rounded up to a power of two).
    public init(capacity requested: Int) {
        var c = 1
        while c < max(2, requested) { c <<= 1 }
        capacity = c
        mask = c - 1
        let rawSlots = UnsafeMutableRawPointer.allocate(byteCount: c * 8, alignment: 64)
        slots = rawSlots.bindMemory(to: Atomic<UInt64>.self, capacity: c)
        for i in 0..<c { (slots + i).initialize(to: Atomic(0)) }
        let control = UnsafeMutableRawPointer.allocate(byteCount: 3 * Self.lineStride, alignment: Self.lineStride)
        tail = control.bindMemory(to: Atomic<Int>.self, capacity: 1)
        tail.initialize(to: Atomic(0))
        published = (control + Self.lineStride).bindMemory(to: Atomic<Int>.self, capacity: 1)
        published.initialize(to: Atomic(0))
        consumer = (control + 2 * Self.lineStride).bindMemory(to: Int.self, capacity: 1)
        consumer.initialize(to: 0)
    }

    deinit {
        slots.deinitialize(count: capacity)
        UnsafeMutableRawPointer(slots).deallocate()
        tail.deinitialize(count: 1)
        published.deinitialize(count: 1)
        consumer.deinitialize(count: 1)
        UnsafeMutableRawPointer(tail).deallocate()
    }

    /// Everything ever put into the ring (reserved; a producer may still be writing the
    /// last few slots).
    @usableFromInline var produced: Int { tail.pointee.load(ordering: .relaxed) }

    /// Everything the consumer took out. The single consumer only.
    @usableFromInline var head: Int { consumer.pointee }

    /// Reserves `n` positions (`n <= capacity`); nil when they do not fit now.
    @inlinable @inline(__always)
    func reserve(_ n: Int) -> Int? {
        var pos = tail.pointee.load(ordering: .relaxed)
        while true {
            // Acquiring: the consumer cleared every slot before `free` before publishing it.
            let free = published.pointee.load(ordering: .acquiring)
            if pos &- free > capacity &- n { return nil }
            let (won, current) = tail.pointee.weakCompareExchange(
                expected: pos, desired: pos &+ n, successOrdering: .relaxed, failureOrdering: .relaxed)
            if won { return pos }
            pos = current
        }
    }

    /// Puts one value in; false when the ring is full. Any thread. `UInt64.max` is the
    /// one value that cannot be carried (its complement marks a free slot).
    @inlinable
    public func push(_ value: UInt64) -> Bool {
        precondition(value != .max, "RecycleRing cannot carry UInt64.max")
        guard let pos = reserve(1) else { return false }
        slots[pos & mask].store(~value, ordering: .releasing)
        return true
    }

    /// Puts `values` in as one reservation; returns how many went in (all or none when
    /// `values.count` fits the ring, fewer only for a batch larger than the ring). Any thread.
    @inlinable
    func push(_ values: UnsafeBufferPointer<NetmemRef>) -> Int {
        let n = values.count
        if n == 0 { return 0 }
        if n > capacity {
            var done = 0
            while done < n {
                let part = UnsafeBufferPointer(rebasing: values[done..<min(n, done + capacity)])
                let pushed = push(part)
                done += pushed
                if pushed < part.count { break }
            }
            return done
        }
        guard let pos = reserve(n) else { return 0 }
        let src = values.baseAddress.unsafelyUnwrapped
        let slots = self.slots
        let mask = self.mask
        var i = 0
        while i < n {
            slots[(pos &+ i) & mask].store(~src[i].rawValue, ordering: .releasing)
            i &+= 1
        }
        return n
    }

    /// Takes the oldest value out, or nil when the ring is empty. The single consumer only.
    public func pop() -> UInt64? {
        var ref = NetmemRef(rawValue: 0)
        return pop(into: &ref, max: 1) == 1 ? ref.rawValue : nil
    }

    /// Takes up to `n` values out, in order, and publishes the freed slots once. The
    /// single consumer only.
    @inlinable
    func pop(into out: UnsafeMutablePointer<NetmemRef>, max n: Int) -> Int {
        let start = consumer.pointee
        let slots = self.slots
        let mask = self.mask
        var got = 0
        while got < n {
            let slot = slots + ((start &+ got) & mask)
            let v = slot.pointee.load(ordering: .acquiring)
            if v == 0 { break }
            slot.pointee.store(0, ordering: .relaxed)
            out[got] = NetmemRef(rawValue: ~v)
            got &+= 1
        }
        if got > 0 {
            consumer.pointee = start &+ got
            // Releasing: the cleared slots are free before a producer sees them as free.
            published.pointee.store(start &+ got, ordering: .releasing)
        }
        return got
    }
}

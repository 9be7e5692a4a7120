import CNetmemLinux
import Synchronization

/// A bounded lock-free ring that many threads put chunk references into and one thread
/// (the pool's owner) takes them out of. Mirrors the kernel's `ptr_ring` in `page_pool`:
/// the way buffers freed on other threads get back to the allocating thread.
///
/// Each slot carries a sequence number: a slot at position `p` is free for a producer
/// when its sequence is `p`, and holds a value for the consumer when it is `p + 1`.
/// Producers reserve positions with a compare-and-swap on the tail; the consumer frees a
/// slot by moving its sequence one lap ahead.
///
/// Public so that data paths with their own buffer ids (an io_uring receiver's buffer
/// ids going back to its RX thread) use the same ring rather than another copy.
public final class RecycleRing: @unchecked Sendable {
    @usableFromInline
    struct Slot: ~Copyable {
        @usableFromInline let sequence: Atomic<Int>
        @usableFromInline var value: UInt64
        @usableFromInline init(sequence: Int) {
            self.sequence = Atomic(sequence)
            self.value = 0
        }
    }

    public let capacity: Int
    @usableFromInline let mask: Int
    @usableFromInline let slots: UnsafeMutablePointer<Slot>
    /// Producer position; padded away from the consumer's.
    @usableFromInline let tail: UnsafeMutablePointer<Atomic<Int>>
    /// Consumer position: read and written only by the single consumer.
    @usableFromInline var head: Int = 0

    /// A ring of at least `requested` slots (rounded up to a power of two).
    public init(capacity requested: Int) {
        var c = 1
        while c < max(2, requested) { c <<= 1 }
        capacity = c
        mask = c - 1
        slots = .allocate(capacity: c)
        for i in 0..<c { (slots + i).initialize(to: Slot(sequence: i)) }
        // Own cache line for the producers' tail.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
        tail = raw.bindMemory(to: Atomic<Int>.self, capacity: 1)
        tail.initialize(to: Atomic(0))
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
        tail.deinitialize(count: 1)
        UnsafeMutableRawPointer(tail).deallocate()
    }

    /// Everything ever put into the ring.
    @usableFromInline var produced: Int { tail.pointee.load(ordering: .relaxed) }

    /// Puts one value in; false when the ring is full. Any thread.
    @inlinable
    public func push(_ value: UInt64) -> Bool {
        var pos = tail.pointee.load(ordering: .relaxed)
        while true {
            let slot = slots + (pos & mask)
            let seq = slot.pointee.sequence.load(ordering: .acquiring)
            if seq == pos {
                let (won, current) = tail.pointee.weakCompareExchange(
                    expected: pos, desired: pos &+ 1, successOrdering: .relaxed, failureOrdering: .relaxed)
                if won {
                    slot.pointee.value = value
                    slot.pointee.sequence.store(pos &+ 1, ordering: .releasing)
                    return true
                }
                pos = current
            } else if seq < pos {
                return false
            } else {
                pos = tail.pointee.load(ordering: .relaxed)
            }
        }
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
        var pos = tail.pointee.load(ordering: .relaxed)
        while true {
            // Slots are freed in order by the single consumer: when the last slot of the
            // batch is free, every one before it is too.
            let last = slots + ((pos &+ n &- 1) & mask)
            let seq = last.pointee.sequence.load(ordering: .acquiring)
            if seq == pos &+ n &- 1 {
                let (won, current) = tail.pointee.weakCompareExchange(
                    expected: pos, desired: pos &+ n, successOrdering: .relaxed, failureOrdering: .relaxed)
                if won {
                    for i in 0..<n {
                        let slot = slots + ((pos &+ i) & mask)
                        slot.pointee.value = values[i].rawValue
                        slot.pointee.sequence.store(pos &+ i &+ 1, ordering: .releasing)
                    }
                    return n
                }
                pos = current
            } else if seq < pos &+ n &- 1 {
                return 0
            } else {
                pos = tail.pointee.load(ordering: .relaxed)
            }
        }
    }

    /// Takes the oldest value out, or nil when the ring is empty. The single consumer only.
    public func pop() -> UInt64? {
        var ref = NetmemRef(rawValue: 0)
        return pop(into: &ref, max: 1) == 1 ? ref.rawValue : nil
    }

    /// Takes up to `n` values out, in order. The single consumer only.
    @inlinable
    func pop(into out: UnsafeMutablePointer<NetmemRef>, max n: Int) -> Int {
        var got = 0
        while got < n {
            let slot = slots + (head & mask)
            guard slot.pointee.sequence.load(ordering: .acquiring) == head &+ 1 else { break }
            out[got] = NetmemRef(rawValue: slot.pointee.value)
            slot.pointee.sequence.store(head &+ capacity, ordering: .releasing)
            head &+= 1
            got += 1
        }
        return got
    }
}

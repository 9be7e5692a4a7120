import Synchronization

/// A bounded lock-free queue that any thread pushes buffer ids into and one thread (the
/// receiver's RX thread) pops them from: how returns cross threads. Each slot carries a
/// sequence number: free for the producer at position `p` when it reads `p`, full for
/// the consumer when it reads `p + 1`.
final class ReturnQueue: @unchecked Sendable {
    private struct Slot: ~Copyable {
        let sequence: Atomic<Int>
        var value: UInt16 = 0
        init(_ s: Int) { sequence = Atomic(s) }
    }

    let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<Slot>
    private let tail = Atomic<Int>(0)
    /// Consumer position; the RX thread only.
    private var head = 0

    /// A queue holding at least `minimumCapacity` values.
    init(minimumCapacity: Int) {
        var c = 2
        while c < minimumCapacity { c <<= 1 }
        capacity = c
        mask = c - 1
        slots = .allocate(capacity: c)
        for i in 0..<c { (slots + i).initialize(to: Slot(i)) }
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// Pushes a value; false when full. Any thread.
    func push(_ value: UInt16) -> Bool {
        var pos = tail.load(ordering: .relaxed)
        while true {
            let slot = slots + (pos & mask)
            let seq = slot.pointee.sequence.load(ordering: .acquiring)
            if seq == pos {
                let (won, current) = tail.weakCompareExchange(expected: pos, desired: pos &+ 1,
                                                              successOrdering: .relaxed, failureOrdering: .relaxed)
                if won {
                    slot.pointee.value = value
                    slot.pointee.sequence.store(pos &+ 1, ordering: .releasing)
                    return true
                }
                pos = current
            } else if seq < pos {
                return false
            } else {
                pos = tail.load(ordering: .relaxed)
            }
        }
    }

    /// Pops one value, or nil when empty. The single consumer only.
    func pop() -> UInt16? {
        let slot = slots + (head & mask)
        guard slot.pointee.sequence.load(ordering: .acquiring) == head &+ 1 else { return nil }
        let v = slot.pointee.value
        slot.pointee.sequence.store(head &+ capacity, ordering: .releasing)
        head &+= 1
        return v
    }

    /// Whether a value is waiting (a hint; the consumer only).
    var isEmpty: Bool { (slots + (head & mask)).pointee.sequence.load(ordering: .acquiring) != head &+ 1 }
}

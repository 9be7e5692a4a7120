/// A ring allocator of destination space in a device region: reservations are carved in
/// order from a contiguous ring (a reservation never wraps: the tail end is skipped when
/// it is too short), and space comes back when the oldest reservations are released
/// (releases may arrive in any order; space is reclaimed from the front). Not
/// thread-safe: its owner serialises access.
public struct DeviceRing: Sendable {
    public let capacity: Int
    public let alignment: Int

    struct Slot {
        var id: UInt64
        /// Ring positions (monotonic; offset is position % capacity).
        var start: UInt64
        var end: UInt64
        var released: Bool
    }

    private var slots: [Slot] = []
    private var first = 0
    private var write: UInt64 = 0
    private var read: UInt64 = 0
    private var nextID: UInt64 = 1

    /// `alignment` must be a power of two.
    public init(capacity: Int, alignment: Int = 256) {
        precondition(capacity > 0, "device ring of \(capacity) bytes")
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "ring alignment \(alignment) is not a power of two")
        self.capacity = capacity
        self.alignment = alignment
    }

    /// Bytes reserved and not yet reclaimed (including skipped tail ends).
    public var used: Int { Int(write - read) }
    /// Reservations not yet released.
    public var outstanding: Int { slots.count - first - slots[first...].filter(\.released).count }

    /// Reserves `length` contiguous bytes; returns the reservation's id and its offset in
    /// the region, or nil when there is no room now.
    public mutating func reserve(_ length: Int) -> (id: UInt64, offset: Int)? {
        precondition(length >= 0, "ring reservation of \(length) bytes")
        let size = UInt64(roundUp(max(length, 0), alignment))
        guard size <= UInt64(capacity) else { return nil }
        if first == slots.count {  // empty: start over at the beginning
            write = 0
            read = 0
        }
        var start = write
        let offset = Int(start % UInt64(capacity))
        if offset + Int(size) > capacity { start += UInt64(capacity - offset) }  // skip the short tail
        guard start + size - read <= UInt64(capacity) else { return nil }
        let id = nextID
        nextID += 1
        slots.append(Slot(id: id, start: write, end: start + size, released: false))
        write = start + size
        return (id, Int(start % UInt64(capacity)))
    }

    /// Gives a reservation back. Releasing an unknown or already released id is a
    /// programming error.
    public mutating func release(_ id: UInt64) {
        guard first < slots.count, id >= slots[first].id, let i = Optional(first + Int(id - slots[first].id)),
              i < slots.count, slots[i].id == id, !slots[i].released else {
            preconditionFailure("device ring release of reservation \(id), which is not outstanding")
        }
        slots[i].released = true
        while first < slots.count && slots[first].released {
            read = slots[first].end
            first += 1
        }
        if first == slots.count {
            slots.removeAll(keepingCapacity: true)
            first = 0
        } else if first >= 256 && first * 2 >= slots.count {
            slots.removeFirst(first)
            first = 0
        }
    }
}

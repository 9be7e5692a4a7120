import NetmemDevice

/// The unpack step: a message's payload fragments, scattered over a device region where
/// the NIC (or a bounce copy, or pinned host memory the GPU reads in place) put them, are
/// gathered into one contiguous destination buffer on the GPU. One batch is a sequence of
/// device-to-device copies on one stream (fragments adjacent in device memory merge into
/// one copy) followed by one event; `poll` reports a batch once its event completes and
/// returns the fragments' tokens then — the work NCCL's devmem plugin does with an unpack
/// kernel.
///
/// Every fragment is checked before anything is issued: it must name the source region
/// and lie inside it, and the destination must hold the message (typed errors otherwise).
/// `unpack(_ message:)` keeps the message (and so its tokens) until the batch completes,
/// and lets it go at once when the batch fails; `wouldBlock` takes nothing.
///
/// One thread uses an unpacker.
public final class Unpacker {
    /// A batch whose copies are done: the destination holds the message.
    public struct Completed: Sendable, Equatable {
        public var id: UInt64
        public var destinationOffset: Int
        public var length: Int
        /// Device copies issued (after merging adjacent fragments).
        public var copies: Int
        public var fragments: Int
    }

    public struct Statistics: Sendable, Equatable, CustomStringConvertible {
        public var batches = 0
        public var completed = 0
        public var bytes = 0
        public var copies = 0
        public var fragments = 0
        public var rejected = 0
        /// Messages let go (their tokens given back) after their batch ended.
        public var messagesReleased = 0
        public var description: String {
            "batches=\(batches) completed=\(completed) bytes=\(bytes) copies=\(copies) fragments=\(fragments) "
                + "rejected=\(rejected) messages_released=\(messagesReleased)"
        }
    }

    struct Batch {
        var completed: Completed
        var event: GPUEvent
        var held: Message?
    }

    public let driver: any GPUDriver
    public private(set) var statistics = Statistics()
    private let stream: GPUStream
    private var allEvents: [GPUEvent] = []
    private var freeEvents: [GPUEvent] = []
    private var batches: [Batch] = []
    private var head = 0
    private var nextID: UInt64 = 1
    private var closed = false

    /// An unpacker with at most `maxInFlight` batches outstanding.
    public init(driver: any GPUDriver, maxInFlight: Int = 16) throws(GPUError) {
        guard maxInFlight > 0 else { throw .invalidArgument("maxInFlight must be at least 1") }
        self.driver = driver
        stream = try driver.makeStream()
        do throws(GPUError) {
            for _ in 0..<maxInFlight { allEvents.append(try driver.makeEvent()) }
        } catch {
            for e in allEvents { driver.destroyEvent(e) }
            driver.destroyStream(stream)
            throw error
        }
        freeEvents = allEvents.reversed()
    }

    deinit {
        close()
        for e in allEvents { driver.destroyEvent(e) }
        driver.destroyStream(stream)
    }

    public var inFlightCount: Int { batches.count - head }

    /// Gathers a received message's payload (in its region) into `destination` starting
    /// at `offset`, in order, and keeps the message until the copies are done: its tokens
    /// go back then. Returns the batch id `poll` reports. With `wait` false, throws
    /// `wouldBlock` (keeping nothing) when every batch slot is busy instead of waiting.
    ///
    /// - Throws: `GPUError` for a fragment outside its region, a destination too small,
    ///   or a failed copy (the message is let go then).
    @discardableResult
    public func unpack(_ message: Message, into destination: DeviceMemoryRegion, at offset: Int = 0,
                       wait: Bool = true) throws(GPUError) -> UInt64 {
        guard let source = message.region else {
            throw .invalidArgument("the message names no region its fragments lie in")
        }
        return try unpack(message.fragments, from: source, into: destination, at: offset, wait: wait, holding: message)
    }

    /// Gathers `fragments` (in `source`) into `destination` starting at `offset`, in order.
    /// Returns the batch id `poll` reports. With `wait` false, throws `wouldBlock` when
    /// every batch slot is busy instead of waiting for the oldest.
    @discardableResult
    public func unpack(_ fragments: [Fragment], from source: DeviceMemoryRegion, into destination: DeviceMemoryRegion,
                       at offset: Int = 0, wait: Bool = true) throws(GPUError) -> UInt64 {
        try unpack(fragments, from: source, into: destination, at: offset, wait: wait, holding: nil)
    }

    private func unpack(_ fragments: [Fragment], from source: DeviceMemoryRegion, into destination: DeviceMemoryRegion,
                        at offset: Int, wait: Bool, holding held: Message?) throws(GPUError) -> UInt64 {
        precondition(!closed, "unpack on a closed unpacker")
        // Validate everything first.
        var total = 0
        for (i, f) in fragments.enumerated() {
            guard f.regionID == source.id else {
                reject(held)
                throw .fragmentFromOtherRegion(index: i, regionID: f.regionID, expected: source.id)
            }
            guard f.length >= 0, f.regionOffset <= UInt64(source.size), UInt64(f.length) <= UInt64(source.size) - f.regionOffset else {
                reject(held)
                throw .fragmentOutsideRegion(index: i, offset: f.regionOffset, length: f.length, regionSize: source.size)
            }
            total += f.length
        }
        guard offset >= 0, offset <= destination.size, total <= destination.size - offset else {
            reject(held)
            throw .destinationTooSmall(needed: total, capacity: max(destination.size - max(offset, 0), 0))
        }
        // Plan the copies: source pieces (split at segment ends) against destination
        // pieces, merging runs adjacent on both sides.
        var plan: [(to: DeviceAddress, from: DeviceAddress, count: Int)] = []
        do throws(GPUError) {
            var sourcePieces: [(DeviceAddress, Int)] = []
            for f in fragments {
                try source.forEachDevicePiece(offset: f.regionOffset, length: f.length) { (a, n) throws(GPUError) in
                    sourcePieces.append((a, n))
                }
            }
            var at = UInt64(offset)
            for (from, n) in sourcePieces {
                var from = from
                var left = n
                while left > 0 {
                    var destPiece: (DeviceAddress, Int) = (0, 0)
                    try destination.forEachDevicePiece(offset: at, length: left) { (a, m) throws(GPUError) in
                        if destPiece.1 == 0 { destPiece = (a, m) }
                    }
                    let m = destPiece.1
                    if let last = plan.last, last.from + UInt64(last.count) == from, last.to + UInt64(last.count) == destPiece.0 {
                        plan[plan.count - 1].count += m
                    } else {
                        plan.append((destPiece.0, from, m))
                    }
                    from += UInt64(m)
                    at += UInt64(m)
                    left -= m
                }
            }
        } catch {
            reject(held)
            throw error
        }
        // A batch slot.
        while freeEvents.isEmpty {
            do throws(GPUError) {
                if try reap() > 0 { break }
                guard wait else { throw GPUError.wouldBlock }
                try driver.wait(batches[head].event)
            } catch {
                if error != .wouldBlock { reject(held) }
                throw error
            }
        }
        let event = freeEvents.removeLast()
        do throws(GPUError) {
            for c in plan where c.count > 0 { try driver.copy(to: c.to, from: c.from, count: c.count, on: stream) }
            try driver.record(event, on: stream)
        } catch {
            try? driver.synchronize(stream)
            freeEvents.append(event)
            reject(held)
            throw error
        }
        let id = nextID
        nextID += 1
        batches.append(Batch(completed: Completed(id: id, destinationOffset: offset, length: total, copies: plan.count,
                                                  fragments: fragments.count),
                             event: event, held: held))
        statistics.batches += 1
        statistics.copies += plan.count
        statistics.fragments += fragments.count
        return id
    }

    /// The batches completed since the last call, oldest first (their messages let go).
    public func poll() throws(GPUError) -> [Completed] {
        _ = try reap()
        defer { pending.removeAll() }
        return pending
    }

    /// Waits for every batch and reports them as `poll` does.
    public func drain() throws(GPUError) -> [Completed] {
        while head < batches.count {
            try driver.wait(batches[head].event)
            _ = try reap()
        }
        defer { pending.removeAll() }
        return pending
    }

    /// Waits for the batches still running (best effort) and lets their messages go.
    /// Called by deinit.
    public func close() {
        guard !closed else { return }
        closed = true
        try? driver.synchronize(stream)
        while head < batches.count {
            giveBack(batches[head].held)
            freeEvents.append(batches[head].event)
            batches[head].held = nil  // the message goes now, not when the array is cleared
            head += 1
        }
        batches.removeAll()
        head = 0
    }

    private var pending: [Completed] = []

    private func reap() throws(GPUError) -> Int {
        var n = 0
        while head < batches.count, try driver.isComplete(batches[head].event) {
            let b = batches[head]
            batches[head].held = nil  // the message goes now, not when the array is cleared
            head += 1
            giveBack(b.held)
            freeEvents.append(b.event)
            statistics.completed += 1
            statistics.bytes += b.completed.length
            pending.append(b.completed)
            n += 1
        }
        if head == batches.count {
            batches.removeAll(keepingCapacity: true)
            head = 0
        }
        return n
    }

    /// Lets a batch's message go (its tokens go back when no other copy holds it).
    private func giveBack(_ held: Message?) {
        guard held != nil else { return }
        statistics.messagesReleased += 1
    }

    private func reject(_ held: Message?) {
        statistics.rejected += 1
        giveBack(held)
    }
}

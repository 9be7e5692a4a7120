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
/// With a `consumer`, `unpack` takes the message's tokens: they go back when the batch
/// completes, or at once when it fails (except `wouldBlock`, which takes nothing).
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
        public var tokensReturned = 0
        public var tokensRefused = 0
        public var description: String {
            "batches=\(batches) completed=\(completed) bytes=\(bytes) copies=\(copies) fragments=\(fragments) "
                + "rejected=\(rejected) tokens_returned=\(tokensReturned) tokens_refused=\(tokensRefused)"
        }
    }

    struct Batch {
        var completed: Completed
        var event: GPUEvent
        var tokens: [UInt32]
    }

    public let driver: any GPUDriver
    public let consumer: (any TokenReturning)?
    public private(set) var statistics = Statistics()
    private let stream: GPUStream
    private var allEvents: [GPUEvent] = []
    private var freeEvents: [GPUEvent] = []
    private var batches: [Batch] = []
    private var head = 0
    private var nextID: UInt64 = 1
    private var closed = false

    /// An unpacker with at most `maxInFlight` batches outstanding, returning tokens to
    /// `consumer` when one is given.
    public init(driver: any GPUDriver, maxInFlight: Int = 16, consumer: (any TokenReturning)? = nil) throws(GPUError) {
        guard maxInFlight > 0 else { throw .invalidArgument("maxInFlight must be at least 1") }
        self.driver = driver
        self.consumer = consumer
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

    /// Gathers `fragments` (in `source`) into `destination` starting at `offset`, in order.
    /// Returns the batch id `poll` reports. With `wait` false, throws `wouldBlock` when
    /// every batch slot is busy instead of waiting for the oldest.
    @discardableResult
    public func unpack(_ fragments: [Fragment], from source: DeviceMemoryRegion, into destination: DeviceMemoryRegion,
                       at offset: Int = 0, wait: Bool = true) throws(GPUError) -> UInt64 {
        precondition(!closed, "unpack on a closed unpacker")
        let tokens = consumer == nil ? [] : fragments.map(\.token)
        // Validate everything first.
        var total = 0
        for (i, f) in fragments.enumerated() {
            guard f.regionID == source.id else {
                reject(tokens)
                throw .fragmentFromOtherRegion(index: i, regionID: f.regionID, expected: source.id)
            }
            guard f.length >= 0, f.regionOffset <= UInt64(source.size), UInt64(f.length) <= UInt64(source.size) - f.regionOffset else {
                reject(tokens)
                throw .fragmentOutsideRegion(index: i, offset: f.regionOffset, length: f.length, regionSize: source.size)
            }
            total += f.length
        }
        guard offset >= 0, offset <= destination.size, total <= destination.size - offset else {
            reject(tokens)
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
            reject(tokens)
            throw error
        }
        // A batch slot.
        while freeEvents.isEmpty {
            do throws(GPUError) {
                if try reap() > 0 { break }
                guard wait else { throw GPUError.wouldBlock }
                try driver.wait(batches[head].event)
            } catch {
                if error != .wouldBlock { reject(tokens) }
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
            reject(tokens)
            throw error
        }
        let id = nextID
        nextID += 1
        batches.append(Batch(completed: Completed(id: id, destinationOffset: offset, length: total, copies: plan.count,
                                                  fragments: fragments.count),
                             event: event, tokens: tokens))
        statistics.batches += 1
        statistics.copies += plan.count
        statistics.fragments += fragments.count
        return id
    }

    /// The batches completed since the last call, oldest first (their tokens returned).
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

    /// Waits for the batches still running (best effort) and returns their tokens. Called
    /// by deinit.
    public func close() {
        guard !closed else { return }
        closed = true
        try? driver.synchronize(stream)
        while head < batches.count {
            giveBack(batches[head].tokens)
            freeEvents.append(batches[head].event)
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
            head += 1
            giveBack(b.tokens)
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

    private func giveBack(_ tokens: [UInt32]) {
        guard let consumer, !tokens.isEmpty else { return }
        let r = TokenGiveBack.giveBack(tokens, to: consumer)
        statistics.tokensReturned += r.freed
        statistics.tokensRefused += r.refused
    }

    private func reject(_ tokens: [UInt32]) {
        statistics.rejected += 1
        giveBack(tokens)
    }
}

import Netmem
import NetmemDevice

/// The bounce landing path: payload received into host chunks is copied to a device
/// region with asynchronous host-to-device copies, and the fragments' tokens go back to
/// their consumer only once the copy's completion is observed (until then the copy engine
/// may still read the host chunk).
///
/// Destination space comes from a ring over the device region (`DeviceRing`): each
/// message lands contiguously, and stays reserved until the application `release`s it
/// (when its GPU work is done with it). At most `maxInFlight` messages are being copied at
/// once; `submit` waits for the oldest copy (or throws `wouldBlock`) beyond that, or when
/// the ring is full.
///
/// Ownership: `submit(_ message:)` keeps the message (and so its tokens) until the copy
/// completes, and lets it go at once when the submission fails for any reason other than
/// `wouldBlock` (then nothing was kept). `close()` (and deinit) waits for copies still
/// running and lets their messages go, so no path leaks a buffer.
///
/// One thread uses a copier (the receive thread, or the consumer's).
public final class BounceCopier {
    public struct Configuration: Sendable {
        /// Messages being copied at once (one event each).
        public var maxInFlight: Int = 16
        /// Alignment of each message's destination.
        public var alignment: Int = 256
        public init(maxInFlight: Int = 16, alignment: Int = 256) {
            self.maxInFlight = maxInFlight
            self.alignment = alignment
        }
    }

    /// A message whose bytes are in device memory now.
    public struct Landed: Sendable, Equatable {
        /// The ring reservation; give it to `release` when the GPU is done with the bytes.
        public var id: UInt64
        /// Where the message starts in the destination region, and its device address.
        public var offset: Int
        public var deviceAddress: DeviceAddress
        public var length: Int
        public var fragments: Int
    }

    public struct Statistics: Sendable, Equatable, CustomStringConvertible {
        public var submitted = 0
        public var landed = 0
        public var bytes = 0
        public var copies = 0
        /// Messages let go (their tokens given back) after their copy ended.
        public var messagesReleased = 0
        /// Submissions that had to wait for a copy to finish (backpressure).
        public var waits = 0
        /// Submissions that failed (their messages were let go).
        public var failed = 0
        public var description: String {
            "submitted=\(submitted) landed=\(landed) bytes=\(bytes) copies=\(copies) messages_released=\(messagesReleased) "
                + "waits=\(waits) failed=\(failed)"
        }
    }

    struct InFlight {
        var reservation: UInt64
        var offset: Int
        var length: Int
        var event: GPUEvent
        var held: Message?
        var fragments: Int
    }

    public let driver: any GPUDriver
    public let destination: DeviceMemoryRegion
    public let configuration: Configuration
    public private(set) var statistics = Statistics()
    private var ring: DeviceRing
    private let stream: GPUStream
    private var freeEvents: [GPUEvent] = []
    private var allEvents: [GPUEvent] = []
    private var inFlight: [InFlight] = []
    private var inFlightHead = 0
    private var closed = false

    /// A copier into `destination` (a device region of `driver`).
    public init(driver: any GPUDriver, destination: DeviceMemoryRegion,
                configuration: Configuration = Configuration()) throws(GPUError) {
        guard configuration.maxInFlight > 0 else { throw .invalidArgument("maxInFlight must be at least 1") }
        guard configuration.alignment > 0, configuration.alignment & (configuration.alignment - 1) == 0 else {
            throw .invalidArgument("alignment \(configuration.alignment) is not a power of two")
        }
        self.driver = driver
        self.destination = destination
        self.configuration = configuration
        ring = DeviceRing(capacity: destination.size, alignment: configuration.alignment)
        stream = try driver.makeStream()
        do throws(GPUError) {
            for _ in 0..<configuration.maxInFlight { allEvents.append(try driver.makeEvent()) }
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

    /// Messages being copied now.
    public var inFlightCount: Int { inFlight.count - inFlightHead }
    /// Ring reservations not yet released (copying, or landed and held by the application).
    public var reservedCount: Int { ring.outstanding }
    public var ringUsed: Int { ring.used }

    /// Starts copying a message's fragments (in host chunks) into the next free place of
    /// the destination ring; returns the reservation id `poll` will report it under.
    /// With `wait` false, throws `wouldBlock` instead of waiting for a copy to finish.
    ///
    /// - Throws: `GPUError` for a fragment not in readable host memory, a message larger
    ///   than the ring, or a failed copy (the message is let go then).
    @discardableResult
    public func submit(_ message: Message, wait: Bool = true) throws(GPUError) -> UInt64 {
        precondition(!closed, "submit on a closed bounce copier")
        let held: Message? = message
        let fragments = message.fragments
        // Check the input first: nothing is issued for a message with a bad fragment.
        var sources: [UnsafeRawPointer] = []
        sources.reserveCapacity(fragments.count)
        var total = 0
        for (i, f) in fragments.enumerated() {
            guard let region = message.region, let bytes = try? region.bytes(of: f), let base = bytes.baseAddress else {
                fail(held)
                throw .fragmentNotInHostMemory(index: i)
            }
            sources.append(base)
            total += f.length
        }
        guard (total + configuration.alignment - 1) & ~(configuration.alignment - 1) <= destination.size else {
            fail(held)
            throw .messageLargerThanRing(length: total, ringSize: destination.size)
        }
        // Room: an event and ring space.
        var reservation: (id: UInt64, offset: Int)? = nil
        var waited = false
        while true {
            if !freeEvents.isEmpty, let r = ring.reserve(total) {
                reservation = r
                break
            }
            do throws(GPUError) {
                if try reap() > 0 { continue }
                guard wait, inFlightHead < inFlight.count else {
                    // Nothing copying: the ring is full of landed messages not yet released.
                    throw GPUError.wouldBlock
                }
                if !waited { statistics.waits += 1; waited = true }
                try driver.wait(inFlight[inFlightHead].event)
            } catch {
                if error != .wouldBlock { fail(held) }
                throw error
            }
        }
        let (id, offset) = reservation!
        let event = freeEvents.removeLast()
        // Issue the copies; on an error, wait for those issued, then give everything back.
        do throws(GPUError) {
            // Pieces adjacent in host memory and in the destination merge into one copy.
            var at = UInt64(offset)
            var copies = 0
            var run: (to: DeviceAddress, from: UnsafeRawPointer, count: Int)? = nil
            for (i, f) in fragments.enumerated() {
                var from = sources[i]
                try destination.forEachDevicePiece(offset: at, length: f.length) { (address, n) throws(GPUError) in
                    if let r = run, r.to + UInt64(r.count) == address, r.from + r.count == from {
                        run!.count += n
                    } else {
                        if let r = run { try driver.copy(to: r.to, from: r.from, count: r.count, on: stream) }
                        if run != nil { copies += 1 }
                        run = (address, from, n)
                    }
                    from += n
                }
                at += UInt64(f.length)
            }
            if let r = run {
                try driver.copy(to: r.to, from: r.from, count: r.count, on: stream)
                copies += 1
            }
            try driver.record(event, on: stream)
            statistics.copies += copies
        } catch {
            try? driver.synchronize(stream)
            freeEvents.append(event)
            ring.release(id)
            fail(held)
            throw error
        }
        inFlight.append(InFlight(reservation: id, offset: offset, length: total, event: event, held: held,
                                  fragments: fragments.count))
        statistics.submitted += 1
        return id
    }

    /// Reports the messages whose copies completed since the last call (oldest first),
    /// after letting them go.
    public func poll() throws(GPUError) -> [Landed] {
        _ = try reap()
        defer { pending.removeAll() }
        return pending
    }

    /// Waits for every copy in flight and reports them as `poll` does.
    public func drain() throws(GPUError) -> [Landed] {
        while inFlightHead < inFlight.count {
            try driver.wait(inFlight[inFlightHead].event)
            _ = try reap()
        }
        defer { pending.removeAll() }
        return pending
    }

    /// The application is done with a landed message: its ring space can be reused.
    public func release(_ id: UInt64) { ring.release(id) }

    /// Waits for copies still running (best effort) and lets their messages go; the
    /// copier takes no more messages. Called by deinit.
    public func close() {
        guard !closed else { return }
        closed = true
        try? driver.synchronize(stream)
        while inFlightHead < inFlight.count {
            let f = inFlight[inFlightHead]
            inFlight[inFlightHead].held = nil  // the message goes now, not when the array is cleared
            inFlightHead += 1
            giveBack(f.held)
            freeEvents.append(f.event)
        }
        inFlight.removeAll()
        inFlightHead = 0
    }

    // MARK: Internals

    /// Completions not yet reported by `poll` (some are found while making room).
    private var pending: [Landed] = []

    /// Completes what is done (messages let go, reported to the next `poll`); returns how many.
    private func reap() throws(GPUError) -> Int {
        var n = 0
        while inFlightHead < inFlight.count, try driver.isComplete(inFlight[inFlightHead].event) {
            let f = inFlight[inFlightHead]
            inFlight[inFlightHead].held = nil  // the message goes now, not when the array is cleared
            inFlightHead += 1
            giveBack(f.held)
            freeEvents.append(f.event)
            statistics.landed += 1
            statistics.bytes += f.length
            var address: DeviceAddress = 0
            try? destination.forEachDevicePiece(offset: UInt64(f.offset), length: min(f.length, 1)) { (a, _) throws(GPUError) in
                if address == 0 { address = a }
            }
            pending.append(Landed(id: f.reservation, offset: f.offset, deviceAddress: address, length: f.length,
                              fragments: f.fragments))
            n += 1
        }
        if inFlightHead == inFlight.count {
            inFlight.removeAll(keepingCapacity: true)
            inFlightHead = 0
        }
        return n
    }

    private func giveBack(_ held: Message?) {
        if held != nil { statistics.messagesReleased += 1 }
    }

    private func fail(_ held: Message?) {
        statistics.failed += 1
        giveBack(held)
    }
}

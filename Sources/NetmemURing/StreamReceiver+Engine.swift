import Glibc
import Netmem
import SystemPackage

extension StreamReceiver {
    /// One connection as the RX thread sees it.
    struct Connection {
        let id: ConnectionID
        let fd: FileDescriptor
        var offset: UInt64 = 0
        /// A multishot receive is in the kernel.
        var armed = false
        /// Ended by ENOBUFS; re-armed when buffers come back.
        var starved = false
        /// Why it is held (`hold`); re-armed when no reason is left.
        var holds: HoldReasons = []
        /// The next receive takes at most this many bytes (a one-shot receive).
        var limitNext: UInt32?
        /// The limit of the one-shot receive armed now (given back to `limitNext` if it
        /// is cancelled before it read).
        var armedLimit: UInt32?
        /// Where the rest of a `placeNext` goes (nil when none), and how much is left.
        var placeAt: UnsafeMutableRawPointer?
        var placeLeft = 0
        /// The receive armed now is a placement.
        var armedPlacement = false
        var held: Bool { !holds.isEmpty }
        var closing = false
    }

    /// The RX thread's state: everything here is touched by that thread only.
    struct Engine: ~Copyable {
        static let kindRecv: UInt64 = 1 << 56
        static let kindAccept: UInt64 = 2 << 56
        static let kindCancel: UInt64 = 3 << 56
        static let kindWake: UInt64 = 4 << 56
        static let kindMask: UInt64 = 0xFF << 56

        var ring: IOURing
        var buffers: ProvidedBufferRing
        let receiver: StreamReceiver
        let pool: PagePool
        let incremental: Bool
        let bundle: Bool
        /// Connections by slot; a connection's id is its slot, never reused.
        var connections: [UInt32: Connection] = [:]
        var nextSlot: UInt32 = 1
        var listeners: [UInt32: FileDescriptor] = [:]
        var nextListener: UInt32 = 1
        /// Slots ended by ENOBUFS, waiting for buffers.
        var starved: [UInt32] = []
        /// Slots closed while not armed: their end is reported after this reap.
        var pendingEnds: [UInt32] = []
        var rearm: [UInt32] = []
        let batch: UnsafeMutableBufferPointer<Completion>
        let wakeBuffer: UnsafeMutableRawBufferPointer
        /// When the ring last got a buffer while a connection was starved.
        var lastFill = ContinuousClock.now
        /// The area of the last chunk put in the ring (saves a registry lookup per chunk).
        var lastArea: NetmemArea?
        var shuttingDown = false

        init(receiver: StreamReceiver) throws(URingError) {
            let configuration = receiver.configuration
            let ring = try IOURing(IOURing.Options(entries: configuration.ringEntries,
                                                   completionEntries: configuration.ringEntries * 4))
            let features = ring.probeFeatures()
            guard features.providedBufferRings else {
                throw .unsupported("provided-buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19+)")
            }
            let chunkSize = receiver.pool.configuration.chunkSize
            let incremental: Bool
            switch configuration.incremental {
            case .some(true):
                guard features.incrementalBuffers else {
                    throw .unsupported("incremental provided-buffer rings (IOU_PBUF_RING_INC, Linux 6.12+)")
                }
                incremental = true
            case .some(false): incremental = false
            case .none: incremental = features.incrementalBuffers && chunkSize >= 64 << 10
            }
            let bundle = configuration.bundle && features.bundles && !incremental
            buffers = try ProvidedBufferRing(ring: ring, group: configuration.bufferGroup,
                                             bufferCount: configuration.bufferCount,
                                             bufferLength: chunkSize, incremental: incremental)
            self.ring = ring
            self.receiver = receiver
            pool = receiver.pool
            self.incremental = incremental
            self.bundle = bundle
            receiver.counters.incremental.store(incremental ? 1 : 0, ordering: .relaxed)
            receiver.counters.bundle.store(bundle ? 1 : 0, ordering: .relaxed)
            batch = .allocate(capacity: 128)
            batch.initialize(repeating: Completion(userData: 0, result: 0, flags: 0))
            wakeBuffer = .allocate(byteCount: 8, alignment: 8)
        }

        deinit {
            batch.deallocate()
            wakeBuffer.deallocate()
        }

        var isIdle: Bool { connections.isEmpty && listeners.isEmpty }

        /// Fills the ring and arms the wake-up read.
        mutating func start() throws(URingError) {
            fillRing()
            guard buffers.buffersInRing > 0 else {
                throw .outOfBuffers("pool '\(pool.configuration.name)' gave no chunks for the provided-buffer ring")
            }
            try armWake()
        }

        mutating func armWake() throws(URingError) {
            try ring.prepareRead(file: receiver.wakeFD, buffer: wakeBuffer, offset: 0, userData: Self.kindWake)
        }

        // MARK: Buffers

        /// Takes chunks from the pool for every free bid and publishes them. Each chunk
        /// starts with one reference: the kernel's, until the buffer leaves the ring.
        mutating func fillRing() {
            var added = 0
            while buffers.hasFreeBid, let ref = pool.allocate() {
                pool.setFragmentReferences(of: ref, to: 1)
                let area: NetmemArea
                if let last = lastArea, last.id == ref.areaID { area = last } else { area = ref.area; lastArea = area }
                _ = buffers.provide(ref, address: area.address(of: ref)!)
                added += 1
            }
            if added > 0 {
                buffers.publish()
                lastFill = .now
            }
        }

        /// Refills the ring and re-arms starved connections once enough buffers are in
        /// it: `resumeThreshold` of them, or any at all once the pool has had nothing more
        /// for a moment (an application that keeps most buffers must still get the data
        /// that lets it finish with them).
        mutating func refill(resumeThreshold: Int) throws(URingError) {
            if buffers.hasFreeBid { fillRing() }
            guard !starved.isEmpty, buffers.buffersInRing > 0 else { return }
            if buffers.buffersInRing < min(resumeThreshold, buffers.bufferCount)
                && ContinuousClock.now - lastFill < .milliseconds(2) {
                return
            }
            let slots = starved
            starved.removeAll()
            for slot in slots {
                guard var c = connections[slot], c.starved else { continue }
                c.starved = false
                connections[slot] = c
                if !c.held && !c.closing {
                    try arm(slot)
                    receiver.counters.resumes.add(1, ordering: .relaxed)
                }
            }
        }

        // MARK: Requests from other threads

        mutating func takeRequests(_ handler: (consuming ReceiveEvent) -> Void) throws(URingError) {
            for request in receiver.takeRequests() {
                switch request {
                case let .adopt(fd): addConnection(fd, handler)
                case let .listen(fd): try addListener(fd)
                case let .close(id): requestClose(slot: Self.slot(id))
                case let .hold(id, reason): try hold(slot: Self.slot(id), reason)
                case let .resume(id, reason): try resume(slot: Self.slot(id), reason)
                case let .limitNextRead(id, bytes):
                    if var c = connections[Self.slot(id)] {
                        c.limitNext = bytes
                        connections[Self.slot(id)] = c
                    }
                case let .placeNext(id, address, count):
                    guard var c = connections[Self.slot(id)], !c.closing, count > 0,
                          let at = UnsafeMutableRawPointer(bitPattern: address) else { continue }
                    precondition(!c.armed && c.placeLeft == 0,
                                 "placeNext for connection \(id) while a receive is armed or a placement is under way: ask from its handler, in one-shot reads")
                    c.placeAt = at
                    c.placeLeft = count
                    connections[Self.slot(id)] = c
                }
            }
        }

        static func slot(_ id: ConnectionID) -> UInt32 { UInt32(truncatingIfNeeded: id.rawValue) }

        mutating func addConnection(_ fd: FileDescriptor, _ handler: (consuming ReceiveEvent) -> Void) {
            let slot = nextSlot
            nextSlot &+= 1
            let id = ConnectionID(rawValue: UInt64(slot))
            var connection = Connection(id: id, fd: fd)
            let limit = receiver.firstReadLimit.load(ordering: .relaxed)
            if limit > 0 { connection.limitNext = UInt32(clamping: limit) }
            connections[slot] = connection
            receiver.counters.connectionsAccepted.add(1, ordering: .relaxed)
            handler(.connected(id))
            do throws(URingError) {
                try arm(slot)
            } catch {
                if case let .systemCall(_, e) = error { end(slot, .failed(e), handler) } else { end(slot, .failed(.ioError), handler) }
            }
        }

        mutating func addListener(_ fd: FileDescriptor) throws(URingError) {
            let slot = nextListener
            nextListener &+= 1
            listeners[slot] = fd
            try ring.prepareAccept(listener: fd, multishot: true, userData: Self.kindAccept | UInt64(slot))
        }

        mutating func arm(_ slot: UInt32) throws(URingError) {
            guard var c = connections[slot], !c.armed, !c.held, !c.closing, !c.starved else { return }
            if let at = c.placeAt, c.placeLeft > 0 {
                try ring.prepareRecv(socket: c.fd, buffer: UnsafeMutableRawBufferPointer(start: at, count: c.placeLeft),
                                     flags: Int32(MSG_WAITALL), userData: Self.kindRecv | UInt64(slot))
                c.armedPlacement = true
            } else if let limit = c.limitNext {
                try ring.prepareRecv(socket: c.fd, group: buffers.group, maxLength: limit,
                                     userData: Self.kindRecv | UInt64(slot))
                c.armedLimit = limit
                c.limitNext = nil
            } else {
                try ring.prepareRecvMultishot(socket: c.fd, group: buffers.group, bundle: bundle,
                                              userData: Self.kindRecv | UInt64(slot))
            }
            c.armed = true
            connections[slot] = c
        }

        mutating func hold(slot: UInt32, _ reason: HoldReasons) throws(URingError) {
            guard var c = connections[slot], !c.closing, !c.holds.isSuperset(of: reason) else { return }
            let wasHeld = c.held
            c.holds.formUnion(reason)
            connections[slot] = c
            receiver.counters.holds.add(1, ordering: .relaxed)
            if !wasHeld && c.armed { try cancelReceive(slot) }
        }

        mutating func resume(slot: UInt32, _ reason: HoldReasons) throws(URingError) {
            guard var c = connections[slot], !c.closing, !c.holds.isDisjoint(with: reason) else { return }
            c.holds.subtract(reason)
            connections[slot] = c
            if !c.held && !c.starved { try arm(slot) }
        }

        mutating func cancelReceive(_ slot: UInt32) throws(URingError) {
            try ring.prepareCancel(targetUserData: Self.kindRecv | UInt64(slot), userData: Self.kindCancel | UInt64(slot))
        }

        /// Asks a connection to close: its receive is cancelled; the end is reported when
        /// the kernel confirms (or after this reap when nothing is armed).
        mutating func requestClose(slot: UInt32) {
            guard var c = connections[slot], !c.closing else { return }
            c.closing = true
            connections[slot] = c
            if c.armed {
                // A full submission queue is flushed by prepare; should the cancel still
                // fail, the end comes with the receive's own completion.
                try? cancelReceive(slot)
            } else {
                pendingEnds.append(slot)
            }
        }

        // MARK: Shutdown

        /// Closes every connection and listener, waits (bounded) for the kernel to end
        /// their requests, and gives every buffer the kernel still holds back to the pool.
        mutating func shutDown(_ handler: (consuming ReceiveEvent) -> Void) {
            shuttingDown = true
            for slot in listeners.keys {
                try? ring.prepareCancel(targetUserData: Self.kindAccept | UInt64(slot), userData: Self.kindCancel)
            }
            listeners.removeAll()
            for slot in Array(connections.keys) {
                if connections[slot]!.armed { requestClose(slot: slot) } else { end(slot, .closedLocally, handler) }
            }
            let deadline = ContinuousClock.now + .seconds(2)
            while !connections.isEmpty && ContinuousClock.now < deadline {
                do throws(URingError) {
                    try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(20))
                    try reapAll(handler)
                } catch { break }
                flushPendingEnds(handler)
            }
            for slot in Array(connections.keys) {
                connections[slot]!.armed = false
                end(slot, .closedLocally, handler)
            }
            // Let the cancellations finish so no receive still points into our buffers.
            try? ring.prepareCancel(targetUserData: Self.kindWake, userData: Self.kindCancel)
            let drain = ContinuousClock.now + .milliseconds(200)
            while ContinuousClock.now < drain {
                do throws(URingError) {
                    try ring.submitAndWait(minimumCompletions: 1, timeout: .milliseconds(10))
                    if ring.readyCompletions == 0 { break }
                    try reapAll(handler)
                } catch { break }
            }
            buffers.unregister()
            for i in 0..<buffers.bufferCount {
                let bid = UInt16(i)
                guard buffers.isInKernel(bid) else { continue }
                let ref = buffers.finish(bid)
                pool.releaseFragment(NetmemFragment(ref: ref, offset: 0, length: 0))
            }
            publishStatistics()
        }

        func publishStatistics() {
            receiver.counters.buffersInRing.store(buffers.buffersInRing, ordering: .relaxed)
            receiver.counters.connectionsOpen.store(connections.count, ordering: .relaxed)
        }
    }
}

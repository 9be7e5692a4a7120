import Glibc
import Netmem
import SystemPackage

/// The RX thread's completion handling: received data, ends of connections, accepts and
/// wake-ups, each turned into a `ReceiveEvent`.
extension StreamReceiver.Engine {
    // MARK: Completions

    mutating func waitAndReap(_ handler: (consuming ReceiveEvent) -> Void) throws(URingError) {
        let wait = starved.isEmpty ? receiver.configuration.idleWait : .milliseconds(1)
        try ring.submitAndWait(minimumCompletions: 1, timeout: wait)
        try reapAll(handler)
        flushPendingEnds(handler)
        publishStatistics()
    }

    mutating func reapAll(_ handler: (consuming ReceiveEvent) -> Void) throws(URingError) {
        var rounds = 0
        while rounds < 16 {
            let n = ring.reap(into: batch)
            if n == 0 { break }
            receiver.counters.completions.add(n, ordering: .relaxed)
            for i in 0..<n {
                let c = batch[i]
                switch c.userData & Self.kindMask {
                case Self.kindRecv:
                    if handleRecv(c, handler) { rearm.append(UInt32(truncatingIfNeeded: c.userData)) }
                case Self.kindAccept:
                    try handleAccept(c, handler)
                case Self.kindWake:
                    if !shuttingDown { try armWake() }
                default:
                    break
                }
            }
            // What the handler asked for (a hold, a read limit) applies before re-arming.
            try takeRequests(handler)
            for slot in rearm {
                try arm(slot)
                receiver.counters.rearms.add(1, ordering: .relaxed)
            }
            rearm.removeAll(keepingCapacity: true)
            if buffers.hasFreeBid { fillRing() }
            rounds += 1
        }
    }

    mutating func handleAccept(_ c: Completion, _ handler: (consuming ReceiveEvent) -> Void) throws(URingError) {
        let slot = UInt32(truncatingIfNeeded: c.userData)
        guard let listener = listeners[slot] else {
            if c.result >= 0 { Glibc.close(c.result) }
            return
        }
        if c.result >= 0 {
            addConnection(FileDescriptor(rawValue: c.result), handler)
        } else if let e = c.error {
            switch e {
            case .canceled:
                listeners[slot] = nil
                return
            case .resourceTemporarilyUnavailable, .interrupted, .connectionAbort,
                 .noMemory, .noBufferSpace, .tooManyOpenFiles, .tooManyOpenFilesInSystem:
                receiver.counters.acceptErrors.add(1, ordering: .relaxed)  // transient: accept again
            default:
                listeners[slot] = nil
                handler(.listenerFailed(listener, e))
                return
            }
        }
        if !c.hasMore {
            try ring.prepareAccept(listener: listener, multishot: true, userData: Self.kindAccept | UInt64(slot))
        }
    }

    /// Handles one receive completion; returns true when the multishot must be re-armed.
    mutating func handleRecv(_ c: Completion, _ handler: (consuming ReceiveEvent) -> Void) -> Bool {
        let slot = UInt32(truncatingIfNeeded: c.userData)
        var placement = false
        if !c.hasMore, var conn = connections[slot] {
            conn.armed = false
            if c.result < 0, conn.limitNext == nil { conn.limitNext = conn.armedLimit }  // it read nothing
            conn.armedLimit = nil
            placement = conn.armedPlacement
            conn.armedPlacement = false
            connections[slot] = conn
        }
        if c.result > 0 && placement {
            return placed(slot: slot, length: Int(c.result), handler)
        }
        if c.result > 0 {
            guard let bid = c.bufferID else {
                preconditionFailure("receive completion of \(c.result) bytes without a buffer id: \(c)")
            }
            deliver(slot: slot, bid: bid, length: Int(c.result), bufferMore: c.bufferHasMore, handler)
            if c.hasMore { return false }
            guard let conn = connections[slot] else { return false }
            if conn.closing {
                end(slot, .closedLocally, handler)
                return false
            }
            return !conn.held  // ended with data (a bundle, CQ pressure): re-arm
        }
        guard var conn = connections[slot] else { return false }
        if c.result == 0 {
            end(slot, conn.closing ? .closedLocally : .endOfStream, handler)
            return false
        }
        let e = Errno(rawValue: -c.result)
        switch e {
        case _ where conn.closing:
            end(slot, .closedLocally, handler)
        case .noBufferSpace:
            conn.starved = true
            connections[slot] = conn
            starved.append(slot)
            receiver.counters.backpressureEvents.add(1, ordering: .relaxed)
        case .canceled:
            // Only holds and closes cancel receives; a close is handled above. Held:
            // re-armed at resume. Resumed before the cancel landed: re-arm now.
            if !conn.held { return true }
        case .connectionReset:
            end(slot, .reset, handler)
        default:
            end(slot, .failed(e), handler)
        }
        return false
    }

    /// A placement read `length` bytes into its buffer; returns true when the connection
    /// must be re-armed.
    mutating func placed(slot: UInt32, length: Int, _ handler: (consuming ReceiveEvent) -> Void) -> Bool {
        guard var conn = connections[slot] else { return false }
        receiver.counters.bytesReceived.add(length, ordering: .relaxed)
        conn.placeLeft -= length
        conn.placeAt = conn.placeLeft > 0 ? conn.placeAt! + length : nil
        conn.offset += UInt64(length)
        connections[slot] = conn
        if conn.closing {
            end(slot, .closedLocally, handler)
            return false
        }
        handler(.placed(conn.id, length))
        return !conn.held
    }

    mutating func deliver(slot: UInt32, bid: UInt16, length: Int, bufferMore: Bool,
                          _ handler: (consuming ReceiveEvent) -> Void) {
        receiver.counters.bytesReceived.add(length, ordering: .relaxed)
        if bundle {
            var left = length
            var i = 0
            let size = buffers.bufferLength
            while left > 0 {
                let b = buffers.bid(following: bid, by: i)
                let n = min(left, size)
                deliverPiece(slot: slot, bid: b, length: n, kernelDone: true, handler)
                left -= n
                i += 1
            }
        } else {
            deliverPiece(slot: slot, bid: bid, length: length, kernelDone: !(incremental && bufferMore), handler)
        }
    }

    /// Hands one piece to the handler. When the kernel is done with the buffer, the
    /// piece takes over the kernel's chunk reference; otherwise it takes one of its own.
    mutating func deliverPiece(slot: UInt32, bid: UInt16, length: Int, kernelDone: Bool,
                               _ handler: (consuming ReceiveEvent) -> Void) {
        let offset = buffers.consume(bid: bid, length: length)
        let address = UnsafeRawPointer(buffers.address(bid)) + offset
        let ref = kernelDone ? buffers.finish(bid) : buffers.chunk(bid)
        let location = NetmemFragment(ref: ref, offset: UInt32(offset), length: UInt32(length))
        guard var conn = connections[slot], !conn.closing else {
            if kernelDone { pool.releaseFragment(location) }
            return
        }
        if !kernelDone { pool.retainFragment(location) }
        let segment = ReceivedSegment(connection: conn.id, streamOffset: conn.offset,
                                      piece: pool.adopt(location, baseAddress: address))
        conn.offset += UInt64(length)
        connections[slot] = conn
        receiver.counters.segmentsDelivered.add(1, ordering: .relaxed)
        handler(.data(segment))
    }

    mutating func flushPendingEnds(_ handler: (consuming ReceiveEvent) -> Void) {
        guard !pendingEnds.isEmpty else { return }
        for slot in pendingEnds { end(slot, .closedLocally, handler) }
        pendingEnds.removeAll()
    }

    mutating func end(_ slot: UInt32, _ why: ConnectionEnd, _ handler: (consuming ReceiveEvent) -> Void) {
        guard let c = connections.removeValue(forKey: slot) else { return }
        if c.armed { try? cancelReceive(slot) }
        _ = try? c.fd.close()
        receiver.counters.connectionsClosed.add(1, ordering: .relaxed)
        handler(.closed(c.id, why))
    }
}

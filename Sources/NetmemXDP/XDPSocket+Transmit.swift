import CNetmemLinux
import Netmem

extension XDPSocket {
    /// Queues one frame for transmission: a pool frame, filled with `bytes`, on the TX
    /// ring, and kicks the kernel. Returns false (nothing sent) when the TX ring is full
    /// or the pool has no frame; the frame comes back through the completion ring.
    /// Mirrors `xsk_ring_prod__reserve` + `sendto(2)`.
    public mutating func transmit(_ bytes: UnsafeRawBufferPointer) throws(XDPError) -> Bool {
        guard bytes.count > 0, bytes.count <= configuration.frameSize else {
            throw .invalidConfiguration(name: "frame length", value: "\(bytes.count)",
                reason: "a transmitted frame must be 1 to \(configuration.frameSize) bytes")
        }
        reapCompletions()
        guard tx.freeSlots(wanted: 1) >= 1, let ref = pool.allocate() else { return false }
        let address = umemAddress(ref)
        (base + Int(address)).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        let slot = tx.descriptor(at: tx.cachedProducer)
        slot.pointee = cnm_xdp_desc(addr: address, len: UInt32(bytes.count), options: 0)
        inKernel[Int(ref.chunk)] = true
        tx.submit(1)
        counters.transmitted += 1
        if tx.needsWakeup || !configuration.useNeedWakeup {
            counters.wakeups += 1
            let r = cnm_xsk_wakeup_tx(resources.fd)
            if r < 0 { throw XDPError.from(r, "sendto(AF_XDP) kick") }
        }
        return true
    }

    /// Takes transmitted frames back from the completion ring into the pool.
    public mutating func reapCompletions() {
        let n = completion.available(limit: UInt32(scratch.count))
        guard n > 0 else { return }
        let start = completion.cachedConsumer
        var got = 0
        for i in 0..<n {
            let chunk = Int(completion.address(at: start &+ i).pointee >> frameShift)
            guard chunk < frameCount, inKernel[chunk] else {
                counters.invalidDescriptors += 1
                continue
            }
            inKernel[chunk] = false
            scratch[got] = NetmemRef(area: areaID, chunk: UInt32(chunk))
            got += 1
        }
        completion.release(n)
        counters.completed += got
        pool.recycle(UnsafeBufferPointer(rebasing: scratch[0..<got]))
    }
}

extension XDPSocket {
    /// Queues up to `count` frames in one go: for each, a pool frame is handed to `fill`
    /// (the frame's index in this batch and its writable bytes), which writes the frame
    /// and returns its length (1 to the frame size). One kick for the batch. Returns
    /// frames queued (fewer when the TX ring or the pool runs short). Mirrors
    /// `xsk_ring_prod__reserve` + `xsk_ring_prod__submit` + `sendto(2)`.
    public mutating func transmit(
        upTo count: Int, _ fill: (Int, UnsafeMutableRawBufferPointer) -> Int
    ) throws(XDPError) -> Int {
        reapCompletions()
        let room = Swift.min(count, Int(tx.freeSlots(wanted: UInt32(Swift.min(count, scratch.count)))), scratch.count)
        guard room > 0 else {
            try kickTransmit()
            return 0
        }
        let got = pool.allocate(into: UnsafeMutableBufferPointer(rebasing: scratch[0..<room]))
        let start = tx.cachedProducer
        let frameSize = configuration.frameSize
        for i in 0..<got {
            let ref = scratch[i]
            let address = umemAddress(ref)
            let length = fill(i, UnsafeMutableRawBufferPointer(start: base + Int(address), count: frameSize))
            precondition(length > 0 && length <= frameSize, "transmit fill returned \(length); it must be 1 to \(frameSize)")
            tx.descriptor(at: start &+ UInt32(i)).pointee = cnm_xdp_desc(addr: address, len: UInt32(length), options: 0)
            inKernel[Int(ref.chunk)] = true
        }
        tx.submit(UInt32(got))
        counters.transmitted += got
        try kickTransmit()
        return got
    }

    /// Kicks the kernel to send what the TX ring holds, when it asked for a kick (copy
    /// mode always does). Mirrors `sendto(fd, NULL, 0, MSG_DONTWAIT)`.
    public mutating func kickTransmit() throws(XDPError) {
        guard tx.pending > 0 else { return }
        if tx.needsWakeup || !configuration.useNeedWakeup {
            counters.wakeups += 1
            let r = cnm_xsk_wakeup_tx(resources.fd)
            if r < 0 { throw XDPError.from(r, "sendto(AF_XDP) kick") }
        }
    }
}

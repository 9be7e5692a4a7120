import CNetmemLinux
import Netmem
import NetmemDevice

/// Per-socket storage for one receive batch, allocated once: the frames taken off the RX
/// ring and their layouts, and the payload fragments to issue tokens for.
struct ReceiveBatch {
    let frames: UnsafeMutablePointer<(ref: NetmemRef, offset: Int, length: Int)>
    let layouts: UnsafeMutablePointer<UDPHeaderSplit.Layout>
    let fragments: UnsafeMutablePointer<NetmemFragment>
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        frames = .allocate(capacity: capacity)
        layouts = .allocate(capacity: capacity)
        fragments = .allocate(capacity: capacity)
    }

    func deallocate() {
        frames.deallocate()
        layouts.deallocate()
        fragments.deallocate()
    }
}

extension XDPSocket {
    /// Receives up to `limit` UDP datagrams with a software header split and lends each
    /// to `body`, in order: its headers and its payload where they landed in the UMEM
    /// (no copy, no allocation, no token), readable during the call only. The frames go
    /// back to the fill ring after the batch. For loops that consume a datagram at once;
    /// `receive(into:limit:)` gives messages that keep their payload as long as they
    /// live. Frames that are not well-formed UDP are counted in `counters.malformed` and
    /// returned at once. Returns datagrams lent.
    public mutating func receive(
        limit: Int = 64,
        _ body: (_ headers: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer, _ layout: UDPHeaderSplit.Layout) -> Void
    ) -> Int {
        let kept = takeBatch(limit: limit)
        for k in 0..<kept {
            let frame = batch.frames[k]
            let layout = batch.layouts[k]
            let bytes = UnsafeRawBufferPointer(self.bytes(ref: frame.ref, offset: frame.offset, length: frame.length))
            body(UnsafeRawBufferPointer(rebasing: bytes[0..<layout.headerLength]),
                 UnsafeRawBufferPointer(rebasing: bytes[layout.headerLength..<(layout.headerLength + layout.payloadLength)]),
                 layout)
        }
        for k in 0..<kept { pool.recycle(batch.frames[k].ref) }
        refill()
        return kept
    }

    /// Receives up to `limit` UDP datagrams with a software header split and appends them
    /// to `messages`: each message's linear part holds the Ethernet/IP/UDP headers
    /// (copied), its one fragment the payload where it landed in the UMEM, with a token
    /// from `tokens` (a batch's tokens are issued under one lock). The message owns the
    /// token: when it goes away the frame returns to the pool. A datagram with an empty
    /// payload has no fragment (its frame is back already). Frames that are not
    /// well-formed UDP are counted in `counters.malformed` and returned at once. Returns
    /// messages appended.
    public mutating func receive(into messages: inout [Message], limit: Int = 64) -> Int {
        let kept = takeBatch(limit: limit)
        var payloads: [NetmemFragment] = []
        payloads.reserveCapacity(kept)
        for k in 0..<kept {
            let frame = batch.frames[k]
            let layout = batch.layouts[k]
            if layout.payloadLength > 0 {
                payloads.append(NetmemFragment(ref: frame.ref, offset: UInt32(frame.offset + layout.headerLength),
                                               length: UInt32(layout.payloadLength)))
            }
        }
        var fragments: [Fragment] = []
        fragments.reserveCapacity(payloads.count)
        tokens.issue(payloads, owner: releaser, regions: regions, into: &fragments)
        var p = 0
        for k in 0..<kept {
            let frame = batch.frames[k]
            let layout = batch.layouts[k]
            let bytes = UnsafeRawBufferPointer(self.bytes(ref: frame.ref, offset: frame.offset, length: layout.headerLength))
            if layout.payloadLength == 0 {
                pool.recycle(frame.ref)
                messages.append(Message(linear: Array(bytes)))
            } else {
                messages.append(Message(linear: Array(bytes), fragments: [fragments[p]], region: regions.region,
                                        returningTokensTo: tokens))
                p += 1
            }
        }
        refill()
        return kept
    }

    /// Takes up to `limit` frames off the RX ring into `batch`: the well-formed UDP
    /// datagrams with their layouts (counted), the rest counted by reason and recycled.
    private mutating func takeBatch(limit: Int) -> Int {
        reapCompletions()
        let n = rx.available(limit: UInt32(Swift.max(0, Swift.min(limit, batch.capacity))))
        guard n > 0 else { return 0 }
        let start = rx.cachedConsumer
        var kept = 0
        for i in 0..<n {
            guard let frame = takeFrame(rx.descriptor(at: start &+ i).pointee) else { continue }
            switch UDPHeaderSplit.parse(UnsafeRawBufferPointer(self.bytes(ref: frame.ref, offset: frame.offset, length: frame.length))) {
            case let .success(layout):
                batch.frames[kept] = frame
                batch.layouts[kept] = layout
                kept += 1
                counters.messages += 1
                counters.payloadBytes += layout.payloadLength
            case let .failure(reason):
                counters.malformed[reason] += 1
                pool.recycle(frame.ref)
            }
        }
        rx.release(n)
        counters.received += Int(n)
        return kept
    }
}

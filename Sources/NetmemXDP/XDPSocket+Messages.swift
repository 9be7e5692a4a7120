import CNetmemLinux
import Netmem
import NetmemDevice

/// A UDP datagram `XDPSocket.receive(limit:_:)` lends its callback: the headers and the
/// payload where they landed in the UMEM frame, and the payload's token.
public struct XDPDatagram {
    /// The Ethernet (and VLAN), IP and UDP headers, in the frame. Readable while the
    /// payload's token is held; for a datagram without payload, during the callback only.
    public let headers: UnsafeRawBufferPointer
    /// Where the parts are.
    public let layout: UDPHeaderSplit.Layout
    /// The payload with its token (give it back with `tokens.dontNeed`; the frame then
    /// returns to the pool); nil for an empty payload, whose frame goes back by itself.
    public let payload: Fragment?
}

/// Per-socket storage for one receive batch, allocated once.
struct ReceiveBatch {
    let frames: UnsafeMutablePointer<XDPFrame>
    let layouts: UnsafeMutablePointer<UDPHeaderSplit.Layout>
    let fragments: UnsafeMutablePointer<NetmemFragment>
    let tokens: UnsafeMutablePointer<UInt32>
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        frames = .allocate(capacity: capacity)
        layouts = .allocate(capacity: capacity)
        fragments = .allocate(capacity: capacity)
        tokens = .allocate(capacity: capacity)
    }

    func deallocate() {
        frames.deallocate()
        layouts.deallocate()
        fragments.deallocate()
        tokens.deallocate()
    }
}

extension XDPSocket {
    /// Receives up to `limit` UDP datagrams with a software header split and lends each
    /// to `body`, in order: its headers and payload where they landed in the UMEM (no
    /// copy, no allocation), the payload's token issued with the rest of the batch under
    /// one lock. Give each token back (`tokens.dontNeed`) when done with the payload; the
    /// frame then returns to the pool. A datagram with an empty payload has no fragment
    /// (its frame goes back after `body`). Frames that are not well-formed UDP are
    /// counted in `counters.malformed` and returned at once. Returns datagrams delivered.
    /// The callback API for hot loops; `receive(into:limit:)` builds `Message`s from it.
    public mutating func receive(limit: Int = 64, _ body: (XDPDatagram) -> Void) -> Int {
        reapCompletions()
        let n = rx.available(limit: UInt32(Swift.max(0, Swift.min(limit, batch.capacity))))
        guard n > 0 else {
            refill()
            return 0
        }
        let start = rx.cachedConsumer
        var kept = 0
        var withPayload = 0
        for i in 0..<n {
            guard let frame = takeFrame(rx.descriptor(at: start &+ i).pointee) else { continue }
            switch UDPHeaderSplit.parse(UnsafeRawBufferPointer(self.bytes(of: frame))) {
            case let .success(layout):
                batch.frames[kept] = frame
                batch.layouts[kept] = layout
                kept += 1
                if layout.payloadLength > 0 {
                    batch.fragments[withPayload] = NetmemFragment(
                        ref: frame.ref, offset: UInt32(frame.offset + layout.headerLength), length: UInt32(layout.payloadLength))
                    withPayload += 1
                }
            case let .failure(reason):
                counters.malformed[reason] += 1
                pool.recycle(frame.ref)
            }
        }
        rx.release(n)
        counters.received += Int(n)
        tokens.issue(UnsafeBufferPointer(start: batch.fragments, count: withPayload), owner: releaser,
                     into: UnsafeMutableBufferPointer(start: batch.tokens, count: withPayload))
        var p = 0
        for k in 0..<kept {
            let frame = batch.frames[k]
            let layout = batch.layouts[k]
            let headers = UnsafeRawBufferPointer(start: UnsafeRawPointer(self.bytes(of: frame).baseAddress), count: layout.headerLength)
            if layout.payloadLength > 0 {
                let location = batch.fragments[p]
                let fragment = Fragment(regionOffset: (UInt64(frame.ref.chunk) << frameShift) + UInt64(location.offset),
                                        length: layout.payloadLength, token: batch.tokens[p], regionID: UInt32(areaID),
                                        location: location)
                p += 1
                body(XDPDatagram(headers: headers, layout: layout, payload: fragment))
            } else {
                body(XDPDatagram(headers: headers, layout: layout, payload: nil))
                pool.recycle(frame.ref)
            }
            counters.messages += 1
            counters.payloadBytes += layout.payloadLength
        }
        refill()
        return kept
    }

    /// Receives up to `limit` UDP datagrams with a software header split and appends them
    /// to `messages`: each message's linear part holds the Ethernet/IP/UDP headers
    /// (copied), its one fragment the payload where it landed in the UMEM, with a token
    /// from `tokens`. Give the token back (`tokens.dontNeed`) when done with the payload;
    /// the frame then returns to the pool. A datagram with an empty payload has no
    /// fragment (its frame is back already). Frames that are not well-formed UDP are
    /// counted in `counters.malformed` and returned at once. Returns messages appended.
    public mutating func receive(into messages: inout [Message], limit: Int = 64) -> Int {
        receive(limit: limit) { d in
            messages.append(Message(linear: Array(d.headers), fragments: d.payload.map { [$0] } ?? []))
        }
    }

    /// The payload bytes of a fragment this socket delivered (valid until its token is
    /// returned). Nil for a fragment without a location in a readable area.
    public static func withPayload<R>(_ fragment: Fragment, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard let location = fragment.location, let area = NetmemArea.lookup(location.ref.areaID),
              let chunk = area.address(of: location.ref) else { return nil }
        return try body(UnsafeRawBufferPointer(start: chunk + Int(location.offset), count: Int(location.length)))
    }
}

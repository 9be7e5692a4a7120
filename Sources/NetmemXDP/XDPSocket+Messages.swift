import CNetmemLinux
import Netmem
import NetmemDevice

extension XDPSocket {
    /// Receives up to `limit` UDP datagrams with a software header split and appends them
    /// to `messages`: each message's linear part holds the Ethernet/IP/UDP headers
    /// (copied), its one fragment the payload where it landed in the UMEM, with a token
    /// from `tokens`. The message owns the token: when it goes away the frame returns to
    /// the pool. A datagram with an empty payload has no fragment (its frame is back
    /// already). Frames that are not well-formed UDP are
    /// counted in `counters.malformed` and returned at once. Returns messages appended.
    public mutating func receive(into messages: inout [Message], limit: Int = 64) -> Int {
        reapCompletions()
        let n = rx.available(limit: UInt32(Swift.min(limit, scratch.count)))
        guard n > 0 else {
            refill()
            return 0
        }
        let start = rx.cachedConsumer
        var delivered = 0
        for i in 0..<n {
            guard let frame = takeFrame(rx.descriptor(at: start &+ i).pointee) else { continue }
            let bytes = UnsafeRawBufferPointer(self.bytes(ref: frame.ref, offset: frame.offset, length: frame.length))
            switch UDPHeaderSplit.parse(bytes) {
            case let .success(layout):
                let linear = Array(bytes[0..<layout.headerLength])
                if layout.payloadLength == 0 {
                    pool.recycle(frame.ref)
                    messages.append(Message(linear: linear))
                } else {
                    let offset = frame.offset + layout.headerLength
                    let fragment = tokens.issue(
                        NetmemFragment(ref: frame.ref, offset: UInt32(offset), length: UInt32(layout.payloadLength)),
                        owner: releaser, regions: regions)
                    messages.append(Message(linear: linear, fragments: [fragment], region: regions.region,
                                            returningTokensTo: tokens))
                }
                counters.messages += 1
                counters.payloadBytes += layout.payloadLength
                delivered += 1
            case let .failure(reason):
                counters.malformed[reason] += 1
                pool.recycle(frame.ref)
            }
        }
        rx.release(n)
        counters.received += Int(n)
        refill()
        return delivered
    }
}

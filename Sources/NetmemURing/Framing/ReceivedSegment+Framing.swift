import Netmem

extension FrameParser where Item == ReceivedSegment {
    /// Feeds a segment from a `StreamReceiver`; it goes back through the ledger's release
    /// (which should call `StreamReceiver.release`).
    public mutating func consume(_ segment: ReceivedSegment, deliver: (ReceivedFrame) -> Void) throws(FrameError) {
        try consume(Segment(segment, location: segment.fragment, bytes: segment.bytes?.baseAddress), deliver: deliver)
    }
}

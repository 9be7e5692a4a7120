import NetmemDevice

/// One frame (or, in raw mode, one run of received bytes) handed to the consumer: the
/// header decoded from host memory and the payload as a `Message` whose fragments lie
/// where the bytes landed. The message owns the fragments' tokens: they go back when
/// the last copy of the frame goes away, or at `release()`.
public struct ReceivedFrame: Sendable {
    /// The decoded header; nil in raw mode.
    public let header: FrameHeader?
    /// `linear` holds the header bytes (empty in raw mode); `fragments` the payload in
    /// order, each with the token that returns it.
    public let message: Message

    /// A frame from its decoded header (nil in raw mode) and the message that holds its
    /// payload's tokens.
    public init(header: FrameHeader?, message: Message) {
        self.header = header
        self.message = message
    }

    /// Payload bytes.
    public var payloadLength: Int { message.payloadLength }
    /// The payload's fragments, in order.
    public var fragments: [Fragment] { message.fragments }

    /// Calls `body` with the payload, one buffer per fragment (see
    /// `Message.withUnsafePayload`).
    ///
    /// - Throws: `DeviceMemoryError.unreadable` when the payload lies in device memory.
    public func withUnsafePayload<R>(_ body: (PayloadBuffers) -> R) throws(DeviceMemoryError) -> R {
        try message.withUnsafePayload(body)
    }

    /// Gives the payload's tokens back now when this is the last copy (see
    /// `Message.release`).
    @discardableResult
    public consuming func release() -> Bool {
        let m = message
        _ = consume self
        return m.release()
    }
}

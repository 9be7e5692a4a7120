/// What the socket itself counted (the kernel's side is `XDPStatistics`).
public struct XDPCounters: Sendable, Equatable {
    /// Frames taken from the RX ring.
    public var received = 0
    /// Well-formed UDP datagrams delivered as messages.
    public var messages = 0
    /// UDP payload bytes delivered.
    public var payloadBytes = 0
    /// Frames that were not well-formed UDP, by reason; their frames went back at once.
    public var malformed = MalformedCounts()
    /// RX descriptors naming a frame the socket had not given the kernel (skipped).
    public var invalidDescriptors = 0
    /// Refills that found the pool empty (every frame with the application or the kernel).
    public var fillStarved = 0
    /// Frames put on the fill ring.
    public var filled = 0
    /// Wakeup calls made because a ring asked for one (`XDP_RING_NEED_WAKEUP`).
    public var wakeups = 0
    /// Pauses `wait` slept, under wake-up coalescing, instead of asking to be woken.
    public var coalescingPauses = 0
    /// Times `wait` slept in `poll(2)` (after any coalescing pause found the ring still empty).
    public var pollWaits = 0
    /// Frames queued on the TX ring, and frames the completion ring gave back.
    public var transmitted = 0
    /// Frames the completion ring gave back.
    public var completed = 0
}

/// The kernel's counters for one AF_XDP socket. Mirrors `struct xdp_statistics`.
public struct XDPStatistics: Sendable, Equatable {
    /// Dropped for other reasons than the two below (e.g. a frame too small).
    public var rxDropped: UInt64 = 0
    /// `rx_invalid_descs`: received frames dropped for an invalid descriptor.
    public var rxInvalidDescriptors: UInt64 = 0
    /// Dropped because the RX ring was full (the application fell behind).
    public var rxRingFull: UInt64 = 0
    /// Times the kernel found the fill ring empty (the pool fell behind).
    public var rxFillRingEmptyDescriptors: UInt64 = 0
    /// `tx_invalid_descs`: TX descriptors dropped as invalid.
    public var txInvalidDescriptors: UInt64 = 0
    /// `tx_ring_empty_descs`: times the kernel found the TX ring empty.
    public var txRingEmptyDescriptors: UInt64 = 0

    /// Counters all at zero.
    public init() {}

    /// Frames the kernel dropped for this socket: `rx_dropped + rx_ring_full`
    /// (`rx_fill_ring_empty_descs` counts events, not necessarily lost frames, and a frame
    /// it drops lands in `rx_dropped` too).
    public var rxLost: UInt64 { rxDropped + rxRingFull }

    /// The fields with the kernel's names.
    public var fields: [(String, UInt64)] {
        [("rx_dropped", rxDropped), ("rx_invalid_descs", rxInvalidDescriptors), ("rx_ring_full", rxRingFull),
         ("rx_fill_ring_empty_descs", rxFillRingEmptyDescriptors), ("tx_invalid_descs", txInvalidDescriptors),
         ("tx_ring_empty_descs", txRingEmptyDescriptors)]
    }
}

/// How full each ring is now.
public struct XDPRingLevels: Sendable, Equatable {
    /// Frames waiting in the fill ring for the kernel.
    public var fill: Int
    /// Frames received and not yet read.
    public var rx: Int
    /// Frames queued for transmission.
    public var tx: Int
    /// Transmitted frames not yet reaped.
    public var completion: Int
}

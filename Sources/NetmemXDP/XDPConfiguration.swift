/// How an AF_XDP socket is set up: which queue, which copy mode, how its UMEM is cut.
public struct XDPConfiguration: Sendable {
    /// Whether the kernel copies frames into the UMEM or the driver receives into it.
    public enum Mode: String, Sendable, CaseIterable {
        /// `XDP_COPY`: works on every driver (and with generic XDP).
        case copy
        /// `XDP_ZEROCOPY`: the driver DMAs into the UMEM; needs driver support.
        case zeroCopy = "zerocopy"
    }

    /// Where the redirect program runs.
    public enum AttachMode: String, Sendable {
        /// In the driver (`XDP_FLAGS_DRV_MODE`), falling back to generic XDP when the
        /// driver has none (copy mode only).
        case automatic
        /// In the driver only (`XDP_FLAGS_DRV_MODE`).
        case native
        /// Generic XDP on the skb (`XDP_FLAGS_SKB_MODE`); copy mode only.
        case generic
    }

    /// The interface to receive on, by name.
    public var interfaceName: String
    /// The receive queue to bind.
    public var queue: UInt32
    /// How frames reach the UMEM: kernel copy (`XDP_COPY`) or driver DMA (`XDP_ZEROCOPY`).
    public var mode: Mode
    /// Where the redirect program runs, when `attachProgram` loads one.
    public var attachMode: AttachMode = .automatic
    /// UMEM frame size (the provider's chunk size): 2048 or 4096.
    public var frameSize: Int
    /// Bytes the kernel leaves free in front of each frame's data, beyond its own
    /// `XDP_PACKET_HEADROOM` (256).
    public var headroom: Int
    /// Frames in the UMEM (and the page pool's size).
    public var frameCount: Int = 4096
    /// Slots in the fill and RX rings (a power of two, at most `frameCount`).
    public var receiveRingSize: Int = 2048
    /// Slots in the TX and completion rings (a power of two).
    public var transmitRingSize: Int = 512
    /// Bind with `XDP_USE_NEED_WAKEUP` (the kernel says when it must be kicked).
    public var useNeedWakeup: Bool = true
    /// Busy polling: the receiving thread runs the queue's NAPI poll itself from
    /// `wait` (a non-blocking `recvfrom`) instead of sleeping until softirq work on
    /// another CPU fills the RX ring. Mirrors SO_PREFER_BUSY_POLL, SO_BUSY_POLL and
    /// SO_BUSY_POLL_BUDGET. Nil: no busy polling (the default).
    public var busyPoll: BusyPoll? = nil
    /// Wake-up coalescing, in microseconds: when the RX ring is empty, `wait` first
    /// sleeps this long without asking the kernel to wake it, and only then waits in
    /// `poll(2)`. While the receiver sleeps so, the kernel finds no sleeper to wake for
    /// each batch it delivers (on a virtual machine that wake-up, an interrupt to another
    /// CPU, is most of the cost of a packet), and the next call takes a larger batch. The
    /// price is latency: a packet that arrives during the pause waits up to this long; a
    /// packet that arrives while the receiver waits in `poll(2)` wakes it at once, as
    /// without coalescing. The role of a NIC's interrupt coalescing (`ethtool -C
    /// rx-usecs`), whose common default is about the same. 0 turns it off. Not used with
    /// busy polling, which does not sleep.
    public var coalescingMicroseconds: Int = 50

    /// Settings for busy polling.
    public struct BusyPoll: Sendable, Equatable {
        /// How long one busy-poll call may spin, in microseconds (SO_BUSY_POLL).
        public var microseconds: Int
        /// Packets one NAPI poll may take (SO_BUSY_POLL_BUDGET).
        public var budget: Int
        /// Ask the kernel to leave the queue to the busy-polling thread rather than
        /// softirq (SO_PREFER_BUSY_POLL).
        public var prefer: Bool

        /// Busy-poll settings; `XDPConfiguration.validate()` accepts 1 to 1000000 microseconds and
        /// a budget of 1 to 65535 packets.
        public init(microseconds: Int = 20, budget: Int = 64, prefer: Bool = true) {
            self.microseconds = microseconds
            self.budget = budget
            self.prefer = prefer
        }
    }

    /// Load and attach the redirect program (false when another program already
    /// redirects into an XSKMAP the caller manages).
    public var attachProgram: Bool = true

    /// A configuration for `queue` of `interfaceName`, the other settings at their defaults.
    /// `XDPSocket` checks it with `validate()`.
    public init(interfaceName: String, queue: UInt32 = 0, mode: Mode = .copy, frameSize: Int = 2048, headroom: Int = 0) {
        self.interfaceName = interfaceName
        self.queue = queue
        self.mode = mode
        self.frameSize = frameSize
        self.headroom = headroom
    }

    /// Checks the values; the kernel would refuse the same with a bare EINVAL.
    public func validate() throws(XDPError) {
        guard !interfaceName.isEmpty, interfaceName.utf8.count < 16 else {
            throw .invalidConfiguration(name: "interface name", value: interfaceName, reason: "must be 1 to 15 characters")
        }
        guard frameSize == 2048 || frameSize == 4096 else {
            throw .invalidConfiguration(name: "frame size", value: "\(frameSize)", reason: "must be 2048 or 4096")
        }
        guard headroom >= 0, headroom <= frameSize - 256 - 1024 else {
            throw .invalidConfiguration(name: "headroom", value: "\(headroom)",
                reason: "must be 0 to \(frameSize - 256 - 1024) so that a 1024-byte frame still fits after the kernel's 256 bytes")
        }
        guard frameCount >= 64, frameCount <= 1 << 20, frameCount % 2 == 0 else {
            throw .invalidConfiguration(name: "frame count", value: "\(frameCount)", reason: "must be an even number from 64 to 1048576")
        }
        for (name, size) in [("receive ring size", receiveRingSize), ("transmit ring size", transmitRingSize)] {
            guard size >= 8, size <= 1 << 16, size & (size - 1) == 0 else {
                throw .invalidConfiguration(name: name, value: "\(size)", reason: "must be a power of two from 8 to 65536")
            }
        }
        guard receiveRingSize <= frameCount else {
            throw .invalidConfiguration(name: "receive ring size", value: "\(receiveRingSize)",
                reason: "must not exceed the frame count \(frameCount)")
        }
        guard coalescingMicroseconds >= 0, coalescingMicroseconds <= 1_000_000 else {
            throw .invalidConfiguration(name: "coalescing time", value: "\(coalescingMicroseconds)", reason: "must be 0 to 1000000 microseconds")
        }
        if let b = busyPoll {
            guard b.microseconds >= 1, b.microseconds <= 1_000_000 else {
                throw .invalidConfiguration(name: "busy-poll time", value: "\(b.microseconds)", reason: "must be 1 to 1000000 microseconds")
            }
            guard b.budget >= 1, b.budget <= 65535 else {
                throw .invalidConfiguration(name: "busy-poll budget", value: "\(b.budget)", reason: "must be 1 to 65535 packets")
            }
        }
        if mode == .zeroCopy && attachMode == .generic {
            throw .invalidConfiguration(name: "attach mode", value: "generic", reason: "zero-copy needs the program in the driver")
        }
    }
}

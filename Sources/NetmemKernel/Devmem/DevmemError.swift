import SystemPackage

/// A piece that kernel devmem TCP (or io_uring zcrx) needs and this machine lacks, with
/// how to check it.
public enum DevmemMissingPiece: Sendable, Equatable, CustomStringConvertible {
    /// The fd is not a dma-buf (a memfd is not one; /dev/udmabuf turns a memfd into one).
    case notADmabuf(fd: Int32, what: String)
    /// Header split (`tcp-data-split`) is off or unknown on the interface.
    case headerSplitOff(interface: String, state: TCPDataSplit)
    /// The driver lacks queue-management ops (`netdev_queue_mgmt_ops`), which restarting
    /// a queue with a new memory provider needs.
    case noQueueManagement(interface: String, driver: String?)
    /// The interface or queue does not exist.
    case noSuchQueue(interface: String, queue: UInt32, available: Int)

    public var description: String {
        switch self {
        case let .notADmabuf(fd, what):
            return "fd \(fd) is not a dma-buf (it is \(what)); a memfd is not a dma-buf — "
                + "/dev/udmabuf (UDMABUF_CREATE) or a GPU driver's exporter makes one; "
                + "check with `ls -l /proc/self/fd/\(fd)` (a dma-buf shows anon_inode:dmabuf)"
        case let .headerSplitOff(interface, state):
            return "header split is \(state.rawValue) on \(interface): devmem needs payload and headers in "
                + "separate buffers; enable it with `ethtool -G \(interface) tcp-data-split on` "
                + "and check with `ethtool -g \(interface)`"
        case let .noQueueManagement(interface, driver):
            return "the driver of \(interface) (\(driver ?? "virtual device")) has no queue management ops, so "
                + "a queue cannot be restarted with a new memory provider; devmem TCP and zcrx need a NIC "
                + "whose driver has them (mlx5, bnxt, gve, fbnic); check with `ethtool -i \(interface)`"
        case let .noSuchQueue(interface, queue, available):
            return "\(interface) has no RX queue \(queue) (\(available) RX queues); check with `ethtool -l \(interface)`"
        }
    }
}

/// Why a devmem TCP operation failed. Kernel refusals keep the kernel's own words.
public enum DevmemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Binding was refused; `missing` names every piece found lacking, `kernel` is the
    /// netlink error (errno + extended-ACK text verbatim).
    case bindRefused(interface: String, missing: [DevmemMissingPiece], kernel: NetlinkError)
    /// No interface with that name.
    case noSuchInterface(String)
    /// The control buffer given for receiving cannot hold even one devmem control message.
    case controlBufferTooSmall(given: Int, minimum: Int)
    /// The kernel had more control messages than the buffer held (`MSG_CTRUNC`): fragments
    /// were received whose tokens are unknown. They are freed when the socket closes.
    case controlTruncated(bufferSize: Int, parsedFragments: Int)
    /// A control message that does not parse (wrong length, cut short).
    case malformedControlMessage(offset: Int, reason: String)
    /// The fragments' lengths do not agree with the bytes recvmsg reported.
    case inconsistentLengths(received: Int, linear: Int, payload: Int)
    /// A send or receive system call failed.
    case systemCall(String, Errno)
    /// The kernel refused a devmem send (no TX binding, offset outside the dma-buf, …).
    case sendRefused(bindingID: UInt32, errno: Errno, hint: String)

    public var description: String {
        switch self {
        case let .bindRefused(interface, missing, kernel):
            var s = "binding a dma-buf to \(interface) failed: \(kernel)"
            if !missing.isEmpty {
                s += "; missing: " + missing.map(\.description).joined(separator: "; ")
            }
            return s
        case let .noSuchInterface(name):
            return "no interface named '\(name)' (see `ip link`)"
        case let .controlBufferTooSmall(given, minimum):
            return "control buffer of \(given) bytes cannot hold one devmem control message; use at least \(minimum) bytes"
        case let .controlTruncated(size, parsed):
            return "the kernel truncated the control messages (MSG_CTRUNC) in a \(size)-byte buffer after \(parsed) "
                + "fragments: the rest of the fragments' tokens are lost until the socket closes; use a larger control buffer"
        case let .malformedControlMessage(offset, reason):
            return "malformed control message at byte \(offset): \(reason)"
        case let .inconsistentLengths(received, linear, payload):
            return "recvmsg returned \(received) bytes but the control messages describe \(linear) linear + \(payload) payload bytes"
        case let .systemCall(call, errno):
            return "\(call) failed: \(errno)"
        case let .sendRefused(id, errno, hint):
            return "devmem send with binding \(id) refused: \(errno); \(hint)"
        }
    }
}

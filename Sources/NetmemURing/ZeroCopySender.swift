import CNetmemLinux
import Glibc
import Netmem
import SystemPackage

/// Sends on one TCP socket through io_uring without copying: `SEND_ZC` from registered
/// buffers (`IORING_REGISTER_BUFFERS` + `IORING_RECVSEND_FIXED_BUF`) or from any memory.
/// The kernel reads the bytes while they are in flight, so memory handed to `send` may
/// be reused only after its notification completion (`F_NOTIF`): ask with
/// `inFlight(tag:)` / `waitUntilReusable(tag:)` / `drain()`. Counts the sends the kernel
/// copied anyway (`IORING_NOTIF_USAGE_ZC_COPIED`; always the case on loopback). Falls
/// back to plain `SEND` when the kernel or socket has no SEND_ZC.
///
/// One thread uses a sender (it owns an io_uring).
public final class ZeroCopySender {
    /// What the sender has done, counted on the thread that uses it.
    public struct Statistics: Sendable, Equatable, CustomStringConvertible {
        /// Send requests completed (zero-copy or plain), partial sends included.
        public var sends = 0
        /// Bytes the kernel reported sent, zero-copy and plain.
        public var bytesSent = 0
        /// Of `sends`, those that went as SEND_ZC.
        public var zeroCopySends = 0
        /// SEND_ZC sends from a registered buffer.
        public var fixedBufferSends = 0
        /// Notification completions received.
        public var notifications = 0
        /// Notifications that said the kernel copied the data anyway.
        public var copiedByKernel = 0
        /// Sends that went plain (zero-copy off, unsupported, or fallen back).
        public var plainSends = 0
        /// Whether the kernel reports copy usage (IORING_SEND_ZC_REPORT_USAGE accepted).
        public var usageReported = false

        public var description: String {
            "sends=\(sends) bytes=\(bytesSent) zc=\(zeroCopySends) fixed=\(fixedBufferSends) notifications=\(notifications) "
                + "copied=\(copiedByKernel) plain=\(plainSends) usage_reported=\(usageReported)"
        }
    }

    /// The socket sends go to; the caller keeps and closes it.
    public let socket: FileDescriptor
    private var ring: IOURing
    /// Whether sends go as SEND_ZC (false after a fallback).
    public private(set) var usesZeroCopy: Bool
    private var reportUsage = true
    public private(set) var statistics = Statistics()
    private var registered: [(start: UInt, end: UInt)] = []
    /// Outstanding notifications per tag.
    private var pendingByTag: [UInt32: Int] = [:]
    private var nextSequence: UInt64 = 1
    /// user_data → tag of sends whose notification is outstanding.
    private var tagOfSend: [UInt64: UInt32] = [:]
    /// Notifications that arrived before their send's own completion (the kernel may
    /// post them in either order).
    private var earlyNotifications: Set<UInt64> = []

    /// Sets up a ring for `socket` (the caller keeps and closes the socket). With
    /// `zeroCopy` false, or when the kernel lacks SEND_ZC, every send is plain.
    public init(socket: FileDescriptor, entries: UInt32 = 64, zeroCopy: Bool = true) throws(URingError) {
        self.socket = socket
        ring = try IOURing(IOURing.Options(entries: entries))
        let ops = (try? ring.probeOpcodes()) ?? []
        usesZeroCopy = zeroCopy && ops.contains(UInt8(CNM_IORING_OP_SEND_ZC))
    }

    /// Registers memory for fixed-buffer sends; buffer i gets index i (replaces any
    /// earlier registration). Mirrors `io_uring_register_buffers`.
    public func register(buffers: [UnsafeMutableRawBufferPointer]) throws(URingError) {
        if !registered.isEmpty { try? ring.unregisterBuffers() }
        registered = []
        try ring.registerBuffers(buffers)
        registered = buffers.map { (UInt(bitPattern: $0.baseAddress), UInt(bitPattern: $0.baseAddress) + UInt($0.count)) }
    }

    /// Registers a readable area's memory (in pieces of at most 1 GiB).
    public func register(area: NetmemArea) throws(URingError) {
        guard let base = area.baseAddress else {
            throw .invalidConfiguration("area '\(area.name)' is not CPU-addressable; io_uring sends need host memory")
        }
        let total = area.chunkSize * area.chunkCount
        let piece = max(area.chunkSize, (1 << 30) / area.chunkSize * area.chunkSize)
        var parts: [UnsafeMutableRawBufferPointer] = []
        var off = 0
        while off < total {
            parts.append(UnsafeMutableRawBufferPointer(start: base + off, count: min(piece, total - off)))
            off += piece
        }
        try register(buffers: parts)
    }

    /// Sends every byte of `bytes` (resubmitting after partial sends) and returns when the
    /// kernel has taken them. With zero-copy the memory stays in use until its
    /// notification: check `inFlight(tag:)` before writing to it again.
    public func send(_ bytes: UnsafeRawBufferPointer, tag: UInt32 = 0, timeout: Duration = .seconds(30)) throws(URingError) {
        var done = 0
        let deadline = ContinuousClock.now + timeout
        while done < bytes.count {
            let part = UnsafeRawBufferPointer(rebasing: bytes[done...])
            let n = try sendOnce(part, tag: tag, deadline: deadline)
            done += n
        }
    }

    /// Sends plainly (`IORING_OP_SEND`, the kernel copies), all of `bytes`.
    public func sendPlain(_ bytes: UnsafeRawBufferPointer, timeout: Duration = .seconds(30)) throws(URingError) {
        var done = 0
        let deadline = ContinuousClock.now + timeout
        while done < bytes.count {
            let part = UnsafeRawBufferPointer(rebasing: bytes[done...])
            done += try plainOnce(part, deadline: deadline)
        }
    }

    /// Notifications still outstanding for sends made with `tag`.
    public func inFlight(tag: UInt32) -> Int {
        reapNotifications()
        return pendingByTag[tag] ?? 0
    }

    /// Notifications outstanding over all tags.
    public var notificationsOutstanding: Int { tagOfSend.count }

    /// Waits until every send made with `tag` has its notification (its memory may be
    /// reused).
    public func waitUntilReusable(tag: UInt32, timeout: Duration = .seconds(30)) throws(URingError) {
        let deadline = ContinuousClock.now + timeout
        while (pendingByTag[tag] ?? 0) > 0 {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw .timedOut("zero-copy notifications for tag \(tag)") }
            try ring.submitAndWait(minimumCompletions: 1, timeout: min(left, .milliseconds(100)))
            reapNotifications()
        }
    }

    /// Waits for every outstanding notification.
    public func drain(timeout: Duration = .seconds(30)) throws(URingError) {
        let deadline = ContinuousClock.now + timeout
        while !tagOfSend.isEmpty {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw .timedOut("\(tagOfSend.count) zero-copy notifications") }
            try ring.submitAndWait(minimumCompletions: 1, timeout: min(left, .milliseconds(100)))
            reapNotifications()
        }
    }

    // MARK: Internals

    private func registeredIndex(of bytes: UnsafeRawBufferPointer) -> UInt16? {
        let start = UInt(bitPattern: bytes.baseAddress)
        let end = start + UInt(bytes.count)
        for (i, r) in registered.enumerated() where start >= r.start && end <= r.end { return UInt16(i) }
        return nil
    }

    private func sendOnce(_ bytes: UnsafeRawBufferPointer, tag: UInt32, deadline: ContinuousClock.Instant) throws(URingError) -> Int {
        guard usesZeroCopy else { return try plainOnce(bytes, deadline: deadline) }
        let fixed = registeredIndex(of: bytes)
        let userData = nextSequence
        nextSequence += 1
        try ring.prepareSendZeroCopy(socket: socket, bytes: bytes, registeredBuffer: fixed,
                                     reportUsage: reportUsage, userData: userData)
        let c = try waitForSend(userData, deadline: deadline)
        if c.hasMore && earlyNotifications.remove(userData) == nil {
            tagOfSend[userData] = tag
            pendingByTag[tag, default: 0] += 1
        }
        if c.result < 0 {
            let e = Errno(rawValue: -c.result)
            if e == .invalidArgument && reportUsage {
                reportUsage = false  // older kernel: no usage report; try again without
                return 0
            }
            if e == .notSupported || e.rawValue == EOPNOTSUPP || e == .invalidArgument {
                usesZeroCopy = false  // socket or kernel cannot: plain from now on
                return 0
            }
            throw .systemCall("send_zc", e)
        }
        statistics.usageReported = reportUsage
        statistics.sends += 1
        statistics.zeroCopySends += 1
        if fixed != nil { statistics.fixedBufferSends += 1 }
        statistics.bytesSent += Int(c.result)
        return Int(c.result)
    }

    private func plainOnce(_ bytes: UnsafeRawBufferPointer, deadline: ContinuousClock.Instant) throws(URingError) -> Int {
        let userData = nextSequence
        nextSequence += 1
        try ring.prepareSend(socket: socket, bytes: bytes, userData: userData)
        let c = try waitForSend(userData, deadline: deadline)
        if c.result < 0 { throw .systemCall("send", Errno(rawValue: -c.result)) }
        statistics.sends += 1
        statistics.plainSends += 1
        statistics.bytesSent += Int(c.result)
        return Int(c.result)
    }

    /// Waits for the (non-notification) completion of `userData`; notifications met on
    /// the way are counted.
    private func waitForSend(_ userData: UInt64, deadline: ContinuousClock.Instant) throws(URingError) -> Completion {
        while true {
            var found: Completion?
            var notes: [Completion] = []
            ring.reap { c in
                if c.isNotification { notes.append(c) } else if c.userData == userData { found = c }
            }
            for n in notes { noteNotification(n) }
            if let found { return found }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw .timedOut("send on fd \(socket.rawValue)") }
            try ring.submitAndWait(minimumCompletions: 1, timeout: min(left, .milliseconds(100)))
        }
    }

    private func reapNotifications() {
        var notes: [Completion] = []
        _ = try? ring.submit()
        ring.reap { c in if c.isNotification { notes.append(c) } }
        for n in notes { noteNotification(n) }
    }

    private func noteNotification(_ c: Completion) {
        statistics.notifications += 1
        if reportUsage && c.zeroCopyWasCopied { statistics.copiedByKernel += 1 }
        if let tag = tagOfSend.removeValue(forKey: c.userData) {
            let left = (pendingByTag[tag] ?? 1) - 1
            pendingByTag[tag] = left > 0 ? left : nil
        } else {
            earlyNotifications.insert(c.userData)
        }
    }
}

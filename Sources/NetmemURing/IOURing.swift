import CNetmemLinux
import Glibc
import SystemPackage

/// One io_uring instance: the ring file descriptor, its mapped submission and completion
/// queues. Set up through the raw system calls (no liburing). Owned by one thread at a
/// time (`~Copyable`); unmapped and closed when it goes away.
///
/// Typical use: prepare SQEs (`prepareRecvMultishot`, `prepareSend`, …), `submit()` or
/// `submitAndWait(…)`, then `reap { completion in … }`.
public struct IOURing: ~Copyable {
    /// What to ask of `io_uring_setup`.
    public struct Options: Sendable {
        /// Submission queue entries (rounded up to a power of two by the kernel).
        public var entries: UInt32 = 256
        /// Completion queue entries; nil lets the kernel pick (twice `entries`).
        public var completionEntries: UInt32? = nil
        /// Ask for `IORING_SETUP_SINGLE_ISSUER` + `IORING_SETUP_DEFER_TASKRUN` (task work
        /// runs only when this thread enters the kernel). Falls back to a plain ring when
        /// the kernel refuses them.
        public var singleIssuer: Bool = true

        public init(entries: UInt32 = 256, completionEntries: UInt32? = nil, singleIssuer: Bool = true) {
            self.entries = entries
            self.completionEntries = completionEntries
            self.singleIssuer = singleIssuer
        }
    }

    /// The ring's file descriptor.
    public let fileDescriptor: FileDescriptor
    /// `IORING_FEAT_*` bits the kernel reported at setup.
    public let kernelFeatures: UInt32
    /// The `IORING_SETUP_*` flags the ring was created with (after any fallback).
    public let setupFlags: UInt32
    @usableFromInline let rings: UnsafeMutablePointer<cnm_uring_rings>

    /// Mirrors `io_uring_setup(2)` + the ring mmaps. With `singleIssuer`, tries
    /// SINGLE_ISSUER + DEFER_TASKRUN first and retries without on EINVAL.
    public init(_ options: Options = Options()) throws(URingError) {
        guard options.entries > 0, options.entries <= 32768 else {
            throw .invalidConfiguration("ring entries \(options.entries): must be 1 to 32768")
        }
        var attempts: [UInt32] = []
        let base: UInt32 = options.completionEntries != nil ? UInt32(CNM_IORING_SETUP_CQSIZE) : 0
        if options.singleIssuer {
            attempts.append(base | UInt32(CNM_IORING_SETUP_SINGLE_ISSUER) | UInt32(CNM_IORING_SETUP_DEFER_TASKRUN))
            attempts.append(base | UInt32(CNM_IORING_SETUP_COOP_TASKRUN))
        }
        attempts.append(base)
        var lastError = Errno.invalidArgument
        for flags in attempts {
            var params = cnm_io_uring_params()
            params.flags = flags
            if let cq = options.completionEntries { params.cq_entries = cq }
            let fd = cnm_io_uring_setup(options.entries, &params)
            if fd == -EINVAL { lastError = .invalidArgument; continue }
            if fd < 0 {
                let e = Errno(rawValue: -fd)
                if e == .noFunction || e == .notPermitted {
                    throw .unsupported("io_uring_setup: \(e) (io_uring disabled? check /proc/sys/kernel/io_uring_disabled)")
                }
                throw .systemCall("io_uring_setup", e)
            }
            let rings = UnsafeMutablePointer<cnm_uring_rings>.allocate(capacity: 1)
            rings.initialize(to: cnm_uring_rings())
            let r = cnm_uring_map(fd, &params, rings)
            if r < 0 {
                rings.deallocate()
                close(fd)
                throw .systemCall("mmap of the io_uring rings", Errno(rawValue: -r))
            }
            self.fileDescriptor = FileDescriptor(rawValue: fd)
            self.kernelFeatures = params.features
            self.setupFlags = flags
            self.rings = rings
            return
        }
        throw .systemCall("io_uring_setup", lastError)
    }

    deinit {
        cnm_uring_unmap(rings)
        rings.deallocate()
        close(fileDescriptor.rawValue)
    }

    /// Whether the ring runs with SINGLE_ISSUER + DEFER_TASKRUN.
    public var defersTaskRun: Bool { setupFlags & UInt32(CNM_IORING_SETUP_DEFER_TASKRUN) != 0 }

    /// Submission queue size.
    public var submissionEntries: Int { Int(rings.pointee.sq_entries) }
    /// Completion queue size.
    public var completionEntries: Int { Int(rings.pointee.cq_entries) }

    // MARK: Submission

    /// The next free SQE, zeroed. When the submission queue is full, submits what is
    /// queued first (and reaps nothing). Traps only if the kernel takes none of a full
    /// queue, which cannot happen with a live ring.
    @usableFromInline
    mutating func nextSQE() throws(URingError) -> UnsafeMutablePointer<cnm_io_uring_sqe> {
        if let sqe = cnm_uring_get_sqe(rings) { return sqe }
        _ = try submit()
        guard let sqe = cnm_uring_get_sqe(rings) else {
            throw .systemCall("io_uring submission (queue stays full)", .resourceTemporarilyUnavailable)
        }
        return sqe
    }

    /// SQEs prepared and not yet taken by the kernel.
    public var pendingSubmissions: Int { Int(cnm_uring_sq_pending(rings)) }

    /// Hands every prepared SQE to the kernel. Mirrors `io_uring_enter(2)` with
    /// `to_submit`. With DEFER_TASKRUN also runs pending task work (GETEVENTS with 0
    /// to wait for) so completions appear. Returns how many SQEs the kernel took.
    @discardableResult
    public mutating func submit() throws(URingError) -> Int {
        let pending = cnm_uring_flush_sq(rings)
        let needEnter = pending > 0 || cnm_uring_sq_flags(rings) & UInt32(CNM_IORING_SQ_TASKRUN | CNM_IORING_SQ_CQ_OVERFLOW) != 0
        if !needEnter && !defersTaskRun { return 0 }
        let flags: UInt32 = defersTaskRun || pending == 0 ? UInt32(CNM_IORING_ENTER_GETEVENTS) : 0
        let r = cnm_io_uring_enter(fileDescriptor.rawValue, pending, 0, flags)
        if r == -EBUSY || r == -EAGAIN { return 0 }  // CQ overflow backlog: reap first
        return Int(try URingError.check(r, "io_uring_enter"))
    }

    /// Submits what is prepared and waits until at least `minimumCompletions` are ready or
    /// `timeout` passes (no error then: reap finds fewer). Mirrors `io_uring_enter2(2)`
    /// with `IORING_ENTER_EXT_ARG`. A nil timeout waits without limit.
    @discardableResult
    public mutating func submitAndWait(minimumCompletions: Int = 1, timeout: Duration?) throws(URingError) -> Int {
        let pending = cnm_uring_flush_sq(rings)
        if minimumCompletions <= 0 || Int(cnm_uring_cq_ready(rings)) >= minimumCompletions {
            return try submit()
        }
        let fd = fileDescriptor.rawValue
        let flags = UInt32(CNM_IORING_ENTER_GETEVENTS)
        let r: Int32
        if let timeout {
            let (s, a) = timeout.components
            let ns = s <= 0 && a <= 0 ? 0 : UInt64(s) &* 1_000_000_000 &+ UInt64(a / 1_000_000_000)
            r = cnm_io_uring_enter_timeout(fd, pending, UInt32(minimumCompletions), flags, max(ns, 1))
        } else {
            r = cnm_io_uring_enter(fd, pending, UInt32(minimumCompletions), flags)
        }
        if r == -ETIME || r == -EBUSY || r == -EAGAIN { return 0 }
        return Int(try URingError.check(r, "io_uring_enter (wait)"))
    }

    // MARK: Completion

    /// Completions ready to reap.
    public var readyCompletions: Int { Int(cnm_uring_cq_ready(rings)) }

    /// Calls `body` for each ready completion (at most `maximum`), in order, then marks
    /// them consumed. Returns how many were reaped.
    @inlinable
    @discardableResult
    public mutating func reap<E: Error>(maximum: Int = .max, _ body: (Completion) throws(E) -> Void) throws(E) -> Int {
        let ready = Int(cnm_uring_cq_ready(rings))
        let n = min(ready, maximum)
        var i = 0
        defer { if i > 0 { cnm_uring_cq_advance(rings, UInt32(i)) } }
        while i < n {
            let c = cnm_uring_cq_at(rings, UInt32(i))
            i += 1
            try body(Completion(userData: c.user_data, result: c.res, flags: c.flags))
        }
        return n
    }

    /// Copies up to `buffer.count` ready completions out and consumes them; returns how
    /// many.
    @inlinable
    public mutating func reap(into buffer: UnsafeMutableBufferPointer<Completion>) -> Int {
        let n = min(Int(cnm_uring_cq_ready(rings)), buffer.count)
        for i in 0..<n {
            let c = cnm_uring_cq_at(rings, UInt32(i))
            buffer[i] = Completion(userData: c.user_data, result: c.res, flags: c.flags)
        }
        if n > 0 { cnm_uring_cq_advance(rings, UInt32(n)) }
        return n
    }

    /// Waits (bounded by `timeout`) for the completion carrying `userData`, handing every
    /// other completion to `other`. Returns nil on timeout.
    public mutating func waitFor(
        userData: UInt64, timeout: Duration, other: (Completion) -> Void = { _ in }
    ) throws(URingError) -> Completion? {
        let deadline = ContinuousClock.now + timeout
        while true {
            var found: Completion?
            reap { c in
                if found == nil && c.userData == userData { found = c } else { other(c) }
            }
            if let found { return found }
            let left = deadline - ContinuousClock.now
            if left <= .zero { return nil }
            try submitAndWait(minimumCompletions: 1, timeout: left)
        }
    }
}

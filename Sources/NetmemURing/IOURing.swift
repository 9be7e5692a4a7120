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
        /// the kernel refuses them, unless `requiresDeferTaskRun`.
        public var singleIssuer: Bool = true
        /// Fail instead of falling back when SINGLE_ISSUER + DEFER_TASKRUN are refused
        /// (zero-copy receive needs them). Implies `singleIssuer`.
        public var requiresDeferTaskRun: Bool = false
        /// Ask for `IORING_SETUP_CQE32`: 32-byte completions whose second half carries
        /// per-operation data (a RECV_ZC completion's `struct io_uring_zcrx_cqe`). Read it
        /// with `reapBig`. Never dropped in a fallback.
        public var bigCompletions: Bool = false

        /// Options with these values; `IOURing.init` checks that `entries` is 1 to 32768.
        public init(entries: UInt32 = 256, completionEntries: UInt32? = nil, singleIssuer: Bool = true,
                    requiresDeferTaskRun: Bool = false, bigCompletions: Bool = false) {
            self.entries = entries
            self.completionEntries = completionEntries
            self.singleIssuer = singleIssuer
            self.requiresDeferTaskRun = requiresDeferTaskRun
            self.bigCompletions = bigCompletions
        }
    }

    /// The ring's file descriptor.
    public let fileDescriptor: FileDescriptor
    /// `IORING_FEAT_*` bits the kernel reported at setup.
    public let kernelFeatures: UInt32
    /// The `IORING_SETUP_*` flags the ring was created with (after any fallback).
    public let setupFlags: UInt32
    @usableFromInline let rings: UnsafeMutablePointer<cnm_uring_rings>
    private let mapping: Mapping

    /// Mirrors `io_uring_setup(2)` + the ring mmaps (`io_uring_queue_init_params`). With
    /// `singleIssuer`, tries SINGLE_ISSUER + DEFER_TASKRUN first and, unless
    /// `requiresDeferTaskRun`, retries without on EINVAL.
    public init(_ options: Options = Options()) throws(URingError) {
        guard options.entries > 0, options.entries <= 32768 else {
            throw .invalidConfiguration("ring entries \(options.entries): must be 1 to 32768")
        }
        var attempts: [UInt32] = []
        var base: UInt32 = options.completionEntries != nil ? UInt32(CNM_IORING_SETUP_CQSIZE) : 0
        if options.bigCompletions { base |= UInt32(CNM_IORING_SETUP_CQE32) }
        if options.singleIssuer || options.requiresDeferTaskRun {
            attempts.append(base | UInt32(CNM_IORING_SETUP_SINGLE_ISSUER) | UInt32(CNM_IORING_SETUP_DEFER_TASKRUN))
        }
        if !options.requiresDeferTaskRun {
            if options.singleIssuer { attempts.append(base | UInt32(CNM_IORING_SETUP_COOP_TASKRUN)) }
            attempts.append(base)
        }
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
            let mapping: Mapping
            do throws(URingError) {
                mapping = try Mapping(fd: fd, params: params)
            } catch {
                close(fd)
                throw error
            }
            self.fileDescriptor = FileDescriptor(rawValue: fd)
            self.kernelFeatures = params.features
            self.setupFlags = flags
            self.rings = mapping.rings
            self.mapping = mapping
            return
        }
        throw .systemCall("io_uring_setup (flags 0x\(String(attempts.last ?? 0, radix: 16)))", lastError)
    }

    deinit {
        // The mapping goes after this: the kernel keeps the ring alive while it is mapped.
        close(fileDescriptor.rawValue)
    }

    /// Whether the ring runs with SINGLE_ISSUER + DEFER_TASKRUN.
    public var defersTaskRun: Bool { setupFlags & UInt32(CNM_IORING_SETUP_DEFER_TASKRUN) != 0 }

    /// Whether completions are 32 bytes (`IORING_SETUP_CQE32`, `Options.bigCompletions`).
    public var hasBigCompletions: Bool { setupFlags & UInt32(CNM_IORING_SETUP_CQE32) != 0 }

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
            let wait = max(ns, 1)
            var ts = cnm_kernel_timespec(tv_sec: Int64(wait / 1_000_000_000), tv_nsec: Int64(wait % 1_000_000_000))
            r = withUnsafePointer(to: &ts) { tsp in
                var arg = cnm_io_uring_getevents_arg()
                arg.ts = UInt64(UInt(bitPattern: tsp))
                return cnm_io_uring_enter2(fd, pending, UInt32(minimumCompletions), flags | UInt32(CNM_IORING_ENTER_EXT_ARG),
                                           &arg, MemoryLayout<cnm_io_uring_getevents_arg>.size)
            }
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

    /// `reap` for a ring with 32-byte completions (`Options.bigCompletions`): hands each
    /// ready completion to `body` with its second 16 bytes. Traps on a ring without
    /// `IORING_SETUP_CQE32` (a programming error).
    @discardableResult
    public mutating func reapBig<E: Error>(maximum: Int = .max, _ body: (BigCompletion) throws(E) -> Void) throws(E) -> Int {
        precondition(hasBigCompletions, "reapBig on an io_uring set up without IORING_SETUP_CQE32 (Options.bigCompletions)")
        let n = min(Int(cnm_uring_cq_ready(rings)), maximum)
        var i = 0
        defer { if i > 0 { cnm_uring_cq_advance(rings, UInt32(i)) } }
        while i < n {
            let c = cnm_uring_cq32_at(rings, UInt32(i))
            i += 1
            try body(BigCompletion(c))
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

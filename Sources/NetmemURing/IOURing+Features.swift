import CNetmemLinux
import Glibc
import SystemPackage

extension IOURing {
    /// What this kernel's io_uring supports, found by trying it: what `netmem doctor`
    /// prints and what the data paths consult before choosing a mode.
    public struct Features: Sendable, Equatable, CustomStringConvertible {
        /// `IORING_FEAT_*` bits reported by `io_uring_setup`.
        public var kernelFeatures: UInt32 = 0
        /// SINGLE_ISSUER + DEFER_TASKRUN were accepted.
        public var deferTaskRun = false
        /// `IORING_FEAT_EXT_ARG`: waits with a timeout.
        public var extendedArguments = false
        /// `IORING_FEAT_SINGLE_MMAP`.
        public var singleMmap = false
        /// Provided-buffer rings (`IORING_REGISTER_PBUF_RING`), found by registering one.
        public var providedBufferRings = false
        /// Kernel-allocated buffer rings (`IOU_PBUF_RING_MMAP`).
        public var kernelMappedBufferRings = false
        /// Incremental consumption (`IOU_PBUF_RING_INC`), found by registering one.
        public var incrementalBuffers = false
        /// Receive/send bundles (`IORING_FEAT_RECVSEND_BUNDLE`).
        public var bundles = false
        /// `IORING_OP_SEND_ZC` in the opcode probe.
        public var sendZeroCopy = false
        /// `IORING_OP_RECV_ZC` (zero-copy receive into a zcrx area) in the opcode probe.
        public var receiveZeroCopy = false
        /// Multishot receive (kernel 6.0+): assumed with provided-buffer rings.
        public var multishotReceive = false
        /// Opcodes the probe reported as supported.
        public var opcodes: Set<UInt8> = []
        /// The highest opcode the kernel knows (`io_uring_probe.last_op`); nil when the
        /// opcode probe failed.
        public var highestOpcode: UInt8?
        /// Why registering a provided-buffer ring failed (nil when it worked).
        public var providedBufferRingError: Errno?
        /// Why registering an incremental provided-buffer ring failed (nil when it worked
        /// or was not tried because plain buffer rings fail).
        public var incrementalBuffersError: Errno?
        /// Whether a SINGLE_ISSUER | DEFER_TASKRUN | CQE32 ring, which zero-copy receive
        /// runs on, can be set up; nil when not probed (only `IOURing.probeFeatures()`
        /// sets one up).
        public var bigCompletionRings: Bool?
        /// Why that ring was refused.
        public var bigCompletionRingError: URingError?

        /// Features with nothing supported; `IOURing.probeFeatures()` fills them in.
        public init() {}

        /// Name/value pairs, in a stable order, for printing.
        public var fields: [(String, Bool)] {
            [("single_issuer_defer_taskrun", deferTaskRun), ("ext_arg", extendedArguments),
             ("single_mmap", singleMmap), ("pbuf_ring", providedBufferRings),
             ("pbuf_ring_mmap", kernelMappedBufferRings), ("pbuf_ring_incremental", incrementalBuffers),
             ("recvsend_bundle", bundles), ("recv_multishot", multishotReceive),
             ("send_zc", sendZeroCopy), ("recv_zc", receiveZeroCopy)]
                + (bigCompletionRings.map { [("cqe32_defer_taskrun", $0)] } ?? [])
        }

        public var description: String {
            fields.map { "\($0.0)=\($0.1 ? "yes" : "no")" }.joined(separator: " ")
                + " opcodes=\(opcodes.count)"
        }
    }

    /// Probes the kernel: sets up a small ring, reads its feature bits and opcode probe,
    /// registers (then removes) tiny buffer rings to see which modes work, and tries to
    /// set up the SINGLE_ISSUER | DEFER_TASKRUN | CQE32 ring zero-copy receive needs.
    /// Throws only when io_uring itself is unavailable.
    public static func probeFeatures() throws(URingError) -> Features {
        let ring = try IOURing(Options(entries: 4, singleIssuer: true))
        var f = ring.probeFeatures()
        do throws(URingError) {
            _ = try IOURing(Options(entries: 4, requiresDeferTaskRun: true, bigCompletions: true))
            f.bigCompletionRings = true
        } catch {
            f.bigCompletionRings = false
            f.bigCompletionRingError = error
        }
        return f
    }

    /// Probes through this ring (see `IOURing.probeFeatures()`; `bigCompletionRings`
    /// stays nil here).
    public func probeFeatures() -> Features {
        var f = Features()
        f.kernelFeatures = kernelFeatures
        f.deferTaskRun = defersTaskRun
        f.extendedArguments = kernelFeatures & UInt32(CNM_IORING_FEAT_EXT_ARG) != 0
        f.singleMmap = kernelFeatures & UInt32(CNM_IORING_FEAT_SINGLE_MMAP) != 0
        f.bundles = kernelFeatures & UInt32(CNM_IORING_FEAT_RECVSEND_BUNDLE) != 0
        if let probe = try? probeOpcodeTable() {
            f.opcodes = probe.supported
            f.highestOpcode = probe.highest
            f.sendZeroCopy = probe.supported.contains(UInt8(CNM_IORING_OP_SEND_ZC))
            f.receiveZeroCopy = probe.supported.contains(UInt8(CNM_IORING_OP_RECV_ZC))
        }
        let group: UInt16 = 0xFFF0
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let mem = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              mem != MAP_FAILED else { return f }
        defer { munmap(mem, page) }
        /// Registers a 4-entry ring with `flags` and removes it again; the errno when refused.
        func tryRegister(_ address: UnsafeMutableRawPointer?, flags: Int32) -> Errno? {
            do throws(URingError) {
                try registerBufferRing(ringAddress: address, entries: 4, group: group, flags: UInt16(flags))
            } catch {
                if case let .systemCall(_, e) = error { return e }
                return .invalidArgument
            }
            try? unregisterBufferRing(group: group)
            return nil
        }
        f.providedBufferRingError = tryRegister(mem, flags: 0)
        f.providedBufferRings = f.providedBufferRingError == nil
        f.multishotReceive = f.providedBufferRings
        if f.providedBufferRings {
            f.incrementalBuffersError = tryRegister(mem, flags: CNM_IOU_PBUF_RING_INC)
            f.incrementalBuffers = f.incrementalBuffersError == nil
            f.kernelMappedBufferRings = tryRegister(nil, flags: CNM_IOU_PBUF_RING_MMAP) == nil
        }
        return f
    }
}

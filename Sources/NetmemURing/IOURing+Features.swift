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

        public init() {}

        /// Name/value pairs, in a stable order, for printing.
        public var fields: [(String, Bool)] {
            [("single_issuer_defer_taskrun", deferTaskRun), ("ext_arg", extendedArguments),
             ("single_mmap", singleMmap), ("pbuf_ring", providedBufferRings),
             ("pbuf_ring_mmap", kernelMappedBufferRings), ("pbuf_ring_incremental", incrementalBuffers),
             ("recvsend_bundle", bundles), ("recv_multishot", multishotReceive),
             ("send_zc", sendZeroCopy), ("recv_zc", receiveZeroCopy)]
        }

        public var description: String {
            fields.map { "\($0.0)=\($0.1 ? "yes" : "no")" }.joined(separator: " ")
                + " opcodes=\(opcodes.count)"
        }
    }

    /// Probes the kernel: sets up a small ring, reads its feature bits and opcode probe,
    /// and registers (then removes) tiny buffer rings to see which modes work. Throws
    /// only when io_uring itself is unavailable.
    public static func probeFeatures() throws(URingError) -> Features {
        let ring = try IOURing(Options(entries: 4, singleIssuer: true))
        return ring.probeFeatures()
    }

    /// Probes through this ring (see `IOURing.probeFeatures()`).
    public func probeFeatures() -> Features {
        var f = Features()
        f.kernelFeatures = kernelFeatures
        f.deferTaskRun = defersTaskRun
        f.extendedArguments = kernelFeatures & UInt32(CNM_IORING_FEAT_EXT_ARG) != 0
        f.singleMmap = kernelFeatures & UInt32(CNM_IORING_FEAT_SINGLE_MMAP) != 0
        f.bundles = kernelFeatures & UInt32(CNM_IORING_FEAT_RECVSEND_BUNDLE) != 0
        if let ops = try? probeOpcodes() {
            f.opcodes = ops
            f.sendZeroCopy = ops.contains(UInt8(CNM_IORING_OP_SEND_ZC))
            f.receiveZeroCopy = ops.contains(UInt8(CNM_IORING_OP_RECV_ZC))
        }
        let group: UInt16 = 0xFFF0
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let mem = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              mem != MAP_FAILED else { return f }
        defer { munmap(mem, page) }
        if (try? registerBufferRing(ringAddress: mem, entries: 4, group: group, flags: 0)) != nil {
            f.providedBufferRings = true
            f.multishotReceive = true
            try? unregisterBufferRing(group: group)
        }
        if f.providedBufferRings,
           (try? registerBufferRing(ringAddress: mem, entries: 4, group: group, flags: UInt16(CNM_IOU_PBUF_RING_INC))) != nil {
            f.incrementalBuffers = true
            try? unregisterBufferRing(group: group)
        }
        if f.providedBufferRings,
           (try? registerBufferRing(ringAddress: nil, entries: 4, group: group, flags: UInt16(CNM_IOU_PBUF_RING_MMAP))) != nil {
            f.kernelMappedBufferRings = true
            try? unregisterBufferRing(group: group)
        }
        return f
    }
}

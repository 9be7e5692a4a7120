import CNetmemLinux
import Glibc
import SystemPackage

extension IOURing {
    /// Mirrors `io_uring_register(2)`: the generic form for opcodes without a helper
    /// (e.g. `CNM_IORING_REGISTER_ZCRX_IFQ`). Returns the kernel's non-negative result.
    @discardableResult
    public func register(opcode: UInt32, argument: UnsafeRawPointer?, count: UInt32) throws(URingError) -> Int32 {
        try URingError.check(cnm_io_uring_register(fileDescriptor.rawValue, opcode, argument, count),
                             "io_uring_register(opcode \(opcode))")
    }

    /// Mirrors `io_uring_register_buffers`: pins `buffers` for `READ_FIXED` and
    /// `SEND_ZC` with `IORING_RECVSEND_FIXED_BUF`; buffer i gets index i. Each buffer is
    /// at most 1 GiB (the kernel's limit).
    public func registerBuffers(_ buffers: [UnsafeMutableRawBufferPointer]) throws(URingError) {
        guard !buffers.isEmpty else { throw .invalidConfiguration("registering zero buffers") }
        for b in buffers where b.count > 1 << 30 || b.baseAddress == nil {
            throw .invalidConfiguration("a registered buffer must be non-empty and at most 1 GiB, got \(b.count) bytes")
        }
        var iovecs = buffers.map { cnm_iovec(base: $0.baseAddress, len: $0.count) }
        let r = iovecs.withUnsafeMutableBufferPointer {
            cnm_io_uring_register(fileDescriptor.rawValue, UInt32(CNM_IORING_REGISTER_BUFFERS),
                                  $0.baseAddress, UInt32($0.count))
        }
        if r == -ENOMEM {
            throw .systemCall("io_uring_register_buffers (pinning \(buffers.reduce(0) { $0 + $1.count }) bytes; "
                              + "raise RLIMIT_MEMLOCK with `ulimit -l`)", .noMemory)
        }
        _ = try URingError.check(r, "io_uring_register_buffers")
    }

    /// Mirrors `io_uring_unregister_buffers`.
    public func unregisterBuffers() throws(URingError) {
        _ = try URingError.check(cnm_io_uring_register(fileDescriptor.rawValue, UInt32(CNM_IORING_UNREGISTER_BUFFERS), nil, 0),
                                 "io_uring_unregister_buffers")
    }

    /// Mirrors `io_uring_register_probe`: the opcodes this kernel supports.
    public func probeOpcodes() throws(URingError) -> Set<UInt8> {
        try probeOpcodeTable().supported
    }

    /// Mirrors `io_uring_register_probe`: the highest opcode the kernel knows
    /// (`last_op`) and the opcodes it supports.
    public func probeOpcodeTable() throws(URingError) -> (highest: UInt8, supported: Set<UInt8>) {
        var probe = cnm_io_uring_probe()
        let r = cnm_io_uring_register(fileDescriptor.rawValue, UInt32(CNM_IORING_REGISTER_PROBE), &probe, 256)
        _ = try URingError.check(r, "io_uring_register_probe")
        var set = Set<UInt8>()
        let count = Int(probe.ops_len)
        withUnsafeBytes(of: &probe.ops) { raw in
            let ops = raw.bindMemory(to: cnm_io_uring_probe_op.self)
            for i in 0..<min(count, ops.count) where ops[i].flags & UInt16(CNM_IO_URING_OP_SUPPORTED) != 0 {
                set.insert(ops[i].op)
            }
        }
        return (probe.last_op, set)
    }

    /// Mirrors `io_uring_register_buf_ring`: registers a provided-buffer ring of
    /// `entries` (a power of two) at `ringAddress` (page aligned; nil with
    /// `IOU_PBUF_RING_MMAP` in `flags`) as buffer group `group`.
    public func registerBufferRing(ringAddress: UnsafeMutableRawPointer?, entries: UInt32, group: UInt16,
                                   flags: UInt16) throws(URingError) {
        var reg = cnm_io_uring_buf_reg()
        reg.ring_addr = UInt64(UInt(bitPattern: ringAddress))
        reg.ring_entries = entries
        reg.bgid = group
        reg.flags = flags
        _ = try URingError.check(cnm_io_uring_register(fileDescriptor.rawValue, UInt32(CNM_IORING_REGISTER_PBUF_RING), &reg, 1),
                                 "io_uring_register_buf_ring (group \(group), \(entries) entries, flags \(flags))")
    }

    /// Mirrors `io_uring_unregister_buf_ring`.
    public func unregisterBufferRing(group: UInt16) throws(URingError) {
        var reg = cnm_io_uring_buf_reg()
        reg.bgid = group
        _ = try URingError.check(cnm_io_uring_register(fileDescriptor.rawValue, UInt32(CNM_IORING_UNREGISTER_PBUF_RING), &reg, 1),
                                 "io_uring_unregister_buf_ring (group \(group))")
    }

    /// Mirrors `io_uring_buf_ring_head`: the kernel's consumption head of a buffer group.
    public func bufferRingHead(group: UInt16) throws(URingError) -> UInt16 {
        var status = cnm_io_uring_buf_status()
        status.buf_group = UInt32(group)
        _ = try URingError.check(cnm_io_uring_register(fileDescriptor.rawValue, UInt32(CNM_IORING_REGISTER_PBUF_STATUS), &status, 1),
                                 "io_uring_buf_ring_head (group \(group))")
        return UInt16(truncatingIfNeeded: status.head)
    }
}

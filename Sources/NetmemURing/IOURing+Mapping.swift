import CNetmemLinux
import Glibc
import SystemPackage

extension IOURing {
    /// The mmaps of one io_uring: the SQ ring, the CQ ring (the same mapping with
    /// `IORING_FEAT_SINGLE_MMAP`) and the SQE array, and the `cnm_uring_rings` view of
    /// them the inline ring accessors read. All pointer arithmetic on the rings happens
    /// here; unmapped when it goes away.
    ///
    /// Mirrors liburing's `io_uring_mmap` (written here from the kernel ABI).
    struct Mapping: ~Copyable {
        /// The view the ring accessors use, at a stable address.
        let rings: UnsafeMutablePointer<cnm_uring_rings>
        private let sq: UnsafeMutableRawBufferPointer
        private let cq: UnsafeMutableRawBufferPointer?
        private let sqes: UnsafeMutableRawBufferPointer

        /// Maps the rings of `fd` as `params` (after `io_uring_setup`) describe them; CQEs
        /// are 32 bytes when `params.flags` has `IORING_SETUP_CQE32`. On failure,
        /// whatever was mapped is unmapped again.
        init(fd: Int32, params: cnm_io_uring_params) throws(URingError) {
            let cqeShift: UInt32 = params.flags & UInt32(CNM_IORING_SETUP_CQE32) != 0 ? 1 : 0
            let cqeSize = MemoryLayout<cnm_io_uring_cqe>.size << Int(cqeShift)
            var sqBytes = Int(params.sq_off.array) + Int(params.sq_entries) * MemoryLayout<UInt32>.size
            let cqBytes = Int(params.cq_off.cqes) + Int(params.cq_entries) * cqeSize
            let single = params.features & UInt32(CNM_IORING_FEAT_SINGLE_MMAP) != 0
            if single { sqBytes = max(sqBytes, cqBytes) }

            let sq = try Mapping.map(fd: fd, bytes: sqBytes, offset: CNM_IORING_OFF_SQ_RING, what: "the SQ ring")
            var cq: UnsafeMutableRawBufferPointer?
            if !single {
                do throws(URingError) {
                    cq = try Mapping.map(fd: fd, bytes: cqBytes, offset: CNM_IORING_OFF_CQ_RING, what: "the CQ ring")
                } catch {
                    munmap(sq.baseAddress, sq.count)
                    throw error
                }
            }
            let sqeBytes = Int(params.sq_entries) * MemoryLayout<cnm_io_uring_sqe>.size
            let sqes: UnsafeMutableRawBufferPointer
            do throws(URingError) {
                sqes = try Mapping.map(fd: fd, bytes: sqeBytes, offset: CNM_IORING_OFF_SQES, what: "the SQE array")
            } catch {
                if let cq { munmap(cq.baseAddress, cq.count) }
                munmap(sq.baseAddress, sq.count)
                throw error
            }
            self.sq = sq
            self.cq = cq
            self.sqes = sqes

            let s = sq.baseAddress!
            let c = (cq ?? sq).baseAddress!
            func word(_ base: UnsafeMutableRawPointer, _ offset: UInt32) -> UnsafeMutablePointer<UInt32> {
                (base + Int(offset)).assumingMemoryBound(to: UInt32.self)
            }
            var r = cnm_uring_rings()
            r.sq_head = word(s, params.sq_off.head)
            r.sq_tail = word(s, params.sq_off.tail)
            r.sq_flags = word(s, params.sq_off.flags)
            r.sq_array = word(s, params.sq_off.array)
            r.sq_mask = word(s, params.sq_off.ring_mask).pointee
            r.sq_entries = word(s, params.sq_off.ring_entries).pointee
            r.sqes = sqes.baseAddress!.assumingMemoryBound(to: cnm_io_uring_sqe.self)
            r.cq_head = word(c, params.cq_off.head)
            r.cq_tail = word(c, params.cq_off.tail)
            r.cq_overflow = word(c, params.cq_off.overflow)
            r.cq_mask = word(c, params.cq_off.ring_mask).pointee
            r.cq_entries = word(c, params.cq_off.ring_entries).pointee
            r.cqes = (c + Int(params.cq_off.cqes)).assumingMemoryBound(to: cnm_io_uring_cqe.self)
            r.cqe_shift = cqeShift
            r.sq_local_tail = r.sq_tail.pointee
            rings = UnsafeMutablePointer<cnm_uring_rings>.allocate(capacity: 1)
            rings.initialize(to: r)
        }

        deinit {
            rings.deallocate()
            munmap(sqes.baseAddress, sqes.count)
            if let cq { munmap(cq.baseAddress, cq.count) }
            munmap(sq.baseAddress, sq.count)
        }

        /// Mirrors `mmap(2)` of a shared, populated ring region at `offset` of the ring fd.
        private static func map(fd: Int32, bytes: Int, offset: UInt64, what: String) throws(URingError) -> UnsafeMutableRawBufferPointer {
            var err: Int32 = 0
            guard let p = cnm_mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | CNM_MAP_POPULATE, fd,
                                   off_t(offset), &err) else {
                throw .systemCall("mmap of \(what) (\(bytes) bytes)", Errno(rawValue: err))
            }
            return UnsafeMutableRawBufferPointer(start: p, count: bytes)
        }
    }
}

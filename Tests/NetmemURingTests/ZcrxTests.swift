import CNetmemLinux
import Glibc
import NetmemDevice
import SystemPackage
import Testing
@testable import NetmemURing

@Suite struct ZcrxTests {
    /// The C mirrors have the kernel ABI's sizes and field offsets
    /// (include/uapi/linux/io_uring/zcrx.h, Linux 6.18).
    @Test func structLayoutsMatchTheKernelABI() {
        #expect(MemoryLayout<cnm_zcrx_rqe>.size == 16)
        #expect(MemoryLayout<cnm_zcrx_cqe>.size == 16)
        #expect(MemoryLayout<cnm_zcrx_offsets>.size == 32)
        #expect(MemoryLayout<cnm_zcrx_area_reg>.size == 48)
        #expect(MemoryLayout<cnm_io_uring_region_desc>.size == 64)
        #expect(MemoryLayout<cnm_zcrx_ifq_reg>.size == 96)
        #expect(MemoryLayout<cnm_io_uring_cqe32>.size == 32)
        #expect(MemoryLayout<cnm_io_uring_sqe>.size == 64)
        #expect(MemoryLayout<cnm_io_uring_params>.size == 120)
        #expect(MemoryLayout<cnm_zcrx_ifq_reg>.offset(of: \.area_ptr) == 16)
        #expect(MemoryLayout<cnm_zcrx_ifq_reg>.offset(of: \.region_ptr) == 24)
        #expect(MemoryLayout<cnm_zcrx_ifq_reg>.offset(of: \.offsets) == 32)
        #expect(MemoryLayout<cnm_zcrx_ifq_reg>.offset(of: \.zcrx_id) == 64)
        #expect(MemoryLayout<cnm_zcrx_ifq_reg>.offset(of: \.rx_buf_len) == 68)
        #expect(MemoryLayout<cnm_zcrx_area_reg>.offset(of: \.rq_area_token) == 16)
        #expect(MemoryLayout<cnm_zcrx_area_reg>.offset(of: \.flags) == 24)
        #expect(MemoryLayout<cnm_zcrx_area_reg>.offset(of: \.dmabuf_fd) == 28)
        // RECV_ZC names the queue in the slot shared by file_index and zcrx_ifq_idx.
        #expect(MemoryLayout<cnm_io_uring_sqe>.offset(of: \.file_index) == 44)
        #expect(MemoryLayout<cnm_io_uring_sqe>.offset(of: \.user_data) == 32)
        #expect(MemoryLayout<cnm_io_uring_cqe32>.offset(of: \.big_cqe) == 16)
        #expect(CNM_IORING_REGISTER_ZCRX_IFQ == 32 && CNM_IORING_OP_RECV_ZC == 58)
        #expect(CNM_IORING_SETUP_CQE32 == 1 << 11)
        #expect(CNM_IORING_ZCRX_AREA_SHIFT == 48)
    }

    /// The refill ring on a fake mapping: we produce, a simulated kernel consumes by
    /// moving head; indices wrap through the mask.
    @Test func refillRingMathOnAFakeMapping() {
        let entries: UInt32 = 8
        let bytes = ZcrxRefillRing.regionSize(entries: entries)
        #expect(bytes == 4096)
        let base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        defer { base.deallocate() }
        var offsets = cnm_zcrx_offsets()
        offsets.head = 0
        offsets.tail = 4
        offsets.rqes = 64
        var ring = ZcrxRefillRing(base: base, offsets: offsets, count: entries)
        #expect(ring.free == 8)
        for i in 0..<8 as Range<UInt64> {
            let ok = ring.push(offset: i << 12, length: 4096)
            #expect(ok)
        }
        let pushedWhenFull = ring.push(offset: 99, length: 1)
        #expect(!pushedWhenFull, "a full ring refuses")
        #expect(ring.unpublished == 8)
        let tailPtr = (base + 4).assumingMemoryBound(to: UInt32.self)
        #expect(tailPtr.pointee == 0, "nothing is visible before publish")
        ring.publish()
        #expect(tailPtr.pointee == 8)
        // The kernel consumes three entries.
        (base).assumingMemoryBound(to: UInt32.self).pointee = 3
        #expect(ring.free == 3)
        for i in 8..<11 as Range<UInt64> {
            let ok = ring.push(offset: i << 12, length: 4096)
            #expect(ok)
        }
        ring.publish()
        #expect(tailPtr.pointee == 11)
        // Entries 8, 9, 10 wrapped into slots 0, 1, 2.
        let rqes = (base + 64).assumingMemoryBound(to: cnm_zcrx_rqe.self)
        #expect(rqes[0].off == 8 << 12 && rqes[1].off == 9 << 12 && rqes[2].off == 10 << 12)
        #expect(rqes[3].off == 3 << 12 && rqes[3].len == 4096)
        #expect(ring.entry(at: 10).off == 10 << 12)
    }

    @Test func completionBecomesAFragmentAndGoesBack() {
        var cqe = BigCompletion(completion: Completion(userData: 77, result: 1000, flags: UInt32(CNM_IORING_CQE_F_MORE)),
                                extra: ((2 << 48) | (5 * 4096 + 100), 0))
        let f = ZcrxCompletion.fragment(cqe, bufferShift: 12)
        #expect(f == Fragment(regionOffset: 5 * 4096 + 100, length: 1000, token: 5, regionID: 2))
        #expect(ZcrxCompletion.refillOffset(token: 5, bufferShift: 12, areaToken: 2 << 48) == (2 << 48) | (5 << 12))
        cqe.completion.result = 0
        #expect(ZcrxCompletion.fragment(cqe, bufferShift: 12) == nil, "an EOF completion carries no data")
        cqe.completion.result = -104
        #expect(ZcrxCompletion.fragment(cqe, bufferShift: 12) == nil, "an error completion carries no data")
    }

    @Test func badConfigurationIsTyped() {
        #expect(throws: ZcrxError.self) {
            _ = try ZcrxQueue(.init(interface: "lo", queue: 0, refillEntries: 100))
        }
        #expect(throws: ZcrxError.noSuchInterface("nmk-none0")) {
            _ = try ZcrxQueue(.init(interface: "nmk-none0", queue: 0))
        }
        #expect(throws: ZcrxError.self) {
            _ = try ZcrxQueue(.init(interface: "lo", queue: 0, area: .host(bytes: 1000)))
        }
    }

    /// A region's fd as the area: registration is attempted with IORING_ZCRX_AREA_DMABUF
    /// and refused on loopback with a typed error.
    @Test(.enabled(if: geteuid() == 0, "IORING_REGISTER_ZCRX_IFQ needs CAP_NET_ADMIN; run as root"))
    func regionAreaRegistrationIsRefusedWithATypedError() throws {
        let region = try DeviceMemoryRegion(exporter: MemfdExporter(size: 1 << 20))
        let area = try ZcrxArea.region(region)
        guard case let .dmabuf(fd, bytes) = area else {
            Issue.record("a region's area must be a dma-buf area")
            return
        }
        #expect(fd == region.fileDescriptor?.rawValue && bytes == 1 << 20)
        do {
            _ = try ZcrxQueue(.init(interface: "lo", queue: 0, area: area, refillEntries: 64))
            Issue.record("zcrx registration with a memfd area on lo unexpectedly succeeded")
        } catch {
            print("zcrx with a region area on lo: \(error)")
            guard case .registrationRefused = error else {
                Issue.record("expected registrationRefused, got \(error)")
                return
            }
        }
    }

    /// Registration on loopback must fail, and the error must say the driver lacks support.
    @Test(.enabled(if: geteuid() == 0, "IORING_REGISTER_ZCRX_IFQ needs CAP_NET_ADMIN; run as root"))
    func registrationOnLoopbackSaysTheDriverLacksSupport() {
        do {
            let q = try ZcrxQueue(.init(interface: "lo", queue: 0, area: .host(bytes: 1 << 20), refillEntries: 64))
            Issue.record("zcrx registration on lo unexpectedly succeeded (zcrx id \(q.zcrxID))")
        } catch {
            print("zcrx on lo: \(error)")
            switch error {
            case let .registrationRefused(interface, queue, errno, reason):
                #expect(interface == "lo" && queue == 0)
                #expect([Errno.notSupported, .invalidArgument, .operationNotSupportedByDevice].contains(errno),
                        "unexpected errno \(errno)")
                #expect(reason.contains("lacks zero-copy receive support") || reason.contains("no driver support"))
            case let .ringSetup(e):
                // A kernel without DEFER_TASKRUN|CQE32 cannot get this far.
                Issue.record("the zcrx ring could not be set up: \(e)")
            default:
                Issue.record("unexpected error \(error)")
            }
        }
    }
}

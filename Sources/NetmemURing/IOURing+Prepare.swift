import CNetmemLinux
import Glibc
import SystemPackage

/// SQE preparation. Each helper fills one submission queue entry; nothing reaches the
/// kernel before `submit()`. Every helper mirrors the liburing `io_uring_prep_*` of the
/// same name (written here from the kernel ABI, not taken from liburing).
extension IOURing {
    /// Mirrors `io_uring_prep_nop`.
    public mutating func prepareNop(userData: UInt64) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_NOP), -1, 0, 0, 0, userData)
    }

    /// Mirrors `io_uring_prep_accept` / `io_uring_prep_multishot_accept` (peer address
    /// not asked for). Each completion's result is a new connected socket.
    public mutating func prepareAccept(listener: FileDescriptor, multishot: Bool, userData: UInt64) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_ACCEPT), listener.rawValue, 0, 0, 0, userData)
        sqe.pointee.op_flags = UInt32(SOCK_CLOEXEC.rawValue)
        if multishot { sqe.pointee.ioprio = UInt16(CNM_IORING_ACCEPT_MULTISHOT) }
    }

    /// Mirrors `io_uring_prep_connect`. `address` must stay valid until the completion.
    public mutating func prepareConnect(
        socket: FileDescriptor, address: UnsafeRawPointer, length: Int, userData: UInt64
    ) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_CONNECT), socket.rawValue, UInt64(UInt(bitPattern: address)),
                    0, UInt64(length), userData)
    }

    /// Mirrors `io_uring_prep_recv_multishot` with buffer selection from provided-buffer
    /// group `group`: each completion names the buffer the data landed in, and the
    /// request goes on (`F_MORE`) until EOF, an error, or the group runs dry (ENOBUFS).
    /// With `bundle`, one completion may cover several consecutive buffers
    /// (`IORING_RECVSEND_BUNDLE`, check `Features.bundles`).
    public mutating func prepareRecvMultishot(
        socket: FileDescriptor, group: UInt16, bundle: Bool = false, userData: UInt64
    ) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_RECV), socket.rawValue, 0, 0, 0, userData)
        sqe.pointee.flags = UInt8(CNM_IOSQE_BUFFER_SELECT)
        sqe.pointee.ioprio = UInt16(CNM_IORING_RECV_MULTISHOT) | (bundle ? UInt16(CNM_IORING_RECVSEND_BUNDLE) : 0)
        sqe.pointee.buf_index = group
    }

    /// A one-shot receive of at most `maxLength` bytes into a buffer the kernel picks
    /// from provided-buffer group `group` (`IOSQE_BUFFER_SELECT`). With incremental
    /// buffers only those bytes of the buffer are used. Mirrors `io_uring_prep_recv` with
    /// buffer selection.
    public mutating func prepareRecv(
        socket: FileDescriptor, group: UInt16, maxLength: UInt32, userData: UInt64
    ) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_RECV), socket.rawValue, 0, maxLength, 0, userData)
        sqe.pointee.flags = UInt8(CNM_IOSQE_BUFFER_SELECT)
        sqe.pointee.buf_index = group
    }

    /// Mirrors `io_uring_prep_recv` into a caller's buffer (valid until the completion).
    public mutating func prepareRecv(
        socket: FileDescriptor, buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0, userData: UInt64
    ) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_RECV), socket.rawValue, UInt64(UInt(bitPattern: buffer.baseAddress)),
                    UInt32(buffer.count), 0, userData)
        sqe.pointee.op_flags = UInt32(bitPattern: flags)
    }

    /// Mirrors `io_uring_prep_send`. The bytes must stay valid until the completion.
    public mutating func prepareSend(
        socket: FileDescriptor, bytes: UnsafeRawBufferPointer, flags: Int32 = Int32(MSG_NOSIGNAL), userData: UInt64
    ) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_SEND), socket.rawValue, UInt64(UInt(bitPattern: bytes.baseAddress)),
                    UInt32(bytes.count), 0, userData)
        sqe.pointee.op_flags = UInt32(bitPattern: flags)
    }

    /// Mirrors `io_uring_prep_send_zc` / `io_uring_prep_send_zc_fixed`. Two completions
    /// follow: the send's (bytes, `F_MORE` when a notification is coming) and the
    /// notification (`F_NOTIF`) after which the memory may be reused. With
    /// `registeredBuffer`, the bytes must lie inside that registered buffer
    /// (`IORING_RECVSEND_FIXED_BUF`). With `reportUsage`, the notification says whether
    /// the kernel copied anyway (`IORING_SEND_ZC_REPORT_USAGE`).
    public mutating func prepareSendZeroCopy(
        socket: FileDescriptor, bytes: UnsafeRawBufferPointer, registeredBuffer: UInt16?,
        reportUsage: Bool, flags: Int32 = Int32(MSG_NOSIGNAL), userData: UInt64
    ) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_SEND_ZC), socket.rawValue, UInt64(UInt(bitPattern: bytes.baseAddress)),
                    UInt32(bytes.count), 0, userData)
        sqe.pointee.op_flags = UInt32(bitPattern: flags)
        var zc: UInt16 = 0
        if let index = registeredBuffer {
            zc |= UInt16(CNM_IORING_RECVSEND_FIXED_BUF)
            sqe.pointee.buf_index = index
        }
        if reportUsage { zc |= UInt16(CNM_IORING_SEND_ZC_REPORT_USAGE) }
        sqe.pointee.ioprio = zc
    }

    /// Mirrors `io_uring_prep_read`: `buffer.count` bytes from `offset` of a file.
    public mutating func prepareRead(
        file: FileDescriptor, buffer: UnsafeMutableRawBufferPointer, offset: UInt64, userData: UInt64
    ) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_READ), file.rawValue, UInt64(UInt(bitPattern: buffer.baseAddress)),
                    UInt32(buffer.count), offset, userData)
    }

    /// Mirrors `io_uring_prep_read_fixed`: like `prepareRead` into registered buffer
    /// `registeredBuffer` (the bytes must lie inside it).
    public mutating func prepareReadFixed(
        file: FileDescriptor, buffer: UnsafeMutableRawBufferPointer, offset: UInt64,
        registeredBuffer: UInt16, userData: UInt64
    ) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_READ_FIXED), file.rawValue, UInt64(UInt(bitPattern: buffer.baseAddress)),
                    UInt32(buffer.count), offset, userData)
        sqe.pointee.buf_index = registeredBuffer
    }

    /// Mirrors `io_uring_prep_close`.
    public mutating func prepareClose(_ fd: FileDescriptor, userData: UInt64) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_CLOSE), fd.rawValue, 0, 0, 0, userData)
    }

    /// Mirrors `io_uring_prep_cancel64`: cancels the request(s) submitted with
    /// `targetUserData`.
    public mutating func prepareCancel(targetUserData: UInt64, all: Bool = true, userData: UInt64) throws(URingError) {
        let sqe = try nextSQE()
        cnm_prep_rw(sqe, UInt8(CNM_IORING_OP_ASYNC_CANCEL), -1, targetUserData, 0, 0, userData)
        if all { sqe.pointee.op_flags = 1 }  // IORING_ASYNC_CANCEL_ALL
    }

    /// Fills a raw SQE for operations without a helper (e.g. RECV_ZC); the caller sets
    /// every field it needs. The SQE arrives zeroed.
    public mutating func prepareRaw(_ fill: (inout cnm_io_uring_sqe) -> Void) throws(URingError) {
        let sqe = try nextSQE()
        fill(&sqe.pointee)
    }
}

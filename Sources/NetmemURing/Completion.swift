import CNetmemLinux
import SystemPackage

/// One completion queue entry. Mirrors `struct io_uring_cqe` with its flag helpers.
@frozen
public struct Completion: Sendable, Equatable, CustomStringConvertible {
    /// The `user_data` of the submission this completes.
    public var userData: UInt64
    /// The result: bytes, a file descriptor, 0, or a negative errno.
    public var result: Int32
    /// `IORING_CQE_F_*` flags.
    public var flags: UInt32

    /// A completion from its fields, as the kernel fills them.
    @inlinable
    public init(userData: UInt64, result: Int32, flags: UInt32) {
        self.userData = userData
        self.result = result
        self.flags = flags
    }

    /// The error, when the result is a negative errno.
    @inlinable
    public var error: Errno? { result < 0 ? Errno(rawValue: -result) : nil }

    /// `IORING_CQE_F_MORE`: the submission will post more completions (multishot, or a
    /// SEND_ZC whose notification is still to come).
    @inlinable
    public var hasMore: Bool { flags & UInt32(CNM_IORING_CQE_F_MORE) != 0 }

    /// `IORING_CQE_F_BUFFER`: the id of the provided buffer the data landed in.
    @inlinable
    public var bufferID: UInt16? {
        flags & UInt32(CNM_IORING_CQE_F_BUFFER) != 0 ? UInt16(truncatingIfNeeded: flags >> UInt32(CNM_IORING_CQE_BUFFER_SHIFT)) : nil
    }

    /// `IORING_CQE_F_BUF_MORE` (incremental buffer rings): the kernel keeps using the
    /// buffer for further completions.
    @inlinable
    public var bufferHasMore: Bool { flags & UInt32(CNM_IORING_CQE_F_BUF_MORE) != 0 }

    /// `IORING_CQE_F_NOTIF`: a SEND_ZC notification (the buffer may be reused now).
    @inlinable
    public var isNotification: Bool { flags & UInt32(CNM_IORING_CQE_F_NOTIF) != 0 }

    /// `IORING_CQE_F_SOCK_NONEMPTY`: more data was waiting in the socket.
    @inlinable
    public var socketNonEmpty: Bool { flags & UInt32(CNM_IORING_CQE_F_SOCK_NONEMPTY) != 0 }

    /// For a notification requested with `IORING_SEND_ZC_REPORT_USAGE`: the kernel copied
    /// the data anyway (`IORING_NOTIF_USAGE_ZC_COPIED`).
    @inlinable
    public var zeroCopyWasCopied: Bool { UInt32(bitPattern: result) & CNM_IORING_NOTIF_USAGE_ZC_COPIED != 0 }

    public var description: String {
        "cqe(user_data \(userData), res \(result), flags 0x\(String(flags, radix: 16)))"
    }
}

import CNetmemLinux

/// One completion of a ring set up with `IORING_SETUP_CQE32` (`Options.bigCompletions`):
/// the 16-byte `Completion` and the 16 bytes after it (`big_cqe[2]`), whose meaning
/// depends on the operation (for RECV_ZC, `struct io_uring_zcrx_cqe`: the offset of the
/// data in the zcrx area). Mirrors a 32-byte `struct io_uring_cqe`.
public struct BigCompletion: Sendable, Equatable, CustomStringConvertible {
    /// The first 16 bytes: user data, result, flags.
    public var completion: Completion
    /// The second 16 bytes, as the kernel's `big_cqe[0]` and `big_cqe[1]`.
    public var extra: (UInt64, UInt64)

    /// A completion from its two halves.
    public init(completion: Completion, extra: (UInt64, UInt64)) {
        self.completion = completion
        self.extra = extra
    }

    init(_ cqe: cnm_io_uring_cqe32) {
        self.init(completion: Completion(userData: cqe.user_data, result: cqe.res, flags: cqe.flags),
                  extra: cqe.big_cqe)
    }

    public static func == (a: BigCompletion, b: BigCompletion) -> Bool {
        a.completion == b.completion && a.extra == b.extra
    }

    public var description: String {
        "\(completion) + (0x\(String(extra.0, radix: 16)), 0x\(String(extra.1, radix: 16)))"
    }
}

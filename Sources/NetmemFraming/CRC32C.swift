import CNetmemCRC32C

/// CRC-32C (Castagnoli), the checksum of the frame format's `payload_crc32c`.
/// Computed by folding with AVX-512 VPCLMULQDQ where the CPU has it (from 1 KiB), with
/// three interleaved CRC32 instruction chains joined by carry-less multiplies when it has
/// SSE4.2 and PCLMULQDQ, one CRC32 chain when it has only the instruction (SSE4.2, ARMv8
/// CRC), slicing-by-8 tables otherwise. Chosen once, at the first call.
public enum CRC32C {
    /// How `checksum` computes.
    public enum Implementation: Int, Sendable, CustomStringConvertible {
        /// Slicing-by-8 tables.
        case tables = 0
        /// One chain of CRC32 instructions, bound by the instruction's latency.
        case singleChain = 1
        /// Three CRC32 chains over adjacent blocks, joined with PCLMULQDQ.
        case threeChains = 2
        /// Four 512-bit accumulators folded with VPCLMULQDQ, 256 bytes a round; three
        /// chains below 1 KiB and for the tail.
        case vpclmulqdqFolding = 3

        public var description: String {
            switch self {
            case .tables: "slicing-by-8 tables"
            case .singleChain: "one crc32 chain"
            case .threeChains: "three crc32 chains + pclmulqdq"
            case .vpclmulqdqFolding: "vpclmulqdq folding"
            }
        }
    }

    /// Continues a CRC-32C over `bytes`. Start with `crc = 0`; every result is final, so
    /// `checksum(b, continuing: checksum(a))` equals the checksum of `a` followed by `b`.
    /// Mirrors `cnm_crc32c`.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return cnm_crc32c(crc, base, bytes.count)
    }

    /// The CRC-32C of an array of bytes.
    public static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// Same as `checksum`, always with the portable table implementation (for tests that
    /// compare the two). Mirrors `cnm_crc32c_portable`.
    public static func portableChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return cnm_crc32c_portable(crc, base, bytes.count)
    }

    /// Same as `checksum`, always with three CRC32 chains (one chain without PCLMULQDQ):
    /// for tests and the bench on CPUs where `checksum` folds. Mirrors
    /// `cnm_crc32c_three_chains`.
    public static func threeChainChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return cnm_crc32c_three_chains(crc, base, bytes.count)
    }

    /// Same as `checksum`, always with one CRC32 instruction chain (tables on a CPU
    /// without the instruction): the baseline `netmem bench crc` measures beside
    /// `checksum`. Mirrors `cnm_crc32c_single_chain`.
    public static func singleChainChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return cnm_crc32c_single_chain(crc, base, bytes.count)
    }

    /// Whether the CPU has a CRC32 instruction. Mirrors `cnm_crc32c_hardware`.
    public static var usesHardware: Bool { cnm_crc32c_hardware() != 0 }

    /// What `checksum` uses on this CPU. Mirrors `cnm_crc32c_implementation`.
    public static var implementation: Implementation {
        Implementation(rawValue: Int(cnm_crc32c_implementation())) ?? .tables
    }
}

import CNetmemLinux

/// CRC-32C (Castagnoli), the checksum of the frame format's `payload_crc32c`.
/// Computed with the CPU's CRC32 instructions when it has them (SSE4.2, ARMv8 CRC),
/// slicing-by-8 tables otherwise.
public enum CRC32C {
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

    /// Whether the hardware implementation is in use. Mirrors `cnm_crc32c_hardware`.
    public static var usesHardware: Bool { cnm_crc32c_hardware() != 0 }
}

import Glibc
import Netmem
import NetmemFraming
import Testing

/// CRC-32C against a bit-at-a-time reference: every implementation, many lengths (every
/// one up to a few rounds of the three-chain loop, then a spread and the block boundaries
/// up to 70 000 bytes), every start alignment, and computations split into pieces.
@Suite struct CRC32CTests {
    /// The CRC-32C of every prefix of `bytes`: element n is the checksum of the first n.
    static func referencePrefixes(_ bytes: UnsafeRawBufferPointer) -> [UInt32] {
        var r: UInt32 = 0xFFFF_FFFF
        var out: [UInt32] = [0]
        out.reserveCapacity(bytes.count + 1)
        for b in bytes {
            r ^= UInt32(b)
            for _ in 0..<8 { r = r & 1 != 0 ? (r >> 1) ^ 0x82F6_3B78 : r >> 1 }
            out.append(~r)
        }
        return out
    }

    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    typealias Implementation = (String, @Sendable (UnsafeRawBufferPointer, UInt32) -> UInt32)
    static let implementations: [Implementation] = [
        ("checksum (\(CRC32C.implementation))", { CRC32C.checksum($0, continuing: $1) }),
        ("three chains", { CRC32C.threeChainChecksum($0, continuing: $1) }),
        ("single chain", { CRC32C.singleChainChecksum($0, continuing: $1) }),
        ("tables", { CRC32C.portableChecksum($0, continuing: $1) }),
    ]

    /// RFC 3720 (iSCSI) B.4 test vectors and the usual check value.
    @Test func knownVectors() {
        let vectors: [([UInt8], UInt32)] = [
            (Array("123456789".utf8), 0xE306_9283),
            ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
            ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
            ((0..<32).map { UInt8($0) }, 0x46DD_794E),
            ((0..<32).reversed().map { UInt8($0) }, 0x113F_DB5C),
        ]
        for (bytes, expected) in vectors {
            for (name, f) in Self.implementations {
                let crc = bytes.withUnsafeBytes { f($0, 0) }
                #expect(crc == expected, "\(name) of \(bytes.count) bytes: \(crc), expected \(expected)")
            }
        }
    }

    /// The CPU this runs on gets the folding or three-chain code when it has the
    /// instructions for them (so the comparisons below test that code, not only the
    /// fallback).
    @Test func dispatchPicksTheFastestCodeTheCPUAllows() throws {
        #if arch(x86_64)
        guard let f = fopen("/proc/cpuinfo", "r") else {
            print("skipped: /proc/cpuinfo is not readable, cannot tell which CRC32C code the CPU allows")
            return
        }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 8192)
        var flags: Set<Substring> = []
        while fgets(&line, Int32(line.count), f) != nil {
            let text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            if text.hasPrefix("flags") {
                flags = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }))
                break
            }
        }
        let clmul = flags.contains("pclmulqdq") && flags.contains("sse4_2")
        let expected: CRC32C.Implementation = clmul && flags.contains("avx512f") && flags.contains("vpclmulqdq") ? .vpclmulqdqFolding
            : clmul ? .threeChains : flags.contains("sse4_2") ? .singleChain : .tables
        #expect(CRC32C.implementation == expected)
        #else
        print("skipped: the three-chain CRC32C code exists for x86-64 only; this CPU uses \(CRC32C.implementation)")
        #endif
    }

    @Test func everyImplementationMatchesTheReference() {
        let total = 70_000
        let buffer = Self.randomBytes(total + 8, seed: 0xC3C3_2C00)
        // Lengths around the three-chain loop's rounds (3 × 256 and 3 × 8192 bytes) and
        // the fold's (256 bytes, from 1024).
        var boundaries: Set<Int> = []
        for round in [256, 768, 24_576] {
            var k = round
            while k <= total {
                for d in [-9, -8, -7, -1, 0, 1, 7, 8, 9] where k + d >= 0 && k + d <= total { boundaries.insert(k + d) }
                k += round
            }
        }
        buffer.withUnsafeBytes { all in
            for offset in 0..<8 {
                let view = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + total)])
                let reference = Self.referencePrefixes(view)
                var lengths = boundaries.union(0...2400)
                if offset == 1 || offset == 5 { lengths.formUnion(stride(from: 2401, through: total, by: 97)) }
                lengths.insert(total)
                for length in lengths.sorted() {
                    let piece = UnsafeRawBufferPointer(rebasing: view[0..<length])
                    for (name, f) in Self.implementations {
                        let crc = f(piece, 0)
                        if crc != reference[length] {
                            Issue.record("\(name): \(length) bytes at offset \(offset) gave \(crc), reference \(reference[length])")
                            return
                        }
                    }
                }
            }
        }
    }

    /// A checksum continued over pieces (odd sizes, splits inside the loop's blocks)
    /// equals the checksum of the whole.
    @Test func continuedComputationMatchesTheWhole() {
        var rng = SplitMix64(seed: 0x5917_C0DE)
        for trial in 0..<300 {
            let count = Int.random(in: 0...70_000, using: &rng)
            let bytes = Self.randomBytes(count + 3, seed: UInt64(trial))
            bytes.withUnsafeBytes { all in
                let start = Int.random(in: 0...3, using: &rng)
                let view = UnsafeRawBufferPointer(rebasing: all[start..<(start + count)])
                let whole = CRC32C.portableChecksum(view)
                var cuts = (0..<Int.random(in: 0...5, using: &rng)).map { _ in Int.random(in: 0...count, using: &rng) }
                cuts = ([0] + cuts + [count]).sorted()
                for (name, f) in Self.implementations {
                    var crc: UInt32 = 0
                    for i in 0..<(cuts.count - 1) {
                        crc = f(UnsafeRawBufferPointer(rebasing: view[cuts[i]..<cuts[i + 1]]), crc)
                    }
                    #expect(crc == whole, "\(name), trial \(trial): \(count) bytes cut at \(cuts) gave \(crc), whole \(whole)")
                }
            }
        }
    }
}

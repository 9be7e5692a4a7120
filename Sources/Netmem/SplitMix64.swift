/// A small seeded generator (SplitMix64) so benchmarks and randomized tests can be
/// replayed from the seed they print. Not for anything that needs unpredictability.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `n` bytes from the generator (each word's bytes low first).
    package mutating func bytes(_ n: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: n) { out, count in
            var i = 0
            while i + 8 <= n {
                UnsafeMutableRawPointer(out.baseAddress! + i).storeBytes(of: next().littleEndian, as: UInt64.self)
                i += 8
            }
            if i < n {
                var w = next()
                while i < n {
                    out[i] = UInt8(truncatingIfNeeded: w)
                    w >>= 8
                    i += 1
                }
            }
            count = n
        }
    }
}

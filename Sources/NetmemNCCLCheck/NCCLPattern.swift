import Netmem

/// The bytes of message `index` of a stream: deterministic from the stream's seed, so the
/// receiving process can regenerate what the sender sent.
enum NCCLPattern {
    static func fill(_ p: UnsafeMutableRawPointer, count: Int, seed: UInt64, index: Int) {
        var g = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        let words = count / 8
        let w = p.bindMemory(to: UInt64.self, capacity: words)
        for i in 0..<words { w[i] = g.next() }
        var last = g.next()
        for i in (words * 8)..<count {
            p.storeBytes(of: UInt8(truncatingIfNeeded: last), toByteOffset: i, as: UInt8.self)
            last >>= 8
        }
    }
}

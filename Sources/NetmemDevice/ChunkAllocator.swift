/// A general-purpose allocator of chunk runs over one or more segments, like the
/// kernel's genpool: each segment keeps its free ranges sorted by start; allocation is
/// first fit (a single chunk, or a contiguous run); freeing merges with the neighbours.
/// Not thread-safe: its owner (a binding) serialises access.
struct ChunkAllocator {
    struct Range: Equatable {
        var start: Int
        var count: Int
        var end: Int { start + count }
    }

    /// Free ranges per segment, sorted by start, never adjacent (always merged).
    private(set) var free: [[Range]]
    let capacities: [Int]
    private(set) var freeCount: Int

    init(chunksPerSegment: [Int]) {
        capacities = chunksPerSegment
        free = chunksPerSegment.map { $0 > 0 ? [Range(start: 0, count: $0)] : [] }
        freeCount = chunksPerSegment.reduce(0, +)
    }

    var totalCount: Int { capacities.reduce(0, +) }
    var isEntirelyFree: Bool { freeCount == totalCount && free.enumerated().allSatisfy { i, r in
        capacities[i] == 0 ? r.isEmpty : r == [Range(start: 0, count: capacities[i])] } }

    /// The first free run of `count` chunks: (segment, first chunk), or nil.
    mutating func allocate(count: Int = 1) -> (segment: Int, chunk: Int)? {
        precondition(count > 0, "chunk allocation of \(count) chunks")
        for s in free.indices {
            for i in free[s].indices where free[s][i].count >= count {
                let start = free[s][i].start
                free[s][i].start += count
                free[s][i].count -= count
                if free[s][i].count == 0 { free[s].remove(at: i) }
                freeCount -= count
                return (s, start)
            }
        }
        return nil
    }

    /// Gives a run back. Freeing chunks that are already free is a programming error.
    mutating func release(segment s: Int, chunk: Int, count: Int = 1) {
        precondition(s >= 0 && s < free.count && chunk >= 0 && chunk + count <= capacities[s],
                     "chunk run \(chunk)+\(count) is outside segment \(s)")
        var ranges = free[s]
        // First range starting after the run.
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].start <= chunk { lo = mid + 1 } else { hi = mid }
        }
        let idx = lo
        if idx > 0 { precondition(ranges[idx - 1].end <= chunk, "double free of chunk \(chunk) in segment \(s)") }
        if idx < ranges.count { precondition(chunk + count <= ranges[idx].start, "double free of chunk \(chunk) in segment \(s)") }
        let mergesLeft = idx > 0 && ranges[idx - 1].end == chunk
        let mergesRight = idx < ranges.count && ranges[idx].start == chunk + count
        switch (mergesLeft, mergesRight) {
        case (true, true):
            ranges[idx - 1].count += count + ranges[idx].count
            ranges.remove(at: idx)
        case (true, false):
            ranges[idx - 1].count += count
        case (false, true):
            ranges[idx].start = chunk
            ranges[idx].count += count
        case (false, false):
            ranges.insert(Range(start: chunk, count: count), at: idx)
        }
        free[s] = ranges
        freeCount += count
    }
}

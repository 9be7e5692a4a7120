import NetmemDevice
import Synchronization
import Testing

/// Records every `dontNeed` call; refuses the tokens in `refuse` (as a table refuses an
/// unknown token: the ones before it in the call are freed).
final class RecordingReturner: TokenReturning {
    let calls = Mutex<[[TokenRange]]>([])
    let refuse: Set<UInt32>

    init(refuse: Set<UInt32> = []) { self.refuse = refuse }

    func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int {
        guard ranges.count <= TokenLimits.maxRanges else { throw .tooManyRanges(ranges.count) }
        let total = ranges.reduce(0) { $0 + Int($1.count) }
        guard total <= TokenLimits.maxFragments else { throw .tooManyFragments(total) }
        calls.withLockChecked { $0.append(ranges) }
        var freed = 0
        for r in ranges {
            for i in 0..<r.count {
                if refuse.contains(r.start + i) { throw .unknownToken(r.start + i, freedBefore: freed) }
                freed += 1
            }
        }
        return freed
    }

    var returned: [UInt32] {
        calls.withLockChecked { $0 }.flatMap { $0 }.flatMap { r in (0..<r.count).map { r.start + $0 } }
    }
}

@Suite("Giving tokens back in bulk")
struct TokenGiveBackTests {
    @Test("Scattered tokens go in calls of at most 128 ranges")
    func scattered() {
        let r = RecordingReturner()
        let result = r.giveBack((0..<300).map { UInt32($0 * 2 + 1) })
        #expect(result.freed == 300 && result.refused == 0)
        #expect(r.calls.withLockChecked { $0.map(\.count) } == [128, 128, 44])
    }

    @Test("Runs of consecutive tokens coalesce, cut at 1024 tokens per call")
    func runs() {
        let r = RecordingReturner()
        let tokens = (1000..<6000).map { UInt32($0) }
        let result = r.giveBack(tokens)
        #expect(result.freed == 5000)
        let calls = r.calls.withLockChecked { $0 }
        #expect(calls.allSatisfy { $0.reduce(0) { $0 + Int($1.count) } <= TokenLimits.maxFragments && $0.count <= TokenLimits.maxRanges })
        #expect(r.returned == tokens)
        #expect(calls.count == 5)
    }

    @Test("One refused token never keeps the others out")
    func refused() {
        let r = RecordingReturner(refuse: [7])
        let result = r.giveBack((1..<20).map { UInt32($0) })
        #expect(result.freed == 18)
        #expect(result.refused == 1)
        #expect(Set(r.returned).isSuperset(of: Set((1..<20).map { UInt32($0) }).subtracting([7])))
    }
}

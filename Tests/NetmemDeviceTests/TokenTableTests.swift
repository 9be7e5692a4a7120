import Netmem
@testable import NetmemDevice
import Testing

@Suite struct TokenTableTests {
    func setup(chunks: Int = 64) throws -> (PagePool, HostPageProvider) {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: chunks)
        return (try PagePool(PagePool.Configuration(provider: provider, poolSize: chunks, fragmentSize: 4096)), provider)
    }

    @Test func tokensReturnFragmentsAndCountWhatWasFreed() throws {
        let (pool, _) = try setup()
        let table = TokenTable(name: "c1")
        var tokens: [UInt32] = []
        for _ in 0..<10 { tokens.append(table.issue(pool.allocateFragment(length: 4096)!, owner: pool)) }
        #expect(table.heldCount == 10)
        #expect(pool.inFlight == 10)
        #expect(try table.dontNeed([TokenRange(start: tokens[0], count: 4), TokenRange(token: tokens[9])]) == 5)
        #expect(pool.inFlight == 6)  // five held, and the last chunk is still being carved
        #expect(table.heldCount == 5)
    }

    /// A batch issued under one lock gets distinct tokens, reuses returned ones, and each
    /// token releases its own fragment.
    @Test func batchIssueGivesEachFragmentItsOwnToken() throws {
        let provider = try HostPageProvider(chunkSize: 4096, chunkCount: 64)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64, fragmentSize: 4096))
        let regions = try RegionMap(hostArea: provider.area, kind: "host", keepingAlive: provider)
        let table = TokenTable(name: "batch")
        var issued: [Fragment] = []
        table.issue((0..<12).map { _ in pool.allocateFragment(length: 4096)! }, owner: pool, regions: regions, into: &issued)
        let tokens = issued.map(\.token)
        #expect(Set(tokens).count == 12)
        #expect(issued.allSatisfy { $0.length == 4096 && $0.regionID == regions.region.id })
        #expect(table.heldCount == 12)
        #expect(try table.dontNeed(tokens[0..<5].map { TokenRange(token: $0) }) == 5)
        // The next batch takes the five returned tokens first, then new ones.
        let returned = Set(tokens[0..<5])
        var again: [Fragment] = []
        table.issue((0..<7).map { _ in pool.allocateFragment(length: 4096)! }, owner: pool, regions: regions, into: &again)
        let againTokens = again.map(\.token)
        #expect(Set(againTokens[0..<5]) == returned)
        #expect(Set(againTokens).isDisjoint(with: tokens[5..<12]))
        #expect(table.heldCount == 14)
        #expect(try table.dontNeed((Array(tokens[5..<12]) + againTokens).map { TokenRange(token: $0) }) == 14)
        #expect(table.heldCount == 0)
        #expect(pool.inFlight == 1)  // the chunk being carved
    }

    @Test func unknownAndRepeatedTokensAreTypedErrorsThatFreeNothingWrongly() throws {
        let (pool, _) = try setup()
        let a = TokenTable(name: "a")
        let b = TokenTable(name: "b")
        let ta = a.issue(pool.allocateFragment(length: 4096)!, owner: pool)
        let tb = b.issue(pool.allocateFragment(length: 4096)!, owner: pool)
        // Tokens are scoped: b has no token 5, whatever other consumers hold.
        #expect(throws: TokenError.unknownToken(5, freedBefore: 0)) { _ = try b.dontNeed([TokenRange(token: 5)]) }
        #expect(try a.dontNeed([TokenRange(token: ta)]) == 1)
        #expect(throws: TokenError.alreadyReturned(ta, freedBefore: 0)) { _ = try a.dontNeed([TokenRange(token: ta)]) }
        // b's fragment is untouched by a's returns.
        #expect(b.heldCount == 1)
        #expect(pool.inFlight == 1)
        _ = tb
    }

    @Test func callsOverTheKernelLimitsFreeNothing() throws {
        let (pool, _) = try setup(chunks: 2048)
        let table = TokenTable()
        var tokens: [UInt32] = []
        for _ in 0..<1100 { tokens.append(table.issue(pool.allocateFragment(length: 64)!, owner: pool)) }
        let tooManyRanges = (0..<129).map { TokenRange(token: tokens[$0]) }
        #expect(throws: TokenError.tooManyRanges(129)) { _ = try table.dontNeed(tooManyRanges) }
        #expect(throws: TokenError.tooManyFragments(1025)) {
            _ = try table.dontNeed([TokenRange(start: 0, count: 1000), TokenRange(start: 1000, count: 25)])
        }
        #expect(table.heldCount == 1100)
        #expect(try table.dontNeed([TokenRange(start: 0, count: 1024)]) == 1024)
        #expect(try table.dontNeed([TokenRange(start: 1024, count: 76)]) == 76)
    }

    @Test func aBadTokenMidCallReportsWhatWasFreedBeforeIt() throws {
        let (pool, _) = try setup()
        let table = TokenTable()
        for _ in 0..<3 { _ = table.issue(pool.allocateFragment(length: 4096)!, owner: pool) }
        #expect(throws: TokenError.unknownToken(3, freedBefore: 2)) {
            _ = try table.dontNeed([TokenRange(start: 1, count: 3)])
        }
        #expect(table.heldCount == 1)
    }

    @Test func closeReleasesHeldTokensByDefault() throws {
        let (pool, _) = try setup()
        let table = TokenTable()
        for _ in 0..<5 { _ = table.issue(pool.allocateFragment(length: 4096)!, owner: pool) }
        #expect(table.close() == 5)
        #expect(pool.inFlight == 1)  // the chunk still being carved
        #expect(table.heldCount == 0)
        #expect(throws: TokenError.consumerClosed) { _ = try table.dontNeed([TokenRange(token: 0)]) }
    }

    @Test func closeCanKeepTokensUntilUnbind() throws {
        let q = ReceiveQueue(interface: "kt0", index: 0)
        let region = try DeviceMemoryRegion.memfd(size: 1 << 20)
        let binding = try DevmemBinding(region: region, queues: [q], registry: BindingRegistry())
        let pool = try binding.makePool(for: q, poolSize: 64, fragmentSize: 4096)
        let table = binding.makeConsumer(name: "kept", closeBehavior: .keepUntilUnbind)
        for _ in 0..<5 { _ = binding.deliver(pool.allocateFragment(length: 2000)!, from: pool, to: table) }
        #expect(table.close() == 0)
        #expect(table.heldCount == 5)
        #expect(binding.outstanding > 0)
        binding.unbind()
        pool.destroy()
        #expect(table.heldCount == 0)
        #expect(binding.isFreed)
    }
}

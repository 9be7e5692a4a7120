import Netmem
import NetmemDevice
import Testing
@testable import NetmemXDP

/// The token path of received frames without a network: a frame per token, returned
/// into the pool through `XDPFrameReleaser`.
@Suite("XDP frame tokens")
struct XDPFrameTokenTests {
    func makePool() throws -> (HostPageProvider, PagePool) {
        let provider = try HostPageProvider(chunkSize: 2048, chunkCount: 64)
        let pool = try PagePool(PagePool.Configuration(provider: provider, poolSize: 64))
        return (provider, pool)
    }

    @Test("tokens give their frames back to the pool; unknown and double returns are typed errors")
    func roundTrip() throws {
        let (_, pool) = try makePool()
        let releaser = XDPFrameReleaser(pool: pool)
        let table = TokenTable(name: "xdp test")
        var tokens: [UInt32] = []
        for _ in 0..<4 {
            let ref = try #require(pool.allocate())
            tokens.append(table.issue(NetmemFragment(ref: ref, offset: 298, length: 64), owner: releaser))
        }
        #expect(pool.inFlight == 4)
        #expect(table.heldCount == 4)
        #expect(try table.dontNeed([TokenRange(token: tokens[0]), TokenRange(token: tokens[1])]) == 2)
        #expect(pool.inFlight == 2)
        #expect(throws: TokenError.alreadyReturned(tokens[0], freedBefore: 0)) {
            try table.dontNeed([TokenRange(token: tokens[0])])
        }
        #expect(throws: TokenError.unknownToken(1000, freedBefore: 1)) {
            try table.dontNeed([TokenRange(token: tokens[2]), TokenRange(token: 1000)])
        }
        #expect(pool.inFlight == 1)
        #expect(try table.dontNeed([TokenRange(token: tokens[3])]) == 1)
        #expect(pool.inFlight == 0)
        #expect(table.heldCount == 0)
    }

    @Test("the kernel's limits on one return are enforced before anything is freed")
    func limits() throws {
        let (_, pool) = try makePool()
        let releaser = XDPFrameReleaser(pool: pool)
        let table = TokenTable(name: "xdp test")
        let ref = try #require(pool.allocate())
        let t = table.issue(NetmemFragment(ref: ref, offset: 256, length: 10), owner: releaser)
        let tooMany = [TokenRange](repeating: TokenRange(token: t), count: TokenLimits.maxRanges + 1)
        #expect(throws: TokenError.tooManyRanges(TokenLimits.maxRanges + 1)) { try table.dontNeed(tooMany) }
        #expect(throws: TokenError.tooManyFragments(TokenLimits.maxFragments + 1)) {
            try table.dontNeed([TokenRange(start: 0, count: UInt32(TokenLimits.maxFragments + 1))])
        }
        #expect(table.heldCount == 1)
        #expect(try table.dontNeed([TokenRange(token: t)]) == 1)
        #expect(pool.inFlight == 0)
    }
}

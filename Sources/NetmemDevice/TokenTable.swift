import Netmem
import Synchronization

/// Whatever takes a fragment back when its token is returned: a page pool (the fragment
/// reference drops, and the chunk recycles with its last fragment), or a data path that
/// keeps its own per-chunk counts.
public protocol FragmentReleasing: AnyObject, Sendable {
    /// Drops one reference on the fragment's chunk. Any thread.
    func releaseFragment(_ fragment: NetmemFragment)
}

extension PagePool: FragmentReleasing {}

/// The tokens one consumer (a connection, a session, or a queue's consumer) holds: the
/// one token table of every Netmem receive path (io_uring raw and framed, AF_XDP,
/// bindings). Mirrors the kernel's per-socket `sk_user_frags` xarray: receiving issues a
/// 32-bit token per fragment; `dontNeed` takes ranges of tokens back
/// (`SO_DEVMEM_DONTNEED`) and drops the fragments' chunk references. One consumer can
/// never return another's buffers: a token is only meaningful in the table that issued
/// it. Applications normally never call `dontNeed` themselves: a `Message` gives its
/// tokens back when it goes away.
///
/// Thread-safe: the receive thread issues, any thread returns.
public final class TokenTable: TokenReturning, Sendable {
    /// What happens to tokens still held when the consumer closes.
    public enum CloseBehavior: Sendable {
        /// Give every held token back (the default, like closing a devmem socket).
        case releaseHeld
        /// Keep the fragments held until `releaseKept()` (e.g. when the binding unbinds).
        case keepUntilUnbind
    }

    struct Entry {
        var fragment: NetmemFragment
        /// Index into `State.owners`.
        var owner: UInt16
        /// Never issued (0), held (1), returned (2).
        var state: UInt8
    }

    struct State: ~Copyable {
        var entries: [Entry] = []
        /// The distinct owners fragments go back to (usually one pool per queue).
        var owners: [any FragmentReleasing] = []
        var free: [UInt32] = []
        var held = 0
        var closed = false
        var kept = false
        /// `releaseKept()` ran (the binding unbound): nothing is kept from then on.
        var unbound = false
    }

    private let state = Mutex(State())
    /// The consumer's name, used in trap messages.
    public let name: String
    /// What `close()` does with tokens still held.
    public let closeBehavior: CloseBehavior

    /// An empty table, open for issuing.
    public init(name: String = "consumer", closeBehavior: CloseBehavior = .releaseHeld) {
        self.name = name
        self.closeBehavior = closeBehavior
    }

    /// Records a received fragment and returns its token. The table now holds one
    /// reference on the fragment's chunk, dropped through `owner` when the token returns.
    /// Traps if the consumer is closed (receiving on a closed consumer is a bug).
    public func issue(_ fragment: NetmemFragment, owner: any FragmentReleasing) -> UInt32 {
        state.withLockChecked { s in
            precondition(!s.closed, "token issued on closed consumer '\(name)'")
            let o = Self.ownerIndex(&s, owner, name)
            s.held += 1
            if let t = s.free.popLast() {
                s.entries[Int(t)] = Entry(fragment: fragment, owner: o, state: 1)
                return t
            }
            precondition(s.entries.count < Int(UInt32.max), "consumer '\(name)' ran out of tokens")
            s.entries.append(Entry(fragment: fragment, owner: o, state: 1))
            return UInt32(s.entries.count - 1)
        }
    }

    /// Takes over an owned piece of a chunk and returns the `Fragment` that describes it,
    /// in the coordinates of `regions`; the token now holds the piece's reference.
    public func issue(_ piece: consuming PoolFragment, regions: RegionMap) -> Fragment {
        let pool = piece.pool
        return issue(piece.take(), owner: pool, regions: regions)
    }

    /// Records a received fragment and returns the `Fragment` that describes it, in the
    /// coordinates of `regions`.
    public func issue(_ fragment: NetmemFragment, owner: any FragmentReleasing, regions: RegionMap) -> Fragment {
        regions.fragment(fragment, token: issue(fragment, owner: owner))
    }

    /// Records the fragments of one message under one lock and appends a `Fragment` for
    /// each, in order, to `out`. The table now holds one reference on each.
    public func issue(_ fragments: [NetmemFragment], owner: any FragmentReleasing, regions: RegionMap,
                      into out: inout [Fragment]) {
        state.withLockChecked { s in
            precondition(!s.closed, "token issued on closed consumer '\(name)'")
            let o = Self.ownerIndex(&s, owner, name)
            for f in fragments {
                s.held += 1
                let t: UInt32
                if let free = s.free.popLast() {
                    t = free
                    s.entries[Int(t)] = Entry(fragment: f, owner: o, state: 1)
                } else {
                    precondition(s.entries.count < Int(UInt32.max), "consumer '\(name)' ran out of tokens")
                    t = UInt32(s.entries.count)
                    s.entries.append(Entry(fragment: f, owner: o, state: 1))
                }
                out.append(regions.fragment(f, token: t))
            }
        }
    }

    private static func ownerIndex(_ s: inout State, _ owner: any FragmentReleasing, _ name: String) -> UInt16 {
        if let last = s.owners.last, last === owner { return UInt16(s.owners.count - 1) }
        if let i = s.owners.firstIndex(where: { $0 === owner }) { return UInt16(i) }
        precondition(s.owners.count < Int(UInt16.max), "consumer '\(name)' has too many fragment owners")
        s.owners.append(owner)
        return UInt16(s.owners.count - 1)
    }

    /// Tokens held now.
    public var heldCount: Int { state.withLockChecked { $0.held } }

    /// Gives back the tokens in `ranges` and returns how many fragments were freed.
    /// At most `TokenLimits.maxRanges` ranges and `TokenLimits.maxFragments` tokens per
    /// call, checked before anything is freed. An unknown or already returned token stops
    /// the call with an error that says how many were freed before it.
    public func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int {
        guard ranges.count <= TokenLimits.maxRanges else { throw .tooManyRanges(ranges.count) }
        var total = 0
        for r in ranges {
            total += Int(r.count)
            guard total <= TokenLimits.maxFragments else { throw .tooManyFragments(total) }
        }
        // Fragments are released under the lock, as the kernel does under its xarray lock:
        // a pool's release is short and never calls back into the table.
        let result: Result<Int, TokenError> = state.withLockChecked { s in
            if s.closed { return .failure(.consumerClosed) }
            var freed = 0
            for r in ranges {
                var t = r.start
                let end = UInt64(r.start) + UInt64(r.count)
                while UInt64(t) < end {
                    let i = Int(t)
                    guard i < s.entries.count, s.entries[i].state != 0 else {
                        return .failure(.unknownToken(t, freedBefore: freed))
                    }
                    guard s.entries[i].state == 1 else { return .failure(.alreadyReturned(t, freedBefore: freed)) }
                    s.entries[i].state = 2
                    s.owners[Int(s.entries[i].owner)].releaseFragment(s.entries[i].fragment)
                    s.free.append(t)
                    s.held -= 1
                    freed += 1
                    t &+= 1
                }
            }
            return .success(freed)
        }
        return try result.get()
    }

    /// Closes the consumer. Held tokens are given back, or kept until `releaseKept()`,
    /// as `closeBehavior` says. Returns how many were released now.
    @discardableResult
    public func close() -> Int {
        let (release, behavior) = state.withLockChecked { s -> ([(NetmemFragment, any FragmentReleasing)], CloseBehavior) in
            guard !s.closed else { return ([], closeBehavior) }
            s.closed = true
            if closeBehavior == .keepUntilUnbind && !s.unbound {
                s.kept = true
                return ([], closeBehavior)
            }
            return (Self.takeHeld(&s), closeBehavior)
        }
        _ = behavior
        for (f, owner) in release { owner.releaseFragment(f) }
        return release.count
    }

    /// The binding unbound: releases tokens a closed consumer kept (`keepUntilUnbind`),
    /// and makes a later `close()` release instead of keep. Returns how many.
    @discardableResult
    public func releaseKept() -> Int {
        let release = state.withLockChecked { s -> [(NetmemFragment, any FragmentReleasing)] in
            s.unbound = true
            guard s.closed && s.kept else { return [] }
            s.kept = false
            return Self.takeHeld(&s)
        }
        for (f, owner) in release { owner.releaseFragment(f) }
        return release.count
    }

    /// Whether `close()` has run; issuing traps from then on.
    public var isClosed: Bool { state.withLockChecked { $0.closed } }

    private static func takeHeld(_ s: inout State) -> [(NetmemFragment, any FragmentReleasing)] {
        var out: [(NetmemFragment, any FragmentReleasing)] = []
        for i in s.entries.indices where s.entries[i].state == 1 {
            out.append((s.entries[i].fragment, s.owners[Int(s.entries[i].owner)]))
            s.entries[i].state = 2
            s.free.append(UInt32(i))
        }
        s.held = 0
        return out
    }
}

import CNetmemLinux
import Glibc
import Netmem

/// One direction of one comm as the check drives it: messages of given sizes, posted in
/// order with up to `inFlight` outstanding, each from/into its own registered buffer.
/// A receive checks the size `test` reports, every byte, and a canary after the buffer.
final class NCCLTrafficStream {
    enum Direction { case send, receive }

    static let canary = 64
    static let canaryByte: UInt8 = 0xA5

    let name: String
    let plugin: NCCLPluginLibrary
    let comm: UnsafeMutableRawPointer?
    let direction: Direction
    /// Message sizes (what is sent), and for receives the buffer size posted for each.
    let sizes: [Int]
    let capacities: [Int]
    let seed: UInt64
    /// Stop posting after this many messages (nil: all of `sizes`; `.max`: keep cycling).
    var limit: Int

    private struct Slot {
        let buffer: UnsafeMutableRawPointer
        let mhandle: UnsafeMutableRawPointer?
        var message: Int?
        var request: UnsafeMutableRawPointer?
    }

    private var slots: [Slot] = []
    private var scratch: UnsafeMutableRawPointer
    private let slotBytes: Int
    private(set) var posted = 0
    private(set) var completed = 0
    private(set) var bytes = 0
    private(set) var failure: String?
    /// The first error a call returned (kept apart from data mismatches).
    private(set) var callError: NCCLCallError?
    private(set) var nullRequests = 0

    init(name: String, plugin: NCCLPluginLibrary, comm: UnsafeMutableRawPointer?, direction: Direction,
         sizes: [Int], capacities: [Int]? = nil, seed: UInt64, inFlight: Int = 8, limit: Int? = nil) throws(NCCLCallError) {
        self.name = name
        self.plugin = plugin
        self.comm = comm
        self.direction = direction
        self.sizes = sizes
        self.capacities = capacities ?? sizes
        self.seed = seed
        self.limit = limit ?? sizes.count
        let largest = max(self.capacities.max() ?? 0, sizes.max() ?? 0)
        slotBytes = (largest + Self.canary + 4095) / 4096 * 4096
        scratch = .allocate(byteCount: max(slotBytes, 8), alignment: 4096)
        for _ in 0..<inFlight {
            let b = UnsafeMutableRawPointer.allocate(byteCount: slotBytes, alignment: 4096)
            b.initializeMemory(as: UInt8.self, repeating: 0, count: slotBytes)
            let mh: UnsafeMutableRawPointer?
            do throws(NCCLCallError) {
                mh = try plugin.regMr(comm, b, slotBytes)
            } catch {
                b.deallocate()
                throw error
            }
            slots.append(Slot(buffer: b, mhandle: mh, message: nil, request: nil))
        }
    }

    /// Deregisters and frees the buffers (requests must be finished or the comm closed).
    func release(deregister: Bool = true) {
        for s in slots {
            if deregister { try? plugin.deregMr(comm, s.mhandle) }
            s.buffer.deallocate()
        }
        slots = []
        scratch.deallocate()
        scratch = .allocate(byteCount: 8, alignment: 8)
    }

    deinit {
        for s in slots { s.buffer.deallocate() }
        scratch.deallocate()
    }

    var finished: Bool { failure != nil || (completed >= limit && outstandingRequests == 0) }

    /// The slot holding the next message, prepared but not yet taken by the plugin.
    private var pending: Int?

    /// Posts what it can, strictly in message order (a NULL request stops posting until
    /// the next step), and tests what is outstanding; returns whether anything happened.
    @discardableResult
    func step() -> Bool {
        guard failure == nil else { return false }
        var progress = false
        do throws(NCCLCallError) {
            while posted < limit {
                if pending == nil {
                    guard let free = slots.firstIndex(where: { $0.message == nil }) else { break }
                    slots[free].message = posted
                    prepare(free)
                    pending = free
                }
                let i = pending!
                guard let request = try post(i, slots[i].message!) else {
                    nullRequests += 1
                    break
                }
                slots[i].request = request
                pending = nil
                posted += 1
                progress = true
            }
            for i in slots.indices {
                guard let request = slots[i].request, let m = slots[i].message else { continue }
                if let size = try plugin.test(request) {
                    progress = true
                    verify(i, m, reported: size)
                    slots[i].message = nil
                    slots[i].request = nil
                    completed += 1
                    bytes += sizes[m % sizes.count]
                }
            }
        } catch {
            callError = callError ?? error
            fail("\(error)")
            return true
        }
        return progress
    }

    /// Requests handed out and not yet finished.
    var outstandingRequests: Int { slots.count { $0.request != nil } }

    /// Tests each outstanding request once: a finished one is cleared, a failed one is
    /// cleared with its error appended; slots whose post never got a request are dropped.
    /// Returns the requests still outstanding.
    func testOutstanding(into errors: inout [NCCLCallError]) -> Int {
        for i in slots.indices {
            guard slots[i].message != nil else { continue }
            guard let req = slots[i].request else {
                slots[i].message = nil
                pending = nil
                continue
            }
            do throws(NCCLCallError) {
                if let size = try plugin.test(req) {
                    verify(i, slots[i].message!, reported: size)
                    completed += 1
                    bytes += sizes[slots[i].message! % sizes.count]
                    slots[i].message = nil
                    slots[i].request = nil
                }
            } catch {
                errors.append(error)
                slots[i].message = nil
                slots[i].request = nil
            }
        }
        return outstandingRequests
    }

    private func prepare(_ i: Int) {
        let m = slots[i].message!
        let size = sizes[m % sizes.count]
        switch direction {
        case .send:
            NCCLPattern.fill(slots[i].buffer, count: size, seed: seed, index: m)
        case .receive:
            let cap = capacities[m % capacities.count]
            (slots[i].buffer + cap).initializeMemory(as: UInt8.self, repeating: Self.canaryByte, count: Self.canary)
        }
    }

    private func post(_ i: Int, _ m: Int) throws(NCCLCallError) -> UnsafeMutableRawPointer? {
        switch direction {
        case .send: return try plugin.isend(comm, slots[i].buffer, sizes[m % sizes.count], slots[i].mhandle)
        case .receive: return try plugin.irecv(comm, slots[i].buffer, capacities[m % capacities.count], slots[i].mhandle)
        }
    }

    private func verify(_ i: Int, _ m: Int, reported: Int) {
        let size = sizes[m % sizes.count]
        guard reported == size else {
            return fail("message \(m): test reported \(reported) bytes, \(size) were sent")
        }
        guard direction == .receive else { return }
        NCCLPattern.fill(scratch, count: size, seed: seed, index: m)
        if memcmp(scratch, slots[i].buffer, size) != 0 {
            var at = 0
            while at < size && scratch.load(fromByteOffset: at, as: UInt8.self) == slots[i].buffer.load(fromByteOffset: at, as: UInt8.self) { at += 1 }
            return fail("message \(m) of \(size) bytes differs from what was sent, first at byte \(at)")
        }
        let cap = capacities[m % capacities.count]
        for k in 0..<Self.canary where slots[i].buffer.load(fromByteOffset: cap + k, as: UInt8.self) != Self.canaryByte {
            return fail("message \(m): the plugin wrote past the end of its \(cap)-byte receive buffer (canary byte \(k))")
        }
    }

    private func fail(_ why: String) {
        if failure == nil { failure = "\(name): \(why)" }
    }

    /// Steps every stream until all finish, one fails, or `seconds` pass (then the
    /// unfinished ones fail saying how far they got). Returns the first failure.
    static func run(_ streams: [NCCLTrafficStream], seconds: Double, abandon: (() -> String?)? = nil) -> String? {
        let deadline = monotonicSeconds() + seconds
        var idle = 0
        var lastLook = monotonicSeconds()
        while !streams.allSatisfy(\.finished) {
            if let abandon, monotonicSeconds() - lastLook > 0.005 {
                lastLook = monotonicSeconds()
                if let why = abandon() { return why }
            }
            var progress = false
            for s in streams where !s.finished { progress = s.step() || progress }
            if let f = streams.lazy.compactMap(\.failure).first { return f }
            if progress { idle = 0 } else {
                idle += 1
                if idle > 64 { sched_yield() }
            }
            if monotonicSeconds() > deadline {
                let stuck = streams.filter { !$0.finished }.map { "\($0.name) (\($0.completed)/\($0.limit) done)" }
                return "not finished in \(Int(seconds)) s: " + stuck.joined(separator: ", ")
            }
        }
        return streams.lazy.compactMap(\.failure).first
    }
}

import CNetmemNCCL
import Glibc
import Netmem

/// A case that did not pass: what was wrong.
struct CaseFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// One process's run of the plan. Both processes follow the same steps, meeting at sync
/// points on the control channel; where the plan is one-sided, `driver` decides.
final class NCCLCheckSession {
    let driver: Bool
    let plugin: NCCLPluginLibrary
    let channel: NCCLControlChannel
    let seed: UInt64
    let comms: Int
    var peer: NCCLPeerProcess?

    var cases: [NCCLCheckReport.Case] = []
    var messages = 0
    var bytes = 0
    var aborted: String?

    var baseline = NCCLProcessProbe(fds: [], threads: [])
    var ctx: UnsafeMutableRawPointer?
    var listeners: [UnsafeMutableRawPointer?] = []
    var handles: [[UInt8]] = []
    var peerHandles: [[UInt8]] = []
    var sendComms: [UnsafeMutableRawPointer?] = []
    var recvComms: [UnsafeMutableRawPointer?] = []
    var streams: [NCCLTrafficStream] = []
    /// Set when a traffic case failed on either side: the comms' message order is then
    /// unknown, so the later traffic cases are not run.
    var trafficBroken: String?

    /// Sizes of the sweep (the issue's list; seeded random sizes are added).
    static let sweep = [0, 1, 7, 4095, 4096, 4097, 65536, (1 << 20) + 13, 16 << 20]
    static let channelWait = 240.0

    init(driver: Bool, plugin: NCCLPluginLibrary, channel: NCCLControlChannel, seed: UInt64, comms: Int) {
        self.driver = driver
        self.plugin = plugin
        self.channel = channel
        self.seed = seed
        self.comms = comms
    }

    var side: String { driver ? "driver" : "peer" }

    // MARK: The plan

    func runAll() {
        do throws(NCCLCheckError) {
            baseline = NCCLProcessProbe.now()
            record("load the plugin and find ncclNetPlugin_v11") { "\(plugin.name) from \(plugin.path)" }
            try sync("start")
            record("init, devices, getProperties") { () throws in try initialize() }
            // NCCL makes every later call from its proxy thread, not the one that called init.
            var failure: NCCLCheckError?
            onOtherThread { [self] in
                do throws(NCCLCheckError) { try dataCases() } catch { failure = error }
            }
            if let failure { throw failure }
            record("finalize; fds and threads back to their start counts") { () throws in try finalizeAndCount() }
            try exchangeCases()
            try killCase()
        } catch {
            aborted = "\(error)"
            if !driver { try? channel.send("ABORT \(error)") }
        }
    }

    func dataCases() throws(NCCLCheckError) {
        record("listen, handles to the other process, polled connect and accept (\(comms + 1) comms each way)") {
            () throws in try connectAll()
        }
        try sync("connected")
        guard sendComms.count == comms + 1, recvComms.count == comms + 1 else {
            throw .setup("comms were not set up; the data cases cannot run")
        }
        record("regMr; sizes 0 to 16 MiB and seeded random sizes, 8 in flight, both directions at once (comm 0)") {
            () throws in try sweepCase()
        }
        try sync("sweep")
        record("both directions at once on \(comms) comms, 8 in flight each, receives larger than sends") {
            () throws in try manyCommsCase()
        }
        try sync("many")
        record(driver ? "a send larger than its receive: the sender's test does not hang"
                      : "a send larger than its receive: the receiver's test returns ncclInvalidUsage") {
            () throws in try invalidUsageCase()
        }
        try sync("invalid")
        if driver {
            record("bad handles (random, zeroed, a closed listener's) make connect fail within 5 s") {
                () throws in try badHandlesCase()
            }
        }
        try sync("bad-handles")
        record("closeSend, closeRecv, closeListen and deregMr succeed") { () throws in try closeAll() }
        try sync("closed")
    }

    // MARK: Cases

    func initialize() throws -> String {
        do {
            ctx = try plugin.initialize(commID: driver ? 0xD1 : 0x9E)
            let n = try plugin.devices()
            guard n >= 1 else { throw CaseFailure("devices reports \(n) devices") }
            let p = try plugin.properties(device: 0)
            guard let name = p.name else { throw CaseFailure("device 0 has no name") }
            guard p.ptrSupport & Int32(CNM_NCCL_PTR_HOST) != 0 else { throw CaseFailure("device 0 does not take host memory (ptrSupport \(p.ptrSupport))") }
            guard p.maxComms >= 1, p.maxRecvs >= 1 else { throw CaseFailure("maxComms \(p.maxComms), maxRecvs \(p.maxRecvs)") }
            guard p.netDeviceType == CNM_NCCL_NET_DEVICE_HOST || p.netDeviceType == CNM_NCCL_NET_DEVICE_UNPACK else {
                throw CaseFailure("netDeviceType \(p.netDeviceType.rawValue) is neither host nor unpack")
            }
            guard p.speed > 0 else { throw CaseFailure("speed \(p.speed) Mbit/s") }
            return "\(n) device(s); device 0 '\(String(cString: name))', \(p.speed) Mbit/s, ptrSupport \(p.ptrSupport), maxComms \(p.maxComms), maxRecvs \(p.maxRecvs), netDeviceType \(p.netDeviceType.rawValue)"
        }
    }

    func connectAll() throws -> String {
        let count = comms + 1
        do throws(NCCLCallError) {
            for _ in 0..<count {
                let (l, h) = try plugin.listen(ctx)
                listeners.append(l)
                handles.append(h)
            }
        } catch {
            throw error
        }
        do {
            try channel.send("HANDLES " + handles.map(Hex.encode).joined(separator: " "))
            let words = try channel.expect("HANDLES", seconds: Self.channelWait).split(separator: " ")
            peerHandles = words.compactMap { Hex.decode($0) }
            guard peerHandles.count == count, peerHandles.allSatisfy({ $0.count == 128 }) else {
                throw CaseFailure("the other process sent \(words.count) handles, \(count) expected")
            }
        }
        // The last pair carries one message, driver to peer only (the invalid-usage case).
        let connects = driver ? count : count - 1
        let accepts = driver ? count - 1 : count
        var sendSlots = [UnsafeMutableRawPointer?](repeating: nil, count: count)
        var recvSlots = [UnsafeMutableRawPointer?](repeating: nil, count: count)
        var calls = 0
        let deadline = monotonicSeconds() + 20
        do {
            while sendSlots.prefix(connects).contains(where: { $0 == nil }) || recvSlots.prefix(accepts).contains(where: { $0 == nil }) {
                for i in 0..<connects where sendSlots[i] == nil {
                    calls += 1
                    sendSlots[i] = try peerHandles[i].withUnsafeMutableBytes { raw in
                        Result { () throws(NCCLCallError) in try plugin.connect(ctx, handle: raw.baseAddress!) }
                    }.get()
                }
                for i in 0..<accepts where recvSlots[i] == nil {
                    calls += 1
                    recvSlots[i] = try plugin.accept(listeners[i])
                }
                if monotonicSeconds() > deadline {
                    throw CaseFailure("connect/accept not done after 20 s (\(sendSlots.count { $0 != nil }) of \(connects) connected, \(recvSlots.count { $0 != nil }) of \(accepts) accepted)")
                }
                sched_yield()
            }
        }
        sendComms = sendSlots
        recvComms = recvSlots
        return "\(connects) connected, \(accepts) accepted in \(calls) non-blocking calls"
    }

    /// The seed of the stream from `fromDriver`'s side on comm `comm`.
    func streamSeed(fromDriver: Bool, comm: Int, tag: UInt64) -> UInt64 {
        seed ^ (fromDriver ? 0xD00D_0000_0000 : 0x9EE9_0000_0000) ^ UInt64(comm) << 8 ^ tag
    }

    func sweepSizes(fromDriver: Bool) -> (sizes: [Int], capacities: [Int]) {
        var g = SplitMix64(seed: streamSeed(fromDriver: fromDriver, comm: 0, tag: 1))
        var sizes = Self.sweep
        for _ in 0..<8 { sizes.append(Int(g.next() % UInt64(4 << 20))) }
        let capacities = sizes.enumerated().map { i, s in i % 2 == 1 ? s + 1 + Int(g.next() % 4096) : s }
        return (sizes, capacities)
    }

    func randomSizes(fromDriver: Bool, comm: Int, count: Int) -> (sizes: [Int], capacities: [Int]) {
        var g = SplitMix64(seed: streamSeed(fromDriver: fromDriver, comm: comm, tag: 2))
        let sizes = (0..<count).map { _ in Int(g.next() % UInt64((1 << 20) + 1)) }
        return (sizes, sizes.map { $0 + Int(g.next() % 1025) })
    }

    func sweepCase() throws -> String {
        let mine = sweepSizes(fromDriver: driver)
        let theirs = sweepSizes(fromDriver: !driver)
        return try traffic([
            (sendComms[0], .send, mine.sizes, mine.capacities, streamSeed(fromDriver: driver, comm: 0, tag: 1)),
            (recvComms[0], .receive, theirs.sizes, theirs.capacities, streamSeed(fromDriver: !driver, comm: 0, tag: 1)),
        ], seconds: 90)
    }

    func manyCommsCase() throws -> String {
        var plan: [(UnsafeMutableRawPointer?, NCCLTrafficStream.Direction, [Int], [Int], UInt64)] = []
        for i in 0..<comms {
            let mine = randomSizes(fromDriver: driver, comm: i, count: 24)
            let theirs = randomSizes(fromDriver: !driver, comm: i, count: 24)
            plan.append((sendComms[i], .send, mine.sizes, mine.capacities, streamSeed(fromDriver: driver, comm: i, tag: 2)))
            plan.append((recvComms[i], .receive, theirs.sizes, theirs.capacities, streamSeed(fromDriver: !driver, comm: i, tag: 2)))
        }
        return try traffic(plan, seconds: 90)
    }

    func traffic(_ plan: [(UnsafeMutableRawPointer?, NCCLTrafficStream.Direction, [Int], [Int], UInt64)],
                         seconds: Double) throws -> String {
        if let broken = trafficBroken { throw CaseFailure("not run: \(broken)") }
        var made: [NCCLTrafficStream] = []
        do throws(NCCLCallError) {
            for (i, p) in plan.enumerated() {
                made.append(try NCCLTrafficStream(name: "\(p.1 == .send ? "send" : "receive") stream \(i / 2)", plugin: plugin,
                                                  comm: p.0, direction: p.1, sizes: p.2, capacities: p.3, seed: p.4))
            }
        } catch {
            for s in made { s.release() }
            throw error
        }
        streams += made
        let t0 = monotonicSeconds()
        let failure = NCCLTrafficStream.run(made, seconds: seconds) { [channel] in
            channel.lookFor("FAILED") ? "stopped: the other process failed this case" : nil
        }
        if let failure {
            // Tell the other side at once (it would otherwise wait out its deadline).
            if !failure.hasPrefix("stopped:") { try? channel.send("FAILED") }
            trafficBroken = "an earlier traffic case failed (\(failure.prefix(120)))"
            throw CaseFailure(failure)
        }
        let t = monotonicSeconds() - t0
        let received = made.filter { $0.direction == .receive }
        let n = received.reduce(0) { $0 + $1.completed }
        let b = received.reduce(0) { $0 + $1.bytes }
        messages += n
        bytes += b
        let nulls = made.reduce(0) { $0 + $1.nullRequests }
        return "\(n) messages (\(b) bytes) received byte-exact with canaries intact, \(made.count - received.count) send streams done in \((t * 100).rounded() / 100) s; \(nulls) NULL requests retried"
    }

    func invalidUsageCase() throws -> String {
        let comm = driver ? sendComms[comms] : recvComms[comms]
        let size = driver ? 8192 : 4096
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8192 + 64, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xA5, count: 8192 + 64)
        let deadline = monotonicSeconds() + 5
        var outcome: NCCLCallError?
        var reported: Int?
        do {
            let mh = try plugin.regMr(comm, buffer, 8192 + 64)
            defer { try? plugin.deregMr(comm, mh) }
            var req: UnsafeMutableRawPointer?
            do {
                while req == nil {
                    req = driver ? try plugin.isend(comm, buffer, size, mh) : try plugin.irecv(comm, buffer, size, mh)
                    if monotonicSeconds() > deadline { throw CaseFailure("\(driver ? "isend" : "irecv") took no request in 5 s") }
                }
                while reported == nil {
                    reported = try plugin.test(req!)
                    if monotonicSeconds() > deadline { throw CaseFailure("test neither finished nor failed in 5 s") }
                }
            } catch let e as NCCLCallError {
                outcome = e
            }
        }
        if driver {
            if let outcome { return "the sender's \(outcome.call) returned \(outcome.resultName)" }
            return "the sender's test reported done (\(reported!) bytes); the receiver decides"
        }
        guard let outcome else { throw CaseFailure("test reported done (\(reported!) bytes) for an 8192-byte send into 4096 bytes") }
        guard outcome.code == Int32(CNM_NCCL_INVALID_USAGE.rawValue) else {
            throw CaseFailure("\(outcome.call) returned \(outcome.resultName), ncclInvalidUsage expected")
        }
        for k in 4096..<(4096 + 64) where buffer.load(fromByteOffset: k, as: UInt8.self) != 0xA5 {
            throw CaseFailure("the refused receive wrote past its 4096 bytes (byte \(k))")
        }
        return "test returned ncclInvalidUsage; nothing written past the buffer"
    }

    func badHandlesCase() throws -> String {
        var g = SplitMix64(seed: seed ^ 0xBAD)
        let random = g.bytes(128)
        let zero = [UInt8](repeating: 0, count: 128)
        let (l, closed) = try plugin.listen(ctx)
        try plugin.closeListen(l)
        var details: [String] = []
        for (what, handle) in [("random", random), ("zeroed", zero), ("closed listener's", closed)] {
            var h = handle
            let t0 = monotonicSeconds()
            var result: String?
            while result == nil {
                do {
                    let c = try h.withUnsafeMutableBytes { raw in
                        Result { () throws(NCCLCallError) in try plugin.connect(ctx, handle: raw.baseAddress!) }
                    }.get()
                    if let c {
                        try? plugin.closeSend(c)
                        throw CaseFailure("connect with a \(what) handle returned a comm")
                    }
                } catch let e as NCCLCallError {
                    result = "\(what): \(e.resultName) in \(((monotonicSeconds() - t0) * 1000).rounded()) ms"
                }
                if result == nil && monotonicSeconds() - t0 > 5 {
                    throw CaseFailure("connect with a \(what) handle neither failed nor connected in 5 s")
                }
                if result == nil { usleep(1000) }
            }
            details.append(result!)
        }
        _ = CapturedLog.take()  // the expected warnings about those handles
        return details.joined(separator: "; ")
    }

    func closeAll() throws -> String {
        var n = 0
        do {
            // NCCL's order when every request finished: deregMr, then close. After a failed
            // case requests may still be posted, and the plugin may still write into their
            // buffers until closeRecv returns: close first, then free without deregMr.
            if streams.allSatisfy({ $0.outstandingRequests == 0 }) {
                for s in streams { s.release() }
                streams = []
            }
            for c in sendComms where c != nil { try plugin.closeSend(c); n += 1 }
            for c in recvComms where c != nil { try plugin.closeRecv(c); n += 1 }
            for l in listeners { try plugin.closeListen(l); n += 1 }
            for s in streams { s.release(deregister: false) }
            streams = []
        }
        sendComms = []
        recvComms = []
        listeners = []
        return "\(n) comms closed"
    }

    func finalizeAndCount() throws -> String {
        try plugin.finalize(ctx)
        ctx = nil
        let after = NCCLProcessProbe.settle(to: baseline)
        guard after.isWithin(baseline) else {
            throw CaseFailure("before init: \(baseline); after finalize: \(after): \(after.extra(over: baseline))")
        }
        return "before init: \(baseline); after finalize: \(after), none new"
    }

    // MARK: Helpers

    func record(_ name: String, _ body: () throws -> String) {
        let t0 = monotonicSeconds()
        var passed = true
        var detail: String
        do {
            detail = try body()
        } catch {
            passed = false
            detail = (error as? CaseFailure)?.message ?? "\(error)"
        }
        let warnings = CapturedLog.take()
        if !passed && !warnings.isEmpty { detail += " [plugin log: " + warnings.suffix(3).joined(separator: " | ") + "]" }
        cases.append(.init(name: name, passed: passed, seconds: monotonicSeconds() - t0, detail: detail, side: side))
    }

    /// Meets the other process at `point`.
    func sync(_ point: String) throws(NCCLCheckError) {
        try channel.send("SYNC \(point)")
        var got = try channel.receive(seconds: Self.channelWait)
        while got == "FAILED" {
            if trafficBroken == nil { trafficBroken = "the other process failed an earlier traffic case" }
            got = try channel.receive(seconds: Self.channelWait)
        }
        if got.hasPrefix("ABORT") { throw .peer(String(got.dropFirst(6))) }
        guard got == "SYNC \(point)" else { throw .peer("out of step: expected 'SYNC \(point)', got '\(got.prefix(120))'") }
    }

    /// Runs `body` on a new thread and waits for it (the role of NCCL's proxy thread).
    func onOtherThread(_ body: @escaping () -> Void) {
        final class Box: @unchecked Sendable { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
        let box = Box(body)
        JoinableThread { box.body() }.join()
    }
}

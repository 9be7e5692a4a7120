import CNetmemLinux
import Glibc
import Netmem

/// `netmem bench nccl`: the plugin's throughput over one comm (messages of one size, a
/// fixed number in flight) beside a plain blocking TCP socket pair between the same two
/// processes in the same run, with the CPU seconds each side spends per GB moved.
public enum NCCLBench {
    public struct Options: Sendable {
        public var plugin: String
        public var messageSize = 4 << 20
        public var inFlight = 8
        public var messages = 512
        public var runs = 1
        /// How the driving loop waits when a pass over its requests made no progress:
        /// `yield` (`sched_yield`, as NCCL's proxy thread does) or `sleep` (50 µs).
        public var poll = "yield"
        public var peerArguments: [String] = []

        public init(plugin: String) { self.plugin = plugin }
    }

    /// One run: both phases.
    public struct Run: Sendable {
        public var pluginGbps = 0.0
        public var socketGbps = 0.0
        /// CPU seconds per GB: sender (driver process), receiver (peer process).
        public var pluginCPU = (sender: 0.0, receiver: 0.0)
        public var socketCPU = (sender: 0.0, receiver: 0.0)
        /// Of `pluginCPU`, what the thread that posts and tests spent (NCCL's proxy
        /// thread, which polls whatever the transport); the rest is the plugin's threads.
        public var pluginProxyCPU = (sender: 0.0, receiver: 0.0)
        public var ratio: Double { socketGbps > 0 ? pluginGbps / socketGbps : 0 }
    }

    public struct Report: Sendable {
        public var options: Options
        public var runs: [Run] = []
        public var senderStatistics: String?
        public var receiverStatistics: String?

        static func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }

        public var json: String {
            func cpu(_ c: (sender: Double, receiver: Double)) -> JSONValue {
                var o = JSONObject()
                o["sender"] = .double(c.sender)
                o["receiver"] = .double(c.receiver)
                return .object(o)
            }
            var o = JSONObject()
            o["plugin"] = .string(options.plugin)
            o["message_bytes"] = .int(options.messageSize)
            o["in_flight"] = .int(options.inFlight)
            o["messages"] = .int(options.messages)
            o["bytes_per_phase"] = .int(options.messageSize * options.messages)
            o["poll"] = .string(options.poll)
            o["plugin_gbps"] = .double(Self.median(runs.map(\.pluginGbps)))
            o["socket_gbps"] = .double(Self.median(runs.map(\.socketGbps)))
            o["ratio"] = .double(Self.median(runs.map(\.ratio)))
            o["plugin_cpu_s_per_gb"] = cpu((Self.median(runs.map(\.pluginCPU.sender)), Self.median(runs.map(\.pluginCPU.receiver))))
            o["socket_cpu_s_per_gb"] = cpu((Self.median(runs.map(\.socketCPU.sender)), Self.median(runs.map(\.socketCPU.receiver))))
            o["plugin_proxy_cpu_s_per_gb"] = cpu((Self.median(runs.map(\.pluginProxyCPU.sender)),
                                                  Self.median(runs.map(\.pluginProxyCPU.receiver))))
            o["runs"] = .array(runs.map { r in
                var e = JSONObject()
                e["plugin_gbps"] = .double(r.pluginGbps)
                e["socket_gbps"] = .double(r.socketGbps)
                e["ratio"] = .double(r.ratio)
                e["plugin_cpu_s_per_gb"] = cpu(r.pluginCPU)
                e["socket_cpu_s_per_gb"] = cpu(r.socketCPU)
                e["plugin_proxy_cpu_s_per_gb"] = cpu(r.pluginProxyCPU)
                return .object(e)
            })
            if let s = senderStatistics { o["sender_plugin_statistics"] = .raw(s) }
            if let s = receiverStatistics { o["receiver_plugin_statistics"] = .raw(s) }
            return JSONValue.object(o).text
        }

        public var text: String {
            func f(_ v: Double, _ d: Int = 2) -> String {
                let scale = [1.0, 10, 100, 1000][d]
                let r = (v * scale).rounded() / scale
                return String(r)
            }
            var lines: [String] = []
            for (i, r) in runs.enumerated() {
                lines.append("run \(i + 1): plugin \(f(r.pluginGbps)) Gbit/s, socket pair \(f(r.socketGbps)) Gbit/s, ratio \(f(r.ratio)); "
                             + "CPU s/GB plugin \(f(r.pluginCPU.sender, 3))/\(f(r.pluginCPU.receiver, 3)), "
                             + "socket \(f(r.socketCPU.sender, 3))/\(f(r.socketCPU.receiver, 3)) (sender/receiver); "
                             + "of the plugin's, the polling thread \(f(r.pluginProxyCPU.sender, 3))/\(f(r.pluginProxyCPU.receiver, 3))")
            }
            lines.append("median: plugin \(f(Self.median(runs.map(\.pluginGbps)))) Gbit/s, socket pair \(f(Self.median(runs.map(\.socketGbps)))) Gbit/s, ratio \(f(Self.median(runs.map(\.ratio))))")
            return lines.joined(separator: "\n")
        }
    }

    // MARK: Driver (sender)

    public static func run(_ options: Options) throws(NCCLCheckError) -> Report {
        NCCLCheck.useLoopback()
        CapturedLog.installPrinting(prefix: "sender")
        let plugin = try NCCLPluginLibrary(path: options.plugin)
        let peer = try NCCLPeerProcess(arguments: options.peerArguments)
        let ch = peer.channel
        var report = Report(options: options)
        let ctx: UnsafeMutableRawPointer?
        do throws(NCCLCallError) { ctx = try plugin.initialize(commID: 0xBE) } catch { throw .setup("\(error)") }
        let buffers = Buffers(count: options.inFlight, size: options.messageSize, fill: true)
        defer { buffers.free() }
        let bytes = Double(options.messageSize * options.messages)
        for _ in 0..<options.runs {
            var run = Run()
            // The plugin over one comm.
            guard var handle = Hex.decode(Substring(try ch.expect("HANDLE", seconds: 60))), handle.count == 128 else {
                throw .peer("no handle from the bench peer")
            }
            var comm: UnsafeMutableRawPointer?
            let deadline = monotonicSeconds() + 20
            do throws(NCCLCallError) {
                while comm == nil {
                    comm = try handle.withUnsafeMutableBytes { raw in
                        Result { () throws(NCCLCallError) in try plugin.connect(ctx, handle: raw.baseAddress!) }
                    }.get()
                    if monotonicSeconds() > deadline { throw NCCLCallError(call: "connect (20 s)", code: 2) }
                }
            } catch { throw .setup("\(error)") }
            let handles = try buffers.register(plugin, comm)
            try ch.send("GO")
            let (t, c, tc) = try timed { () throws(NCCLCheckError) in
                try pump(plugin, comm, buffers, handles, count: options.messages, send: true, poll: options.poll)
            }
            let peerResult = try ch.expect("DONE", seconds: 600).split(separator: " ")
            guard peerResult.count == 4, peerResult[3] == "ok", let pt = Double(peerResult[0]), let pc = Double(peerResult[1]),
                  let ptc = Double(peerResult[2]) else {
                throw .peer("bench peer: \(peerResult.joined(separator: " "))")
            }
            run.pluginGbps = bytes * 8 / max(t, pt) / 1e9
            run.pluginCPU = (c / (bytes / 1e9), pc / (bytes / 1e9))
            run.pluginProxyCPU = (tc / (bytes / 1e9), ptc / (bytes / 1e9))
            for h in handles { try? plugin.deregMr(comm, h) }
            try? plugin.closeSend(comm)
            // The same bytes over a plain blocking TCP socket pair.
            guard let port = UInt16(try ch.expect("PORT", seconds: 60)) else { throw .peer("no port from the bench peer") }
            let fd = try BlockingPair.connect(port: port)
            defer { close(fd) }
            try ch.send("GO")
            let (st, sc, _) = try timed { () throws(NCCLCheckError) in
                try BlockingPair.send(fd, buffers, count: options.messages)
            }
            let sr = try ch.expect("DONE", seconds: 600).split(separator: " ")
            guard sr.count == 4, sr[3] == "ok", let spt = Double(sr[0]), let spc = Double(sr[1]) else {
                throw .peer("bench peer: \(sr.joined(separator: " "))")
            }
            run.socketGbps = bytes * 8 / max(st, spt) / 1e9
            run.socketCPU = (sc / (bytes / 1e9), spc / (bytes / 1e9))
            report.runs.append(run)
        }
        report.senderStatistics = plugin.statisticsJSON
        try ch.send("STATS")
        let stats = try ch.expect("STATS", seconds: 60)
        report.receiverStatistics = stats.isEmpty ? nil : stats
        try? plugin.finalize(ctx)
        peer.wait(seconds: 10)
        return report
    }

    // MARK: Peer (receiver)

    public static func runPeer(plugin path: String, options: Options, controlFD: Int32) -> Int32 {
        NCCLCheck.useLoopback()
        CapturedLog.installPrinting(prefix: "receiver")
        let ch = NCCLControlChannel(fd: controlFD)
        do throws(NCCLCheckError) {
            let plugin = try NCCLPluginLibrary(path: path)
            let ctx: UnsafeMutableRawPointer?
            do throws(NCCLCallError) { ctx = try plugin.initialize(commID: 0xBF) } catch { throw .setup("\(error)") }
            let buffers = Buffers(count: options.inFlight, size: options.messageSize, fill: false)
            defer { buffers.free() }
            let expected = Buffers(count: 1, size: options.messageSize, fill: false)
            defer { expected.free() }
            let lastSlot = (options.messages - 1) % options.inFlight
            NCCLPattern.fill(expected.pointers[0], count: options.messageSize, seed: 0xBE7C, index: lastSlot)
            for _ in 0..<options.runs {
                let listen: UnsafeMutableRawPointer?
                let handle: [UInt8]
                do throws(NCCLCallError) { (listen, handle) = try plugin.listen(ctx) } catch { throw .setup("\(error)") }
                try ch.send("HANDLE " + Hex.encode(handle))
                var comm: UnsafeMutableRawPointer?
                let deadline = monotonicSeconds() + 20
                do throws(NCCLCallError) {
                    while comm == nil {
                        comm = try plugin.accept(listen)
                        if monotonicSeconds() > deadline { throw NCCLCallError(call: "accept (20 s)", code: 2) }
                    }
                } catch { throw .setup("\(error)") }
                let handles = try buffers.register(plugin, comm)
                _ = try ch.expect("GO", seconds: 60)
                let (t, c, tc) = try timed { () throws(NCCLCheckError) in
                    try pump(plugin, comm, buffers, handles, count: options.messages, send: false, poll: options.poll)
                }
                let ok = memcmp(buffers.pointers[lastSlot], expected.pointers[0], options.messageSize) == 0
                try ch.send("DONE \(t) \(c) \(tc) \(ok ? "ok" : "the last message differs from what was sent")")
                for h in handles { try? plugin.deregMr(comm, h) }
                try? plugin.closeRecv(comm)
                try? plugin.closeListen(listen)
                // Socket pair.
                let (l, port) = try BlockingPair.listen()
                try ch.send("PORT \(port)")
                let fd = try BlockingPair.accept(l)
                close(l)
                _ = try ch.expect("GO", seconds: 60)
                let (st, sc, stc) = try timed { () throws(NCCLCheckError) in
                    try BlockingPair.receive(fd, buffers, count: options.messages)
                }
                close(fd)
                let sok = memcmp(buffers.pointers[lastSlot], expected.pointers[0], options.messageSize) == 0
                try ch.send("DONE \(st) \(sc) \(stc) \(sok ? "ok" : "the last socket message differs from what was sent")")
            }
            _ = try ch.expect("STATS", seconds: 60)
            try ch.send("STATS " + (plugin.statisticsJSON ?? ""))
            try? plugin.finalize(ctx)
            return 0
        } catch {
            try? ch.send("DONE 0 0 0 \(error)")
            return 1
        }
    }

    // MARK: Pieces

    /// Message buffers, one per request in flight; the sender's hold a fixed pattern each.
    final class Buffers {
        let pointers: [UnsafeMutableRawPointer]
        let size: Int

        init(count: Int, size: Int, fill: Bool) {
            self.size = size
            pointers = (0..<count).map { i in
                let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
                if fill { NCCLPattern.fill(p, count: size, seed: 0xBE7C, index: i) } else { p.initializeMemory(as: UInt8.self, repeating: 0, count: size) }
                return p
            }
        }

        func register(_ plugin: NCCLPluginLibrary, _ comm: UnsafeMutableRawPointer?) throws(NCCLCheckError) -> [UnsafeMutableRawPointer?] {
            do throws(NCCLCallError) {
                return try pointers.map { p throws(NCCLCallError) in try plugin.regMr(comm, p, size) }
            } catch { throw .setup("\(error)") }
        }

        func free() { for p in pointers { p.deallocate() } }
    }

    /// Seconds, process CPU seconds and calling-thread CPU seconds `body` took.
    static func timed(_ body: () throws(NCCLCheckError) -> Void) throws(NCCLCheckError) -> (Double, Double, Double) {
        let t0 = monotonicSeconds()
        let c0 = NCCLProcessProbe.cpuSeconds
        let tc0 = threadCPUSeconds
        try body()
        return (monotonicSeconds() - t0, NCCLProcessProbe.cpuSeconds - c0, threadCPUSeconds - tc0)
    }

    static var threadCPUSeconds: Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Moves `count` messages, message m from/into buffer m % in-flight, as NCCL's proxy
    /// thread does: post what it can, test what is out, yield (or sleep) after a pass
    /// without progress.
    static func pump(_ plugin: NCCLPluginLibrary, _ comm: UnsafeMutableRawPointer?, _ buffers: Buffers,
                     _ handles: [UnsafeMutableRawPointer?], count: Int, send: Bool, poll: String) throws(NCCLCheckError) {
        let k = buffers.pointers.count
        var requests = [UnsafeMutableRawPointer?](repeating: nil, count: k)
        var posted = 0
        var done = 0
        let size = buffers.size
        let sleep = poll == "sleep"
        do throws(NCCLCallError) {
            while done < count {
                var progress = false
                while posted < count && requests[posted % k] == nil {
                    let slot = posted % k
                    let r = send ? try plugin.isend(comm, buffers.pointers[slot], size, handles[slot])
                                 : try plugin.irecv(comm, buffers.pointers[slot], size, handles[slot])
                    guard let r else { break }
                    requests[slot] = r
                    posted += 1
                    progress = true
                }
                for slot in 0..<k {
                    guard let r = requests[slot] else { continue }
                    if let n = try plugin.test(r) {
                        guard n == size else { throw NCCLCallError(call: "test reported \(n) bytes of \(size); test", code: 3) }
                        requests[slot] = nil
                        done += 1
                        progress = true
                    }
                }
                if !progress {
                    if sleep { usleep(50) } else { sched_yield() }
                }
            }
        } catch { throw .setup("\(error)") }
    }

    /// The baseline: a plain blocking TCP socket pair on 127.0.0.1.
    enum BlockingPair {
        static func listen() throws(NCCLCheckError) -> (Int32, UInt16) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &a) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, len) == 0 && Glibc.listen(fd, 1) == 0 && getsockname(fd, $0, &len) == 0
                }
            }
            guard fd >= 0, ok else { throw .setup("socket pair listen failed: errno \(errno)") }
            return (fd, UInt16(bigEndian: a.sin_port))
        }

        static func accept(_ l: Int32) throws(NCCLCheckError) -> Int32 {
            let fd = Glibc.accept(l, nil, nil)
            guard fd >= 0 else { throw .setup("socket pair accept failed: errno \(errno)") }
            return fd
        }

        static func connect(port: UInt16) throws(NCCLCheckError) -> Int32 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            a.sin_port = port.bigEndian
            let r = withUnsafePointer(to: &a) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard fd >= 0, r == 0 else { throw .setup("socket pair connect failed: errno \(errno)") }
            return fd
        }

        static func send(_ fd: Int32, _ buffers: Buffers, count: Int) throws(NCCLCheckError) {
            for m in 0..<count {
                let p = buffers.pointers[m % buffers.pointers.count]
                var off = 0
                while off < buffers.size {
                    let n = Glibc.send(fd, p + off, buffers.size - off, Int32(MSG_NOSIGNAL))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw .setup("socket pair send failed: errno \(errno)")
                    }
                    off += n
                }
            }
        }

        static func receive(_ fd: Int32, _ buffers: Buffers, count: Int) throws(NCCLCheckError) {
            for m in 0..<count {
                let p = buffers.pointers[m % buffers.pointers.count]
                var off = 0
                while off < buffers.size {
                    let n = recv(fd, p + off, buffers.size - off, Int32(MSG_WAITALL))
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw .setup("socket pair receive failed: \(n == 0 ? "end of stream" : "errno \(errno)")") }
                    off += n
                }
            }
        }
    }
}

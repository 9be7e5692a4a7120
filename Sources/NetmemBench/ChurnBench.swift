import CNetmemMallocCounter
import Glibc
import Netmem
import NetmemFraming
import NetmemSession
import NetmemURing
import Synchronization
import SystemPackage

/// Many short connections through one receive session: whether memory, descriptors and
/// threads stay flat. What `netmem bench churn` runs.
package enum ChurnBench {
    package struct Result: Sendable {
        package var connections = 0
        package var seconds = 0.0
        /// Resident memory after the warm-up connections, and at the end (KiB).
        package var rssAfterWarmupKiB = 0
        package var rssAtEndKiB = 0
        package var descriptorsBefore = 0
        package var descriptorsAfter = 0
        package var threadsBefore = 0
        package var threadsAfter = 0
        package var failed = 0
        package var inFlightAtEnd = 0
        /// Heap blocks live after the warm-up and at the end (when the allocation counter
        /// is linked in; -1 otherwise).
        package var liveBlocksAfterWarmup = -1
        package var liveBlocksAtEnd = -1
        /// Bytes the allocator has handed out (in use), after the warm-up and at the end.
        package var heapInUseAfterWarmup = 0
        package var heapInUseAtEnd = 0
    }

    /// Resident set size of this process, in KiB (`/proc/self/statm`).
    package static var residentKiB: Int {
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return -1 }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 128)
        let n = read(fd, &buf, 127)
        guard n > 0 else { return -1 }
        let fields = String(decoding: buf[..<n], as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return -1 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
    }

    static func count(_ path: String) -> Int {
        guard let dir = opendir(path) else { return -1 }
        defer { closedir(dir) }
        var n = 0
        while let e = readdir(dir) {
            let dot = withUnsafeBytes(of: e.pointee.d_name) { $0[0] == UInt8(ascii: ".") }
            if !dot { n += 1 }
        }
        return n
    }

    /// `connections` connections, each sending one small frame (framed) or a few bytes
    /// (raw) and closing; RSS is taken after `warmup` of them and at the end.
    package static func run(connections: Int, warmup: Int, framed: Bool) throws -> Result {
        var r = Result()
        r.descriptorsBefore = count("/proc/self/fd") - 1
        r.threadsBefore = count("/proc/self/task")
        try churn(&r, connections: connections, warmup: warmup, framed: framed)
        // The session is gone now: everything it opened must be closed.
        r.descriptorsAfter = count("/proc/self/fd") - 1
        let deadline = LoopbackBench.now + 5
        while count("/proc/self/task") > r.threadsBefore && LoopbackBench.now < deadline { usleep(1000) }
        r.threadsAfter = count("/proc/self/task")
        return r
    }

    private static func churn(_ r: inout Result, connections: Int, warmup: Int, framed: Bool) throws {
        var configuration = ReceiveSession.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"),
                                                         mode: framed ? .framed(maxPayload: 1 << 20) : .raw)
        configuration.name = "churn"
        let session = try ReceiveSession(configuration)
        let failed = Atomic<Int>(0)
        let ended = Atomic<Int>(0)
        try session.start { event in
            if case let .ended(_, summary) = event {
                if summary.error != nil { failed.add(1, ordering: .relaxed) }
                ended.add(1, ordering: .relaxed)
            }
        }
        var writer = FrameWriter()
        let message = framed ? writer.encode(Array("churn".utf8)) : Array("churn".utf8)
        let address = session.localAddress!
        let t0 = LoopbackBench.now
        for i in 0..<connections {
            if i == warmup {
                // Let the warm-up connections end before the first sample.
                let deadline = LoopbackBench.now + 30
                while ended.load(ordering: .relaxed) < warmup && LoopbackBench.now < deadline { usleep(1000) }
                r.rssAfterWarmupKiB = residentKiB
                if cnm_malloc_counter_active() != 0 { r.liveBlocksAfterWarmup = Int(cnm_live_allocations()) }
                r.heapInUseAfterWarmup = Int(cnm_heap_in_use())
            }
            let s = try BlockingSocket.connect(to: address)
            try message.withUnsafeBytes { try BlockingSocket.sendAll(s, $0) }
            try s.close()
            // Bounded lag: at most 512 connections not yet ended.
            var spins = 0
            while i - ended.load(ordering: .relaxed) > 512 && spins < 100_000 { usleep(50); spins += 1 }
        }
        let deadline = LoopbackBench.now + 60
        while ended.load(ordering: .relaxed) < connections && LoopbackBench.now < deadline { usleep(1000) }
        r.seconds = LoopbackBench.now - t0
        r.rssAtEndKiB = residentKiB
        if cnm_malloc_counter_active() != 0 { r.liveBlocksAtEnd = Int(cnm_live_allocations()) }
        r.heapInUseAtEnd = Int(cnm_heap_in_use())
        session.stop()
        try session.waitBlocking()
        r.connections = ended.load(ordering: .relaxed)
        r.failed = failed.load(ordering: .relaxed)
        r.inFlightAtEnd = session.inFlight.pool + session.inFlight.tokens
    }
}

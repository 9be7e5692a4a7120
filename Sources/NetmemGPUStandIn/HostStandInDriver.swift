import Netmem
import NetmemGPU
import CNetmemLinux
import Glibc
import Synchronization
import SystemPackage

/// Host memory pretending to be a GPU, so the logic above `GPUDriver` (exporters, bounce
/// copies, unpack) runs and is tested on every machine. "Device" allocations are memfds
/// with made-up device addresses (never equal to their host addresses, so code that mixes
/// the two fails); copies are `memcpy` on one worker thread per stream, done later and
/// in order, and events complete when the worker reaches them, as on a GPU.
///
/// Every address range a copy names is checked against the allocations and
/// registrations (an error, like the driver's `CUDA_ERROR_INVALID_VALUE`). Tests can pause
/// the workers (`pause()`/`resume()`) to hold completions back, and make a copy fail
/// (`failCopy(after:)`).
public final class HostStandInDriver: GPUDriver, @unchecked Sendable {
    public let kind = "standin"
    public let deviceName = "host stand-in (memfd + memcpy worker)"
    public let supportsDmaBufExport: Bool

    struct Mapping: @unchecked Sendable {
        var device: DeviceAddress
        var length: Int
        var host: UnsafeMutableRawPointer
        /// The memfd of a device allocation; nil for registered host memory.
        var memory: HostMemfd?
    }

    struct State {
        var mappings: [Mapping] = []
        var nextDevice: DeviceAddress = 0xD000_0000_0000
        var streams: [UInt64: StandInStream] = [:]
        var nextHandle: UInt64 = 1
        var events: [UInt64: (recorded: UInt64, done: UInt64)] = [:]
        var paused = false
    }

    private let state = Mutex(State())
    private let copyFailureCountdown = Atomic<Int>(-1)
    /// Bytes the workers copied.
    public let bytesCopied = Atomic<Int>(0)

    /// `dmaBuf: false` makes the stand-in behave like a device without dma-buf export.
    public init(dmaBuf: Bool = true) {
        supportsDmaBufExport = dmaBuf
    }

    deinit {
        let streams = state.withLockChecked { s in
            s.paused = false
            return Array(s.streams.values)
        }
        for s in streams { s.stop() }
    }

    // MARK: Test controls and leak counts

    /// Holds every stream's worker before its next operation (completions stop).
    public func pause() {
        let streams = state.withLockChecked { s in
            s.paused = true
            return Array(s.streams.values)
        }
        for s in streams { s.setPaused(true) }
    }

    /// Lets the workers run again.
    public func resume() {
        let streams = state.withLockChecked { s in
            s.paused = false
            return Array(s.streams.values)
        }
        for s in streams { s.setPaused(false) }
    }

    /// The copy enqueued after `n` more successful ones fails with `.injected`.
    public func failCopy(after n: Int) { copyFailureCountdown.store(n, ordering: .relaxed) }

    /// Device allocations, host registrations, streams and events alive now.
    public var liveObjects: (allocations: Int, registrations: Int, streams: Int, events: Int) {
        state.withLockChecked { s in
            (s.mappings.filter { $0.memory != nil }.count, s.mappings.filter { $0.memory == nil }.count,
             s.streams.count, s.events.count)
        }
    }

    /// The host address behind a device range; throws when no mapping covers it.
    public func hostAddress(of address: DeviceAddress, count: Int) throws(GPUError) -> UnsafeMutableRawPointer {
        let p = state.withLockChecked { s in Self.resolve(s.mappings, address, count) }
        guard let p else { throw .invalidDeviceAddress(address, count: count) }
        return p
    }

    static func resolve(_ mappings: [Mapping], _ address: DeviceAddress, _ count: Int) -> UnsafeMutableRawPointer? {
        guard count >= 0 else { return nil }
        for m in mappings where address >= m.device && address - m.device <= UInt64(m.length)
            && UInt64(count) <= UInt64(m.length) - (address - m.device) {
            return m.host + Int(address - m.device)
        }
        return nil
    }

    // MARK: Memory

    public func allocate(size: Int) throws(GPUError) -> DeviceAddress {
        guard size > 0 else { throw .invalidArgument("device allocation of \(size) bytes") }
        let memory = try HostMemfd(name: "netmem-standin-device", length: roundUp(size, 4096))
        return state.withLockChecked { s in
            let d = s.nextDevice
            s.nextDevice += UInt64(roundUp(size, 1 << 20)) + (1 << 20)
            s.mappings.append(Mapping(device: d, length: size, host: memory.base, memory: memory))
            return d
        }
    }

    public func free(_ address: DeviceAddress) {
        let found = state.withLockChecked { s -> Bool in
            guard let i = s.mappings.firstIndex(where: { $0.device == address && $0.memory != nil }) else { return false }
            s.mappings.remove(at: i)
            return true
        }
        precondition(found, "free of device address 0x\(String(address, radix: 16)), which the stand-in never allocated")
    }

    public func exportDmaBuf(_ address: DeviceAddress, size: Int) throws(GPUError) -> FileDescriptor {
        guard supportsDmaBufExport else { throw .dmaBufUnsupported(device: deviceName) }
        let memory = state.withLockChecked { s in
            s.mappings.first { $0.device == address && $0.memory != nil && size <= $0.length }?.memory
        }
        guard let memory else { throw .invalidDeviceAddress(address, count: size) }
        return try memory.duplicate()
    }

    public func registerHost(_ address: UnsafeMutableRawPointer, size: Int) throws(GPUError) -> DeviceAddress {
        guard size > 0 else { throw .invalidArgument("host registration of \(size) bytes") }
        return try state.withLockChecked { s throws(GPUError) -> DeviceAddress in
            guard !s.mappings.contains(where: { $0.memory == nil && $0.host == address }) else {
                throw .invalidArgument("host memory at \(address) is already registered")
            }
            let d = s.nextDevice
            s.nextDevice += UInt64(roundUp(size, 1 << 20)) + (1 << 20)
            s.mappings.append(Mapping(device: d, length: size, host: address, memory: nil))
            return d
        }
    }

    public func unregisterHost(_ address: UnsafeMutableRawPointer) {
        state.withLockChecked { s in s.mappings.removeAll { $0.memory == nil && $0.host == address } }
    }

    // MARK: Streams and copies

    public func makeStream() throws(GPUError) -> GPUStream {
        let stream = StandInStream(driver: self)
        let handle = state.withLockChecked { s in
            let h = s.nextHandle
            s.nextHandle += 1
            s.streams[h] = stream
            if s.paused { stream.setPaused(true) }
            return h
        }
        return GPUStream(rawValue: handle)
    }

    public func destroyStream(_ stream: GPUStream) {
        let s = state.withLockChecked { $0.streams.removeValue(forKey: stream.rawValue) }
        precondition(s != nil, "destroy of stream \(stream.rawValue), which does not exist")
        s?.stop()
    }

    private func stream(_ s: GPUStream) throws(GPUError) -> StandInStream {
        guard let st = state.withLockChecked({ $0.streams[s.rawValue] }) else {
            throw .invalidArgument("stream \(s.rawValue) does not exist")
        }
        return st
    }

    private func enqueueCopy(_ dst: UnsafeMutableRawPointer, _ src: UnsafeRawPointer, _ count: Int, _ s: GPUStream) throws(GPUError) {
        let st = try stream(s)
        let left = copyFailureCountdown.load(ordering: .relaxed)
        if left >= 0 {
            copyFailureCountdown.store(left - 1, ordering: .relaxed)
            if left == 0 { throw .injected("copy failure injected by the test") }
        }
        st.enqueue(.copy(StandInStream.Copy(destination: dst, source: src, count: count)))
    }

    private func resolveOrThrow(_ address: DeviceAddress, _ count: Int) throws(GPUError) -> UnsafeMutableRawPointer {
        try hostAddress(of: address, count: count)
    }

    public func copy(to destination: DeviceAddress, from source: UnsafeRawPointer, count: Int, on stream: GPUStream) throws(GPUError) {
        try enqueueCopy(try resolveOrThrow(destination, count), source, count, stream)
    }

    public func copy(to destination: UnsafeMutableRawPointer, from source: DeviceAddress, count: Int, on stream: GPUStream) throws(GPUError) {
        try enqueueCopy(destination, try resolveOrThrow(source, count), count, stream)
    }

    public func copy(to destination: DeviceAddress, from source: DeviceAddress, count: Int, on stream: GPUStream) throws(GPUError) {
        try enqueueCopy(try resolveOrThrow(destination, count), try resolveOrThrow(source, count), count, stream)
    }

    public func synchronize(_ stream: GPUStream) throws(GPUError) {
        let e = try makeEvent()
        defer { destroyEvent(e) }
        try record(e, on: stream)
        try wait(e)
    }

    // MARK: Events

    public func makeEvent() throws(GPUError) -> GPUEvent {
        state.withLockChecked { s in
            let h = s.nextHandle
            s.nextHandle += 1
            s.events[h] = (0, 0)
            return GPUEvent(rawValue: h)
        }
    }

    public func record(_ event: GPUEvent, on stream: GPUStream) throws(GPUError) {
        let st = try self.stream(stream)
        let generation = try state.withLockChecked { s throws(GPUError) -> UInt64 in
            guard var e = s.events[event.rawValue] else { throw .invalidArgument("event \(event.rawValue) does not exist") }
            e.recorded += 1
            s.events[event.rawValue] = e
            return e.recorded
        }
        st.enqueue(.record(event: event.rawValue, generation: generation))
    }

    /// Called by a worker when it reaches a recorded event.
    func complete(event: UInt64, generation: UInt64) {
        state.withLockChecked { s in
            if var e = s.events[event], e.done < generation {
                e.done = generation
                s.events[event] = e
            }
        }
    }

    public func isComplete(_ event: GPUEvent) throws(GPUError) -> Bool {
        guard let e = state.withLockChecked({ $0.events[event.rawValue] }) else {
            throw .invalidArgument("event \(event.rawValue) does not exist")
        }
        return e.done >= e.recorded
    }

    /// Waits (yielding, then sleeping briefly) until the event completes. A paused stand-in
    /// never completes: only call this when the test does not hold the workers.
    public func wait(_ event: GPUEvent) throws(GPUError) {
        var spins = 0
        while try !isComplete(event) {
            spins += 1
            if spins < 1000 { sched_yield() } else { usleep(50) }
        }
    }

    public func destroyEvent(_ event: GPUEvent) {
        _ = state.withLockChecked { $0.events.removeValue(forKey: event.rawValue) }
    }
}

/// One stand-in stream: a worker thread running copies and event records in order.
final class StandInStream: @unchecked Sendable {
    struct Copy: @unchecked Sendable {
        var destination: UnsafeMutableRawPointer
        var source: UnsafeRawPointer
        var count: Int
    }
    enum Operation: Sendable {
        case copy(Copy)
        case record(event: UInt64, generation: UInt64)
        case stop
    }
    struct Queue {
        var operations: [Operation] = []
        var head = 0
        var paused = false
        /// Wake-ups the worker took while paused, given back on resume.
        var missed = 0
    }

    private let queue = Mutex(Queue())
    private let wakeups: UnsafeMutablePointer<sem_t>
    private var thread: JoinableThread?
    private weak var driver: HostStandInDriver?
    private let counter: (@Sendable (Int) -> Void)

    init(driver: HostStandInDriver) {
        self.driver = driver
        counter = { [weak driver] n in driver?.bytesCopied.add(n, ordering: .relaxed) }
        wakeups = .allocate(capacity: 1)
        sem_init(wakeups, 0, 0)
        thread = JoinableThread { [self] in run() }
    }

    deinit {
        sem_destroy(wakeups)
        wakeups.deallocate()
    }

    func enqueue(_ op: Operation) {
        queue.withLockChecked { $0.operations.append(op) }
        sem_post(wakeups)
    }

    func setPaused(_ paused: Bool) {
        let missed = queue.withLockChecked { q -> Int in
            q.paused = paused
            guard !paused else { return 0 }
            defer { q.missed = 0 }
            return q.missed
        }
        for _ in 0..<missed { sem_post(wakeups) }
    }

    /// Runs what is queued, then ends the worker and joins it.
    func stop() {
        setPaused(false)
        enqueue(.stop)
        thread?.join()
    }

    private func run() {
        while true {
            while sem_wait(wakeups) != 0 && errno == EINTR {}
            let op = queue.withLockChecked { q -> Operation? in
                if q.paused {
                    q.missed += 1
                    return nil
                }
                let op = q.operations[q.head]
                q.head += 1
                if q.head >= 1024 && q.head * 2 >= q.operations.count {
                    q.operations.removeFirst(q.head)
                    q.head = 0
                }
                return op
            }
            switch op {
            case nil: continue
            case let .copy(c)?:
                memcpy(c.destination, c.source, c.count)
                counter(c.count)
            case let .record(event, generation)?:
                driver?.complete(event: event, generation: generation)
            case .stop?:
                return
            }
        }
    }
}

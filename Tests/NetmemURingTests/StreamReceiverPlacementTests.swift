import Glibc
import Netmem
import NetmemTestSupport
import NetmemURing
import Synchronization
import SystemPackage
import Testing

/// `placeNext`: payloads received straight into the application's buffers, headers and
/// small payloads through pool memory, on several connections at once.
@Suite("StreamReceiver placements over loopback", .serialized)
struct StreamReceiverPlacementTests {
    /// One connection's stream of records (8-byte little-endian length, then the payload)
    /// as the handler sees it.
    final class Records {
        let destination: UnsafeMutableRawBufferPointer
        var header: [UInt8] = []
        var payloadLeft = 0
        var placing = false
        var written = 0
        var records = 0
        init(capacity: Int) {
            destination = .allocate(byteCount: max(1, capacity), alignment: 64)
            destination.initializeMemory(as: UInt8.self, repeating: 0xEE)
        }
        deinit { destination.deallocate() }

        /// What the next read of this connection must be, given where the stream stands.
        func next(_ id: ConnectionID, _ receiver: StreamReceiver, placeFrom: Int) {
            if payloadLeft == 0 {
                receiver.limitNextRead(id, to: 8 - header.count)
            } else if payloadLeft >= placeFrom {
                placing = true
                receiver.placeNext(id, into: UnsafeMutableRawBufferPointer(rebasing: destination[written..<written + payloadLeft]))
            } else {
                receiver.limitNextRead(id, to: payloadLeft)
            }
        }

        func take(_ bytes: UnsafeRawBufferPointer) {
            var at = 0
            while at < bytes.count {
                if payloadLeft > 0 {
                    let n = min(payloadLeft, bytes.count - at)
                    (destination.baseAddress! + written).copyMemory(from: bytes.baseAddress! + at, byteCount: n)
                    written += n
                    payloadLeft -= n
                    at += n
                    continue
                }
                header.append(bytes[at])
                at += 1
                if header.count == 8 {
                    payloadLeft = header.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
                    header.removeAll()
                    records += 1
                }
            }
        }

        func placed(_ n: Int) {
            precondition(placing && n <= payloadLeft, "a placement reported \(n) bytes with \(payloadLeft) expected")
            written += n
            payloadLeft -= n
            if payloadLeft == 0 { placing = false }
        }
    }

    /// A receiver over `buffers` chunks of 64 KiB whose every connection starts with a
    /// read of one record header.
    static func receiver(buffers: Int, name: String) throws -> (PagePool, StreamReceiver) {
        let (pool, _) = try URingTest.pool(chunkSize: 64 << 10, chunks: buffers, name: name)
        var cfg = StreamReceiver.Configuration(bufferCount: buffers)
        cfg.idleWait = .milliseconds(5)
        let receiver = try StreamReceiver(pool: pool, configuration: cfg)
        receiver.limitFirstReads(to: 8)
        return (pool, receiver)
    }

    static func stream(_ sizes: [Int], seed: UInt64) -> (wire: [UInt8], payload: [UInt8]) {
        let payload = TestData.bytes(count: sizes.reduce(0, +), seed: seed)
        var wire: [UInt8] = []
        var at = 0
        for s in sizes {
            withUnsafeBytes(of: UInt64(s).littleEndian) { wire += $0 }
            wire += payload[at..<at + s]
            at += s
        }
        return (wire, payload)
    }

    @Test("Three connections of records of odd sizes: large payloads placed, small ones and headers through the pool; every byte, nothing left out",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")),
          arguments: [1024, 1 << 30])
    func placements(placeFrom: Int) throws {
        let (pool, receiver) = try Self.receiver(buffers: 16, name: "place-test")
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let shapes: [[Int]] = [
            [0, 1, 7, 4095, 4096, 4097, 65_536, 1_048_589, 333, 0, 2_000_003],
            [1_048_576, 1_048_576, 17, 2_097_151],
            (0..<40).map { ($0 * 7919) % 50_000 },
        ]
        let streams = shapes.enumerated().map { Self.stream($0.element, seed: UInt64(71 + $0.offset)) }
        var senders: [TestThread] = []
        let failure = Mutex<String?>(nil)
        var order: [ConnectionID: Int] = [:]
        var records: [ConnectionID: Records] = [:]
        for (i, s) in streams.enumerated() {
            let client = try Loopback.connect(port: port)
            receiver.adopt(try Loopback.accept(listener))
            senders.append(TestThread {
                defer { try? client.close() }
                do { try s.wire.withUnsafeBytes { try Loopback.sendAll(client, $0) } } catch {
                    failure.withLockChecked { $0 = "sender \(i): \(error)" }
                }
            })
        }
        var ends: [ConnectionID: ConnectionEnd] = [:]
        var placedBytes = 0
        try receiver.run(untilIdle: true, deadline: .now + .seconds(120)) { event in
            switch consume event {
            case let .connected(id):
                let r = Records(capacity: streams[order.count].payload.count)
                order[id] = order.count
                records[id] = r
            case let .data(segment):
                let id = segment.connection
                guard let r = records[id] else { return }
                #expect(!r.placing, "pool data arrived for connection \(id) while a placement was under way")
                segment.withUnsafeBytes { r.take($0) }
                r.next(id, receiver, placeFrom: placeFrom)
            case let .placed(id, n):
                guard let r = records[id] else { return }
                r.placed(n)
                placedBytes += n
                if !r.placing { r.next(id, receiver, placeFrom: placeFrom) }
            case let .closed(id, end):
                ends[id] = end
            default:
                break
            }
        }
        for s in senders { s.join() }
        #expect(failure.withLockChecked { $0 } == nil)
        #expect(ends.count == streams.count && ends.values.allSatisfy { $0 == .endOfStream })
        for (id, r) in records {
            let expected = streams[order[id]!]
            #expect(r.records == shapes[order[id]!].count)
            #expect(r.written == expected.payload.count)
            #expect(Array(r.destination.prefix(r.written)) == expected.payload, "connection \(id): placed bytes differ")
        }
        // Every payload of at least `placeFrom` bytes went straight to its buffer.
        let large = shapes.joined().filter { $0 >= placeFrom }.reduce(0, +)
        #expect(placedBytes == large)
        #expect(receiver.statistics.bytesReceived == streams.reduce(0) { $0 + $1.wire.count })
        #expect(pool.inFlight == 0, "pool still has \(pool.inFlight) buffers out")
    }

    @Test("A peer that closes or resets in the middle of a placement: the bytes that came are reported, then the end; nothing left out",
          .enabled(if: URingTest.hasBufferRings || URingTest.skipReason("provided-buffer rings")),
          arguments: [false, true])
    func peerEndsMidPlacement(reset: Bool) throws {
        let (pool, receiver) = try Self.receiver(buffers: 8, name: "place-end")
        let (listener, port) = try Loopback.listener()
        defer { try? listener.close() }
        let sent = TestData.bytes(count: 300_001, seed: 83)
        let client = try Loopback.connect(port: port)
        receiver.adopt(try Loopback.accept(listener))
        let sender = TestThread {
            var wire: [UInt8] = []
            withUnsafeBytes(of: UInt64(1 << 20).littleEndian) { wire += $0 }  // announces 1 MiB
            wire += sent
            try? Loopback.sendAll(client, wire)
            if reset { Loopback.closeWithReset(client) } else { try? client.close() }
        }
        let records = Records(capacity: 1 << 20)
        var placedBytes = 0
        var end: ConnectionEnd?
        try receiver.run(untilIdle: true, deadline: .now + .seconds(120)) { event in
            switch consume event {
            case let .data(segment):
                segment.withUnsafeBytes { records.take($0) }
                records.next(segment.connection, receiver, placeFrom: 1024)
            case let .placed(_, n):
                records.placed(n)
                placedBytes += n
            case let .closed(_, e):
                end = e
            default:
                break
            }
        }
        sender.join()
        #expect(records.records == 1)
        if reset {
            // With MSG_WAITALL the kernel hands back the bytes that came and drops the
            // error, so the end may read as an end of stream; it must come either way.
            #expect(end == .reset || end == .endOfStream)
            #expect(placedBytes <= sent.count)
        } else {
            #expect(end == .endOfStream)
            #expect(placedBytes == sent.count)
        }
        #expect(Array(records.destination.prefix(placedBytes)) == Array(sent.prefix(placedBytes)))
        #expect(pool.inFlight == 0, "pool still has \(pool.inFlight) buffers out")
    }
}

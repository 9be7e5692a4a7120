import Netmem
import CNetmemLinux
import Testing
@testable import NetmemKernel

/// Builds a reply datagram the way the kernel would: one generic-netlink message per
/// record, then NLMSG_DONE.
func fakeQueueDump(family: UInt16, sequence: UInt32) -> [UInt8] {
    var out: [UInt8] = []
    for q in 0..<3 as Range<UInt32> {
        var b = NetlinkMessageBuilder(type: family, flags: UInt16(CNM_NLM_F_MULTI), sequence: sequence)
        b.genl(command: UInt8(CNM_NETDEV_CMD_QUEUE_GET))
        b.put(CNM_NETDEV_A_QUEUE_ID, u32: q)
        b.put(CNM_NETDEV_A_QUEUE_IFINDEX, u32: 7)
        b.put(CNM_NETDEV_A_QUEUE_TYPE, u32: q % 2)
        b.put(CNM_NETDEV_A_QUEUE_NAPI_ID, u32: 8192 + q)
        out += b.bytes
    }
    var done = NetlinkMessageBuilder(type: UInt16(CNM_NLMSG_DONE), flags: UInt16(CNM_NLM_F_MULTI), sequence: sequence)
    done.put(0, bytes: [])  // 4 bytes standing in for the int error (0)
    out += done.bytes
    return out
}

/// Everything a reply goes through in the client, on an arbitrary buffer.
func parseEverything(_ bytes: [UInt8]) throws(NetlinkError) -> Int {
    var records = 0
    for m in try NetlinkMessage.parseAll(bytes) {
        if m.type == UInt16(CNM_NLMSG_ERROR) || m.type == UInt16(CNM_NLMSG_DONE) {
            _ = try m.errorStatus()
            continue
        }
        let (_, attrs) = try m.genericPayload()
        _ = try NetdevQueue(attributes: attrs)
        for a in attrs where a.isNested || a.payload.count >= 4 { _ = try? a.nested() }
        records += 1
    }
    return records
}

@Suite struct NetlinkCodecTests {
    @Test func encodesNestedAttributesAligned() throws {
        var b = NetlinkMessageBuilder(type: 0x20, flags: UInt16(CNM_NLM_F_REQUEST), sequence: 9)
        b.genl(command: UInt8(CNM_NETDEV_CMD_BIND_RX))
        NetdevClient.encodeBind(&b, ifindex: 3, queues: [1, 2], type: .rx, fd: 42)
        b.put(99, string: "abc")  // 4 payload bytes with the NUL
        b.put(98, u8: 7)          // 1 byte, padded to 4
        let bytes = b.bytes
        #expect(bytes.count % 4 == 0)
        let msgs = try NetlinkMessage.parseAll(bytes)
        #expect(msgs.count == 1)
        #expect(msgs[0].type == 0x20 && msgs[0].sequence == 9)
        let (cmd, attrs) = try msgs[0].genericPayload()
        #expect(cmd == UInt8(CNM_NETDEV_CMD_BIND_RX))
        #expect(try attrs.require(CNM_NETDEV_A_DMABUF_IFINDEX, in: "t").u32() == 3)
        #expect(try attrs.require(CNM_NETDEV_A_DMABUF_FD, in: "t").u32() == 42)
        let queues = attrs.all(CNM_NETDEV_A_DMABUF_QUEUES)
        #expect(queues.count == 2)
        #expect(queues.allSatisfy { $0.isNested })
        let q1 = try queues[1].nested()
        #expect(try q1.require(CNM_NETDEV_A_QUEUE_ID, in: "q").u32() == 2)
        #expect(try q1.require(CNM_NETDEV_A_QUEUE_TYPE, in: "q").u32() == 0)
        #expect(attrs.first(99)?.string() == "abc")
        let small = try #require(attrs.first(98))
        #expect(try small.u8() == 7)
    }

    @Test func decodesADumpAndItsEnd() throws {
        let bytes = fakeQueueDump(family: 0x1c, sequence: 5)
        #expect(try parseEverything(bytes) == 3)
        let msgs = try NetlinkMessage.parseAll(bytes)
        let q = try NetdevQueue(attributes: msgs[1].genericPayload().attributes)
        #expect(q.id == 1 && q.type == .tx && q.ifindex == 7 && q.napiID == 8193)
    }

    @Test func extendedAckTextIsSurfacedVerbatim() throws {
        // NLMSG_ERROR, capped, with NLMSGERR_ATTR_MSG and _OFFS, as the kernel sends it:
        // int error, the request's 16-byte header, then the TLVs.
        var payload: [UInt8] = []
        withUnsafeBytes(of: Int32(-95)) { payload += $0 }  // EOPNOTSUPP
        var echoed = [UInt8](repeating: 0, count: 16)
        echoed[0] = 20
        payload += echoed
        var tlv = NetlinkMessageBuilder(type: 0, flags: 0, sequence: 0)
        tlv.put(CNM_NLMSGERR_ATTR_MSG, string: "Device does not support netmem")
        tlv.put(CNM_NLMSGERR_ATTR_OFFS, u32: 24)
        payload += tlv.bytes.dropFirst(16)
        let b = NetlinkMessageBuilder(type: UInt16(CNM_NLMSG_ERROR),
                                      flags: UInt16(CNM_NLM_F_CAPPED | CNM_NLM_F_ACK_TLVS), sequence: 4)
        var bytes = b.bytes + payload
        withUnsafeBytes(of: UInt32(bytes.count)) { for i in 0..<4 { bytes[i] = $0[i] } }
        let m = try #require(try NetlinkMessage.parseAll(bytes).first)
        let status = try m.errorStatus()
        #expect(status.errno == -95)
        #expect(status.message == "Device does not support netmem")
        #expect(status.offset == 24)
        let error = NetlinkError.kernel(request: "netdev bind-rx", errno: .notSupported,
                                        message: status.message, attributeOffset: status.offset)
        #expect(error.description.contains("\"Device does not support netmem\""))
    }

    @Test func rejectsWrongFixedSizes() {
        let a = NetlinkAttribute(type: 1, payload: [1, 2, 3])
        #expect(throws: NetlinkError.self) { try a.u32() }
        #expect(throws: NetlinkError.self) { try a.uint() }
        #expect(throws: NetlinkError.self) { try NetlinkAttribute.parseAll([8, 0, 1, 0, 0]) }  // claims 8, has 5
        #expect(throws: NetlinkError.self) { try NetlinkAttribute.parseAll([2, 0, 1, 0]) }     // below the header
        #expect(throws: NetlinkError.self) { try NetdevQueue(attributes: []) }                   // required attrs missing
        #expect(throws: NetlinkError.self) { try NetlinkMessage.parseAll([1, 2, 3]) }            // short header
    }

    /// Feeds random, truncated and mutated buffers to the parser: it must never trap,
    /// and every failure must be a typed `NetlinkError`.
    @Test func fuzzedRepliesAreTypedErrorsNeverTraps() {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("netlink fuzz seed: \(seed) (replay by passing it to SplitMix64 in this test)")
        var rng = SplitMix64(seed: seed)
        let good = fakeQueueDump(family: 0x1c, sequence: 5)
        var failures = 0
        var successes = 0
        for round in 0..<4000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0:  // truncated
                bytes = Array(good.prefix(Int.random(in: 0..<good.count, using: &rng)))
            case 1:  // mutated bytes
                bytes = good
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:  // noise
                bytes = (0..<Int.random(in: 0...96, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            default:  // mutated length fields
                bytes = good
                let at = Int.random(in: 0..<(bytes.count / 4), using: &rng) * 4
                bytes[at] = UInt8.random(in: 0...255, using: &rng)
                bytes[at + 1] = UInt8.random(in: 0...3, using: &rng)
            }
            do {
                _ = try parseEverything(bytes)
                successes += 1
            } catch {
                #expect(!error.description.isEmpty)
                failures += 1
            }
        }
        #expect(failures > 0, "some inputs must be rejected (seed \(seed))")
        #expect(failures + successes == 4000)
    }

    /// One reply message with a raw payload, as the kernel sends errors and dump ends.
    func reply(type: Int32, sequence: UInt32, code: Int32, echoed: Bool) -> [UInt8] {
        var payload: [UInt8] = []
        withUnsafeBytes(of: code.littleEndian) { payload += $0 }
        if echoed { payload += [16] + [UInt8](repeating: 0, count: 15) }  // the request's header
        var bytes: [UInt8] = []
        for v in [UInt32(16 + payload.count)] { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        withUnsafeBytes(of: UInt16(type).littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt16(0).littleEndian) { bytes += $0 }
        withUnsafeBytes(of: sequence.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt32(0)) { bytes += $0 }
        return bytes + payload
    }

    /// Found by the fuzz target fuzz-netlink: an NLMSG_DONE (or NLMSG_ERROR) whose error
    /// code is Int32.min trapped negating it into an errno. It is a malformed reply.
    @Test func errorCodesThatAreNoErrnoAreMalformedReplies() throws {
        var replies: [NetlinkMessage] = []
        for (type, echoed) in [(CNM_NLMSG_DONE, false), (CNM_NLMSG_ERROR, true)] {
            #expect(throws: NetlinkError.badValue(what: type == CNM_NLMSG_DONE ? "NLMSG_DONE error" : "nlmsgerr.error",
                                                  value: Int(Int32.min), reason: "not a negated errno")) {
                try GenericNetlinkSocket.collect(datagram: reply(type: type, sequence: 5, code: .min, echoed: echoed),
                                                 sequence: 5, what: "test", into: &replies)
            }
        }
        // A positive code in NLMSG_ERROR is no errno either; a negative one is the kernel's refusal.
        #expect(throws: NetlinkError.badValue(what: "nlmsgerr.error", value: 19, reason: "not a negated errno")) {
            try GenericNetlinkSocket.collect(datagram: reply(type: CNM_NLMSG_ERROR, sequence: 5, code: 19, echoed: true),
                                             sequence: 5, what: "test", into: &replies)
        }
        #expect(throws: NetlinkError.kernel(request: "test", errno: .operationNotSupportedByDevice, message: nil, attributeOffset: nil)) {
            try GenericNetlinkSocket.collect(datagram: reply(type: CNM_NLMSG_ERROR, sequence: 5, code: -19, echoed: true),
                                             sequence: 5, what: "test", into: &replies)
        }
        // The ACK and a clean dump end end the exchange; another request's reply is skipped.
        #expect(try GenericNetlinkSocket.collect(datagram: reply(type: CNM_NLMSG_ERROR, sequence: 5, code: 0, echoed: true),
                                                 sequence: 5, what: "test", into: &replies))
        #expect(try GenericNetlinkSocket.collect(datagram: reply(type: CNM_NLMSG_DONE, sequence: 5, code: 0, echoed: false),
                                                 sequence: 5, what: "test", into: &replies))
        #expect(try !GenericNetlinkSocket.collect(datagram: reply(type: CNM_NLMSG_DONE, sequence: 4, code: .min, echoed: false),
                                                  sequence: 5, what: "test", into: &replies))
        #expect(replies.isEmpty)
        // The datagram the fuzzer found: queue records, then NLMSG_DONE with error 0x80000000.
        let found = fakeQueueDump(family: 0x1b, sequence: 5).dropLast(20) + reply(type: CNM_NLMSG_DONE, sequence: 5, code: .min, echoed: false)
        #expect(throws: NetlinkError.self) {
            try GenericNetlinkSocket.collect(datagram: Array(found), sequence: 5, what: "test", into: &replies)
        }
    }
}

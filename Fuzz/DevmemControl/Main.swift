import CNetmemLinux
import NetmemDevice
import NetmemFuzzSupport
import NetmemKernel
import Synchronization

// The control-message parser of devmem TCP receives (`recvmsg(MSG_SOCK_DEVMEM)`), and the
// message built from what it parsed, on arbitrary control buffers, byte counts and
// linear data.
//
// Input: byte 0 (bits 0-2: where the control buffer starts past an 8-byte boundary;
// bit 3: give the message a region; bit 4: the region is not CPU-mapped; bit 5: point
// every fragment at that region), u16 control length, the control bytes, u64 the byte
// count recvmsg reported, then the linear data.
//
// Invariants: no trap and no read outside the buffer (it lies in an allocation of exactly
// its size); what parses encodes back to what parses the same; a message built from it
// holds exactly the linear bytes and fragments the controls describe, their lengths adding
// up to the byte count; its payload reads back the region's bytes or fails with a typed
// error; and when the message goes away every fragment's token goes back exactly once.

/// Counts the tokens given back.
final class CountingReturner: TokenReturning {
    let returned = Mutex<[UInt32: Int]>([:])

    func dontNeed(_ ranges: [TokenRange]) throws(TokenError) -> Int {
        var n = 0
        returned.withLock { counts in
            for r in ranges {
                for i in 0..<r.count { counts[r.start &+ i, default: 0] += 1 }
                n += Int(r.count)
            }
        }
        return n
    }
}

/// Two regions with known bytes: one the CPU may map, one it may not (read through the
/// exporter's copy).
let regions: [DeviceMemoryRegion] = {
    var out: [DeviceMemoryRegion] = []
    for access in [CPUAccess.mapped, .none] {
        let region = try! DeviceMemoryRegion.memfd(size: 64 << 10, access: access)
        let base = region.exporter.baseAddress!
        for i in 0..<region.size { base.storeBytes(of: UInt8(truncatingIfNeeded: i &* 7 &+ 3), toByteOffset: i, as: UInt8.self) }
        out.append(region)
    }
    return out
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDevmemControl(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzReader(data, size)
    let flags = input.u8()
    let control = input.take(Int(input.u16()))
    let received = Int(truncatingIfNeeded: input.u64())
    let linear = input.rest()
    checkControls(control, alignment: Int(flags & 7), received: received, linear: linear,
                  region: flags & 8 != 0 ? regions[flags & 16 != 0 ? 1 : 0] : nil, remap: flags & 32 != 0)
    return 0
}

func parse(_ bytes: [UInt8], alignment: Int) -> Result<[DevmemControl], DevmemError> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes.count + alignment, alignment: 8)
    defer { raw.deallocate() }
    let buffer = UnsafeMutableRawBufferPointer(start: raw + alignment, count: bytes.count)
    buffer.copyBytes(from: bytes)
    return Result { () throws(DevmemError) in try DevmemControlMessages.parse(UnsafeRawBufferPointer(buffer)) }
}

func checkControls(_ control: [UInt8], alignment: Int, received: Int, linear: [UInt8],
                   region: DeviceMemoryRegion?, remap: Bool) {
    guard case var .success(controls) = parse(control, alignment: alignment) else { return }
    fuzzCheck(controls.count <= control.count / 16, "\(controls.count) control messages in \(control.count) bytes")
    let encoded = DevmemControlMessages.encode(controls)
    let again = parse(encoded, alignment: (alignment + 5) % 8)
    fuzzCheck(again == .success(controls), "\(controls) encodes to bytes that parse to \(again)")

    if remap, let region {
        controls = controls.map {
            guard case var .dmabuf(f) = $0 else { return $0 }
            f.regionID = region.id
            return .dmabuf(f)
        }
    }
    let fragments = controls.compactMap { c -> Fragment? in
        if case let .dmabuf(f) = c { return f }
        return nil
    }
    let declaredLinear = controls.reduce(0) { sum, c in
        if case let .linear(n) = c { return sum + n }
        return sum
    }
    let returner = CountingReturner()
    let made = checkMessage(received: received, linear: linear, controls: controls, fragments: fragments,
                            declaredLinear: declaredLinear, region: region, returner: returner)
    // The message is gone now: every fragment's token went back exactly once.
    var expected: [UInt32: Int] = [:]
    if made { for f in fragments { expected[f.token, default: 0] += 1 } }
    let returned = returner.returned.withLock { $0 }
    fuzzCheck(returned == expected, "tokens given back \(returned), fragments held \(expected)")
}

/// Makes the message and checks it; false when it was refused (a typed error).
func checkMessage(received: Int, linear: [UInt8], controls: [DevmemControl], fragments: [Fragment], declaredLinear: Int,
                  region: DeviceMemoryRegion?, returner: CountingReturner) -> Bool {
    let made = linear.withUnsafeBytes { raw in
        Result { () throws(DevmemError) in
            try DevmemControlMessages.message(received: received, data: raw, controls: controls, region: region,
                                              returningTokensTo: returner)
        }
    }
    let message: Message
    switch made {
    case let .success(m): message = m
    case let .failure(error):
        _ = error.description
        return false
    }
    fuzzCheck(received >= 0, "a message made from a negative byte count \(received)")
    fuzzCheck(message.fragments == fragments, "message fragments \(message.fragments) vs controls \(fragments)")
    fuzzCheck(message.linear.count + message.payloadLength == received,
              "\(message.linear.count) linear + \(message.payloadLength) payload bytes, recvmsg said \(received)")
    fuzzCheck(message.linear == Array(linear.prefix(message.linear.count)), "linear bytes differ from the data")
    fuzzCheck(declaredLinear <= message.linear.count,
              "linear controls declare \(declaredLinear) bytes, the message has \(message.linear.count)")
    if message.payloadLength <= 1 << 20 {
        checkPayload(message, region: region)
    }
    return true
}

/// The payload reads back the region's bytes where the fragments say, or fails with a
/// typed error (no region, a fragment of another region or outside it).
func checkPayload(_ message: Message, region: DeviceMemoryRegion?) {
    let bytes: [UInt8]
    do {
        bytes = try message.payloadBytes()
    } catch {
        _ = error.description
        return
    }
    fuzzCheck(bytes.count == message.payloadLength, "payload of \(bytes.count) bytes, \(message.payloadLength) expected")
    guard !message.fragments.isEmpty else { return }
    guard let region else {
        fuzzCheck(false, "a payload read without a region")
        return
    }
    var at = 0
    for f in message.fragments {
        fuzzCheck(f.regionID == region.id && f.regionOffset + UInt64(f.length) <= UInt64(region.size),
                  "\(f) read from \(region)")
        for i in 0..<f.length {
            let want = UInt8(truncatingIfNeeded: (Int(f.regionOffset) + i) &* 7 &+ 3)
            fuzzCheck(bytes[at + i] == want, "byte \(i) of \(f) is \(bytes[at + i]), the region holds \(want)")
        }
        at += f.length
    }
}

var seedInputs: [(name: String, bytes: [UInt8])] {
    func input(flags: UInt8, _ controls: [DevmemControl], received: Int, linear: Int) -> [UInt8] {
        let c = DevmemControlMessages.encode(controls)
        var out: [UInt8] = [flags, UInt8(c.count & 0xFF), UInt8(c.count >> 8)] + c
        withUnsafeBytes(of: UInt64(received).littleEndian) { out += $0 }
        return out + (0..<linear).map { UInt8(truncatingIfNeeded: $0) }
    }
    let frags = [
        Fragment(regionOffset: 4096, length: 1448, token: 10, regionID: 3),
        Fragment(regionOffset: 8192, length: 1448, token: 11, regionID: 3),
        Fragment(regionOffset: 65536 - 200, length: 200, token: 12, regionID: 3),
    ]
    let dmabuf = frags.map { DevmemControl.dmabuf($0) }
    let payload = frags.reduce(0) { $0 + $1.length }
    return [
        ("linear-only", input(flags: 0, [.linear(length: 52)], received: 52, linear: 52)),
        ("fragments", input(flags: 0, [.linear(length: 52)] + dmabuf, received: 52 + payload, linear: 52)),
        ("fragments-in-region", input(flags: 8 | 32 | 3, dmabuf, received: payload, linear: 0)),
        ("fragments-unmapped-region", input(flags: 8 | 16 | 32, [.linear(length: 8)] + dmabuf, received: 8 + payload, linear: 8)),
        ("other-types", input(flags: 5, [.other(level: 0, type: 99, length: 12), dmabuf[0], .other(level: 1, type: 77, length: 4)],
                              received: frags[0].length, linear: 0)),
        ("no-controls", input(flags: 0, [], received: 30, linear: 30)),
        ("inconsistent", input(flags: 0, dmabuf, received: 100, linear: 8)),
        ("tx", [0, 24, 0] + DevmemControlMessages.encodeTX(bindingID: 7) + [UInt8](repeating: 0, count: 8)),
    ].map { (name: $0.0, bytes: $0.1) }
}

@main struct FuzzDevmemControl {
    static func main() {
        FuzzMain.run("fuzz-devmem-cmsg", seeds: { seedInputs }, test: fuzzDevmemControl)
    }
}

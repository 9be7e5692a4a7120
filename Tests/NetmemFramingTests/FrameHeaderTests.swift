import Netmem
import NetmemDevice
@testable import NetmemFraming
import Testing

@Suite("Frame header and CRC-32C")
struct FramingHeaderTests {
    @Test("CRC-32C of the standard check string is 0xE3069283")
    func crcKnownVector() {
        let check = Array("123456789".utf8)
        #expect(CRC32C.checksum(check) == 0xE306_9283)
        check.withUnsafeBytes { #expect(CRC32C.portableChecksum($0) == 0xE306_9283) }
        // RFC 3720 (iSCSI) vectors: 32 zero bytes, 32 0xFF bytes, 0...31.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test("Hardware and portable CRC-32C agree on random data, whole and continued")
    func crcHardwareAgreesWithPortable() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        print("CRC-32C uses hardware instructions: \(CRC32C.usesHardware)")
        for length in [1, 3, 7, 8, 9, 15, 63, 64, 65, 1000, 4095, 65_537] {
            let bytes = rng.bytes(length)
            bytes.withUnsafeBytes { b in
                let whole = CRC32C.checksum(b)
                #expect(whole == CRC32C.portableChecksum(b), "length \(length)")
                // Misaligned starts and continuation across an arbitrary split.
                let split = Int(rng.next() % UInt64(length + 1))
                let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[..<split]))
                let both = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[split...]), continuing: first)
                #expect(both == whole, "length \(length) split at \(split)")
                let pfirst = CRC32C.portableChecksum(UnsafeRawBufferPointer(rebasing: b[..<split]))
                #expect(CRC32C.portableChecksum(UnsafeRawBufferPointer(rebasing: b[split...]), continuing: pfirst) == whole)
            }
        }
    }

    @Test("Header encodes little-endian at the documented offsets and decodes back")
    func headerRoundTrip() throws {
        let h = FrameHeader(streamID: 0x0102_0304, sequence: 0x1122_3344_5566_7788, payloadLength: 0xA0B0_C0D0,
                            crc: 0xDEAD_BEEF, extensionLength: 16)
        let bytes = h.encoded
        #expect(bytes.count == 48)
        #expect(Array(bytes[0..<4]) == Array("NMEM".utf8))
        #expect(bytes[4] == 1)
        #expect(bytes[5] == 1)
        #expect(Array(bytes[6..<8]) == [48, 0])
        #expect(Array(bytes[8..<12]) == [4, 3, 2, 1])
        #expect(Array(bytes[12..<16]) == [0xD0, 0xC0, 0xB0, 0xA0])
        #expect(Array(bytes[16..<24]) == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
        #expect(Array(bytes[24..<28]) == [0xEF, 0xBE, 0xAD, 0xDE])
        #expect(Array(bytes[28..<48]) == [UInt8](repeating: 0, count: 20))
        let back = FrameHeader(decoding: bytes)
        #expect(back == h)
        try back.validate(maxPayload: Int(UInt32.max))
        let noCRC = FrameHeader(sequence: 1, payloadLength: 5)
        #expect(!noCRC.hasPayloadCRC && noCRC.headerLength == 32)
    }

    @Test("Validation names the field and the value that is wrong")
    func headerValidation() {
        func check(_ mutate: (inout FrameHeader) -> Void, max: Int = 1 << 20, _ expected: FrameError) {
            var h = FrameHeader(sequence: 7, payloadLength: 100)
            mutate(&h)
            #expect(throws: expected) { try h.validate(maxPayload: max) }
        }
        check({ $0.magic = 0x1234_5678 }, .badMagic(0x1234_5678))
        check({ $0.version = 2 }, .badVersion(2))
        check({ $0.headerLength = 31 }, .headerLengthTooSmall(31))
        check({ $0.headerLength = 0 }, .headerLengthTooSmall(0))
        check({ $0.headerLength = 4097 }, .headerLengthTooLarge(4097))
        check({ $0.payloadLength = 101 }, max: 100, .payloadTooLarge(101, maximum: 100))
        var ok = FrameHeader(sequence: 7, payloadLength: 100)
        ok.headerLength = 4096
        #expect(throws: Never.self) { try ok.validate(maxPayload: 100) }
        #expect(FrameError.badMagic(0x1234_5678).description.contains("0x12345678"))
        #expect(FrameError.headerLengthTooLarge(4097).description.contains("header_length 4097"))
        #expect(FrameError.payloadTooLarge(101, maximum: 100).description.contains("payload_length 101"))
        #expect(FrameError.closedInHeader(received: 12, expected: 32).description
            == "connection closed 12 bytes into a 32-byte header")
    }
}

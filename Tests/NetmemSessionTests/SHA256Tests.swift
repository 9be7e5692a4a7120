import NetmemSHA256
import NetmemTestSupport
import Testing

@Suite("SHA-256")
struct SHA256Tests {
    @Test("Known answers (FIPS 180-4 examples), whole and fed in pieces")
    func knownAnswers() {
        #expect(SHA256.hex(SHA256.hash(data: [])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(SHA256.hash(data: Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let two = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(SHA256.hash(data: two)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(SHA256.hex(SHA256.hash(data: million)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // The same digest whatever the cuts.
        let data = TestData.bytes(count: 10_000, seed: 3)
        let whole = SHA256.hash(data: data)
        for cut in [1, 55, 56, 63, 64, 65, 127, 4096, 9_999] {
            var h = SHA256()
            h.update(data: Array(data[..<cut]))
            h.update(data: Array(data[cut...]))
            #expect(h.finalize() == whole, "cut at \(cut)")
        }
    }
}

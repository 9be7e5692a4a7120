import NetmemURing
import Testing

@Suite("Socket addresses")
struct SocketAddressTests {
    @Test("Addresses parse from ADDR:PORT and bad ones are named")
    func addressParsing() throws {
        let a = try SocketAddress(parsing: "127.0.0.1:9000")
        #expect(a.port == 9000 && a.description == "127.0.0.1:9000")
        let b = try SocketAddress(parsing: "[::1]:80")
        #expect(b.description == "[::1]:80")
        #expect(try SocketAddress(parsing: "localhost:1").host == "127.0.0.1")
        #expect(try SocketAddress(parsing: ":5").host == "0.0.0.0")
        #expect(throws: SocketAddressError.badPort("99999")) { try SocketAddress(parsing: "1.2.3.4:99999") }
        #expect(throws: SocketAddressError.malformed("nocolon")) { try SocketAddress(parsing: "nocolon") }
        #expect(throws: SocketAddressError.badHost("example.org")) { try SocketAddress(parsing: "example.org:1") }
    }

    /// Found by the fuzz target fuzz-socket-address: a NUL inside the host ended the C
    /// string inet_pton read, so the rest of the host was ignored.
    @Test("A host with a NUL inside is refused, not cut at the NUL")
    func nulInHost() {
        let text = "[::ff\u{0}\u{0}\u{0}\u{0}.00.0.1]:443"
        #expect(throws: SocketAddressError.badHost("::ff\u{0}\u{0}\u{0}\u{0}.00.0.1")) { try SocketAddress(parsing: text) }
        #expect(throws: SocketAddressError.badHost("127.0.0.1\u{0}x")) { try SocketAddress(parsing: "127.0.0.1\u{0}x:80") }
        #expect(throws: SocketAddressError.self) { try SocketAddress(parsing: "\u{0}:80") }
    }
}

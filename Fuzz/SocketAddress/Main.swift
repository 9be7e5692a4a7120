import NetmemFuzzSupport
import NetmemURing

// The "ADDR:PORT" parser of `--listen`, `--connect` and the metrics address, on
// arbitrary text.
//
// Invariants: no trap; a rejected text gets a typed error; an accepted address names
// exactly the host text it resolved (no part of it ignored), its description parses back
// to the same address, and its canonical form (through a sockaddr and back) is stable.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSocketAddress(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    checkSocketAddress(text)
    return 0
}

func checkSocketAddress(_ text: String) {
    let address: SocketAddress
    do {
        address = try SocketAddress(parsing: text)
    } catch {
        _ = error.description
        return
    }
    fuzzCheck(!address.host.utf8.contains(0), "'\(text)' accepted with a NUL in its host '\(address.host)'")
    fuzzCheck(!address.host.isEmpty, "'\(text)' accepted with an empty host")
    let again: SocketAddress
    do {
        again = try SocketAddress(parsing: address.description)
    } catch {
        fuzzCheck(false, "'\(text)' parsed to \(address), whose description does not parse: \(error)")
        return
    }
    fuzzCheck(again == address, "'\(text)' parsed to \(address), its description to \(again)")
    // Through a sockaddr and back: the host in canonical form, the port kept.
    let canonical = address.with(port: address.port)
    fuzzCheck(canonical.port == address.port, "\(address) lost its port through a sockaddr: \(canonical)")
    let reparsed = try? SocketAddress(parsing: canonical.description)
    fuzzCheck(reparsed == canonical, "\(address): canonical \(canonical) parses to \(String(describing: reparsed))")
    fuzzCheck(reparsed?.with(port: address.port) == canonical, "\(address): canonical form \(canonical) is not stable")
    let other = address.with(port: address.port &+ 1)
    fuzzCheck(other.port == address.port &+ 1 && other.host == canonical.host,
              "\(address) with another port is \(other)")
}

let seeds: [(name: String, bytes: [UInt8])] = [
    "127.0.0.1:9000", "[::1]:80", "localhost:1", ":5", "0.0.0.0:0", "[fe80::1:2:3:4]:65535",
    "[::ffff:10.0.0.1]:443", "1.2.3.4:99999", "nocolon", "example.org:1", "[::1]x:80", "[1.2.3.4]:7",
    "::1:80", "10.0.0.1:+80", "[]:1",
].enumerated().map { (name: ($0.offset < 10 ? "0" : "") + "\($0.offset)-address", bytes: Array($0.element.utf8)) }

@main struct FuzzSocketAddress {
    static func main() {
        FuzzMain.run("fuzz-socket-address", seeds: { seeds }, test: fuzzSocketAddress)
    }
}

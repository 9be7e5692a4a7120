@testable import NetmemNCCL
import Testing

@Suite("NCCL plugin: NETMEM_NCCL_* settings")
struct NCCLConfigurationTests {
    @Test("no variables give the defaults")
    func defaults() throws {
        let c = try NCCLConfiguration(lookup: { _ in nil })
        #expect(c == NCCLConfiguration())
        #expect(c.sockets == 2, "two data sockets per comm unless NETMEM_NCCL_SOCKETS says otherwise")
    }

    @Test("values parse, with K/M/G sizes; NETMEM_NCCL_IFNAME wins over NCCL_SOCKET_IFNAME")
    func values() throws {
        let env = ["NETMEM_NCCL_SOCKETS": "4", "NETMEM_NCCL_MIN_CHUNK": "128K", "NETMEM_NCCL_ZEROCOPY": "0",
                   "NETMEM_NCCL_RX_CHUNK": "1M", "NETMEM_NCCL_RX_BUFFERS": "64", "NETMEM_NCCL_CRC": "yes",
                   "NETMEM_NCCL_PEER_TIMEOUT_S": "5", "NETMEM_NCCL_SOCKBUF": "4M", "NETMEM_NCCL_PLACE_MIN": "0",
                   "NETMEM_NCCL_IFNAME": "eth1", "NCCL_SOCKET_IFNAME": "ib"]
        let c = try NCCLConfiguration(lookup: { env[$0] })
        #expect(c.sockets == 4)
        #expect(c.minChunk == 128 << 10)
        #expect(c.zeroCopy == .off)
        #expect(c.rxChunk == 1 << 20)
        #expect(c.rxBuffers == 64)
        #expect(c.placeMin == 0)
        #expect(c.crc)
        #expect(c.peerTimeoutSeconds == 5)
        #expect(c.socketBuffer == 4 << 20)
        #expect(c.interface == "=eth1")
        let nccl = try NCCLConfiguration(lookup: { $0 == "NCCL_SOCKET_IFNAME" ? "^docker,lo" : nil })
        #expect(nccl.interface == "^docker,lo")
    }

    @Test("a bad value is refused with the variable's name")
    func badValues() {
        for (name, value) in [("NETMEM_NCCL_SOCKETS", "0"), ("NETMEM_NCCL_SOCKETS", "seventeen"), ("NETMEM_NCCL_RX_CHUNK", "3000"),
                              ("NETMEM_NCCL_RX_CHUNK", "12K"), ("NETMEM_NCCL_ZEROCOPY", "maybe"), ("NETMEM_NCCL_ZEROCOPY", "2"), ("NETMEM_NCCL_RX_BUFFERS", "1"),
                              ("NETMEM_NCCL_PEER_TIMEOUT_S", "-3")] {
            do {
                _ = try NCCLConfiguration(lookup: { $0 == name ? value : nil })
                Issue.record("\(name)=\(value) was accepted")
            } catch {
                #expect(error.kind == .invalidArgument)
                #expect(error.message.contains(name), "\(error.message)")
            }
        }
    }

    @Test("interface rules: prefixes, =exact, ^exclusions")
    func selector() {
        #expect(NCCLInterfaceSelector("eth").matches("eth0"))
        #expect(!NCCLInterfaceSelector("=eth").matches("eth0"))
        #expect(NCCLInterfaceSelector("=eth0").matches("eth0"))
        #expect(!NCCLInterfaceSelector("^docker,lo").matches("lo"))
        #expect(NCCLInterfaceSelector("^docker,lo").matches("ens5"))
        #expect(NCCLInterfaceSelector("ib,eth").matches("ib0"))
    }

    @Test("the device for 'lo' is loopback; an interface that does not exist is an error")
    func device() throws {
        let lo = try NCCLNetDevice.choose(selector: "=lo")
        #expect(lo.interface == "lo")
        #expect(lo.address.bytes.first == 127 || lo.address.bytes == Array(repeating: 0, count: 15) + [1])
        do {
            _ = try NCCLNetDevice.choose(selector: "=no-such-interface0")
            Issue.record("a missing interface was accepted")
        } catch {
            #expect(error.message.contains("no-such-interface0"))
        }
    }
}

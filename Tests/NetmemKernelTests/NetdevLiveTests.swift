import Glibc
import NetmemLab
import Testing
@testable import NetmemKernel

/// Checks the netdev family client against what `ip link` and sysfs say on this machine.
///
/// The netdev family answers per network namespace. The fixture keeps one veth end in
/// the root namespace and moves the other into a namespace the test creates; the client
/// queries the root namespace directly and the test namespace through a socket opened
/// inside it (`NetdevClient(namespacePath:)` does setns on the calling thread for the
/// socket() call and switches back; a netlink socket keeps the namespace it was made in).
@Suite(.serialized) struct NetdevLiveTests {
    @Test func devicesMatchIPLinkInRootNamespace() throws {
        var client = try NetdevClient()
        let devices = try client.devices()
        let viaIP = VethLab.linkIndexes(namespace: nil)
        // Devices can come and go while other tests run; compare the stable ones.
        let stable = viaIP.filter { !$0.value.hasPrefix("nmk") && !$0.value.hasPrefix("veth") && !$0.value.hasPrefix("nm") }
        for (ifindex, name) in stable {
            #expect(devices.contains { $0.ifindex == ifindex }, "dev-get lacks \(name) (ifindex \(ifindex)) that ip link lists")
        }
        #expect(devices.contains { $0.ifindex == 1 }, "loopback (ifindex 1) must be listed")
    }

    @Test(.enabled(if: VethLab.unavailableReason == nil, "needs root and `ip` to create a netns and a veth pair"))
    func vethQueuesMatchSysfsInBothNamespaces() throws {
        let lab = try VethLab(tag: "kq", layout: .rootAndNamespace(rxQueues: 3, txQueues: 2))
        defer { lab.remove() }
        let namespace = lab.namespaceB!
        let namespacePath = VethLab.path(ofNamespace: namespace)

        // Root end: queue-get against /sys/class/net/A/queues.
        let rootIndex = try #require(NetworkInterface.index(name: lab.ifA))
        var root = try NetdevClient()
        let rootQueues = try root.queues(ifindex: rootIndex)
        let sysfs = try #require(NetworkInterface.sysfsQueueCounts(name: lab.ifA))
        #expect(sysfs.rx == 3 && sysfs.tx == 2)
        #expect(rootQueues.filter { $0.type == .rx }.count == sysfs.rx)
        #expect(rootQueues.filter { $0.type == .tx }.count == sysfs.tx)
        #expect(rootQueues.allSatisfy { $0.ifindex == rootIndex })
        #expect(Set(rootQueues.filter { $0.type == .rx }.map(\.id)) == [0, 1, 2])
        let rootDevices = try root.devices()
        #expect(rootDevices.contains { $0.ifindex == rootIndex })

        // Namespace end: only visible from a socket made inside the namespace.
        let nsLinks = VethLab.linkIndexes(namespace: namespace)
        let nsIndex = try #require(nsLinks.first { $0.value == lab.ifB }?.key)
        #expect(NetworkInterface.name(ifindex: nsIndex, namespacePath: namespacePath) == lab.ifB)
        var inside = try NetdevClient(namespacePath: namespacePath)
        let nsDevices = try inside.devices()
        #expect(Set(nsDevices.map(\.ifindex)) == Set(nsLinks.keys), "dev-get in the namespace must list exactly what `ip -n` lists")
        let nsQueues = try inside.queues(ifindex: nsIndex)
        let listing = try VethLab.run("ip netns exec \(namespace) ls /sys/class/net/\(lab.ifB)/queues")
        let nsRX = listing.split(whereSeparator: \.isWhitespace).filter { $0.hasPrefix("rx-") }.count
        let nsTX = listing.split(whereSeparator: \.isWhitespace).filter { $0.hasPrefix("tx-") }.count
        #expect(nsRX == 1 && nsTX == 1)
        #expect(nsQueues.filter { $0.type == .rx }.count == nsRX)
        #expect(nsQueues.filter { $0.type == .tx }.count == nsTX)

        // The root dump must not list the namespace's end under its ifindex-and-name pair.
        let rootAll = try root.queues()
        if let rootNameForNSIndex = NetworkInterface.name(ifindex: nsIndex) {
            #expect(rootNameForNSIndex != lab.ifB)
        }
        #expect(rootAll.contains { $0.ifindex == rootIndex })
    }

    @Test func getsAgreeWithDumps() throws {
        var client = try NetdevClient()
        for q in try client.queues(ifindex: 1) {
            #expect(try client.queue(ifindex: q.ifindex, id: q.id, type: q.type) == q)
        }
        for n in try client.napis() {
            #expect(try client.napi(id: n.id).ifindex == n.ifindex)
        }
        for p in try client.pagePools() {
            #expect(try client.pagePool(id: p.id).id == p.id)
        }
        do {
            _ = try client.pagePool(id: 0xffff_fff0)
            Issue.record("page-pool-get for a missing id succeeded")
        } catch {
            #expect(error.kernelErrno != nil, "expected the kernel's refusal, got \(error)")
        }
    }

    @Test func familyErrorsAreTyped() {
        #expect(throws: NetlinkError.familyNotFound("nmnofamily")) {
            _ = try GenericNetlinkSocket(family: "nmnofamily")
        }
        #expect(throws: NetlinkError.self) {
            _ = try NetdevClient(namespacePath: "/nonexistent/netns/path")
        }
    }

    @Test func aDoRequestForAMissingDeviceSurfacesTheKernelError() throws {
        var client = try NetdevClient()
        do {
            _ = try client.device(ifindex: 0x7fff_fff0)
            Issue.record("dev-get for a missing ifindex succeeded")
        } catch {
            #expect(error.kernelErrno != nil, "expected a kernel error, got \(error)")
            #expect(error.description.contains("dev-get"))
        }
    }
}

import Foundation
import Glibc
import NetmemLab
import NetmemNamespace
import SystemPackage
import Testing

private let canMakeNamespaces = VethLab.unavailableReason == nil

/// The inode of a namespace file: two paths name the same namespace exactly when they agree.
private func inode(_ path: String) -> UInt64? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return UInt64(st.st_ino)
}

private let threadNamespace = "/proc/thread-self/ns/net"

@Suite struct NetworkNamespaceTests {
    /// Creates a namespace with a unique name for one test and always deletes it.
    private func withNamespace(_ body: (String) throws -> Void) throws {
        let name = "nmns\(String(UInt32.random(in: 0..<0xff_ffff), radix: 36))"
        try VethLab.run("ip netns add \(name)")
        defer { _ = try? VethLab.run("ip netns del \(name)") }
        try body(name)
    }

    @Test(.enabled(if: canMakeNamespaces, "needs root and `ip` to create a network namespace"))
    func theThreadRunsInsideAndComesBack() throws {
        try withNamespace { name in
            let before = try #require(inode(threadNamespace))
            let target = try #require(inode(NetworkNamespace.path(named: name)))
            #expect(before != target, "a new namespace is not the one this thread is in")
            let inside = try NetworkNamespace.run(in: name) { () throws(Never) -> UInt64? in inode(threadNamespace) }
            #expect(inside == target)
            #expect(inode(threadNamespace) == before)
            // Only loopback exists in a fresh namespace: an interface lookup there sees it alone.
            let index = try NetworkNamespace.run(path: NetworkNamespace.path(named: name), returning: { if_nametoindex("lo") })
            #expect(index == 1)
            #expect(inode(threadNamespace) == before)
        }
    }

    struct BodyFailed: Error, Equatable {}

    @Test(.enabled(if: canMakeNamespaces, "needs root and `ip` to create a network namespace"))
    func aThrowingBodyStillComesBack() throws {
        try withNamespace { name in
            let before = try #require(inode(threadNamespace))
            #expect(throws: BodyFailed()) {
                try NetworkNamespace.run(in: name) { () throws(BodyFailed) in throw BodyFailed() }
            }
            #expect(inode(threadNamespace) == before)
        }
    }

    @Test func aMissingNamespaceIsATypedErrorAndTheThreadStays() throws {
        let before = try #require(inode(threadNamespace))
        #expect(throws: NetworkNamespaceError.noSuchNamespace("nm-no-such-ns")) {
            try NetworkNamespace.enter("nm-no-such-ns")
        }
        #expect(throws: NetworkNamespaceError.systemCall("open(/nonexistent/netns)", .noSuchFileOrDirectory)) {
            try NetworkNamespace.run(path: "/nonexistent/netns", returning: { 0 })
        }
        #expect(NetworkNamespaceError.noSuchNamespace("x").description.contains("ip netns list"))
        #expect(inode(threadNamespace) == before)
    }
}

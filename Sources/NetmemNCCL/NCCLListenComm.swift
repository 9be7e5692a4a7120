import Glibc
import SystemPackage

/// A listening socket and the connections that reached it: each one's hello is read
/// without blocking, and the sockets of one connector (same nonce) are grouped by index.
/// `accept` returns a receive comm when a group is complete. Connections with a bad hello
/// (wrong token, protocol, or count) are closed and logged, never an error of `accept`.
final class NCCLListenComm: @unchecked Sendable {
    let context: NCCLContext
    let listener: FileDescriptor
    let handle: NCCLConnectionHandle
    private var incoming: [Incoming] = []
    private var groups: [UInt64: [FileDescriptor?]] = [:]

    private struct Incoming {
        let fd: FileDescriptor
        var hello = [UInt8](repeating: 0, count: NCCLWireFrame.size)
        var filled = 0
        let since = ContinuousClock.now
    }

    /// Mirrors `listen`: binds to the device's address on a free port and writes the handle.
    init(context: NCCLContext, handleBytes: UnsafeMutableRawPointer) throws(NCCLError) {
        self.context = context
        let config = context.configuration
        do throws(Errno) {
            let (fd, bound) = try NCCLSocket.listen(on: context.device.address)
            listener = fd
            handle = NCCLConnectionHandle(address: bound, sockets: config.sockets, crc: config.crc,
                                          token: UInt64.random(in: 1...UInt64.max))
        } catch {
            throw NCCLError.system("listen on \(context.device.address.host) (\(context.device.interface))", error)
        }
        handle.encode(into: handleBytes)
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    /// Mirrors `accept`: a receive comm once some connector's sockets have all arrived, nil
    /// until then.
    func accept() throws(NCCLError) -> NCCLRecvComm? {
        do throws(Errno) {
            var taken = 0
            while taken < 64, let fd = try NCCLSocket.accept(listener) {
                incoming.append(Incoming(fd: fd))
                taken += 1
            }
        } catch {
            throw NCCLError.system("accept on \(handle.address)", error)
        }
        var i = 0
        while i < incoming.count {
            if readHello(&incoming[i]) {
                incoming.remove(at: i)
            } else {
                i += 1
            }
        }
        guard let nonce = groups.first(where: { $0.value.allSatisfy { $0 != nil } })?.key else { return nil }
        let fds = groups.removeValue(forKey: nonce)!.map { $0! }
        try NCCLConnector.prepareDataSockets(fds, context.configuration)
        return try NCCLRecvComm(context: context, label: "receive comm on \(handle.address)", sockets: fds)
    }

    /// Reads what is there of a connection's hello; true when the connection left the
    /// incoming list (grouped, or closed).
    private func readHello(_ c: inout Incoming) -> Bool {
        let n: Int?
        do throws(Errno) {
            let filled = c.filled
            let fd = c.fd
            n = try c.hello.withUnsafeMutableBytes { raw in
                Result { () throws(Errno) in try NCCLSocket.receiveNow(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[filled...])) }
            }.get()
        } catch {
            return drop(c, "reading its hello failed: \(error)")
        }
        guard let n else {
            if ContinuousClock.now - c.since > .seconds(context.configuration.peerTimeoutSeconds) {
                return drop(c, "no hello in \(context.configuration.peerTimeoutSeconds) s")
            }
            return false
        }
        if n == 0 { return drop(c, "closed before its hello") }
        c.filled += n
        guard c.filled == NCCLWireFrame.size else { return false }
        let frame: NCCLWireFrame
        do throws(NCCLError) {
            frame = try c.hello.withUnsafeBytes { raw in Result { () throws(NCCLError) in try NCCLWireFrame.decode(raw) } }.get()
        } catch {
            return drop(c, error.message)
        }
        guard case let .hello(nonce, token, index, count) = frame else { return drop(c, "sent \(frame) instead of a hello") }
        guard token == handle.token else { return drop(c, "hello carries another listener's token (a stale handle?)") }
        guard count == handle.sockets, index < count else {
            return drop(c, "hello says socket \(index) of \(count); this listener's comms have \(handle.sockets)")
        }
        var group = groups[nonce] ?? Array(repeating: nil, count: count)
        guard group[index] == nil else { return drop(c, "a second socket \(index) for one comm") }
        group[index] = c.fd
        groups[nonce] = group
        return true
    }

    private func drop(_ c: Incoming, _ why: String) -> Bool {
        context.log(.warn, "listener \(handle.address): closing an incoming connection: \(why)")
        _ = try? c.fd.close()
        return true
    }

    /// Mirrors `closeListen`: closes the listener and every connection not yet in a comm.
    func close() {
        for c in incoming { _ = try? c.fd.close() }
        incoming = []
        for g in groups.values { for fd in g { _ = try? fd?.close() } }
        groups = [:]
        _ = try? listener.close()
    }
}

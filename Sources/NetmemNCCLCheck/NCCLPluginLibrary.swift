import CNetmemNCCL
import Glibc
import Netmem
import Synchronization

/// An NCCL network plugin loaded with `dlopen`, driven through its `ncclNetPlugin_v11`
/// table the way NCCL calls it. Every call returns the plugin's result code; a non-zero
/// code becomes `NCCLCallError`, naming the call.
public final class NCCLPluginLibrary: @unchecked Sendable {
    public let path: String
    let table: UnsafeMutablePointer<cnm_nccl_net_v11_t>
    private let statisticsCall: (@convention(c) (UnsafeMutablePointer<CChar>?, Int) -> Int)?

    /// Loads `path` (RTLD_NOW | RTLD_LOCAL) and finds its v11 table.
    public init(path: String) throws(NCCLCheckError) {
        self.path = path
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw .load("dlopen(\(path)): \(String(cString: dlerror()))")
        }
        guard let sym = dlsym(handle, "ncclNetPlugin_v11") else {
            throw .load("\(path) exports no ncclNetPlugin_v11 (not an NCCL net plugin of interface version 11)")
        }
        table = sym.assumingMemoryBound(to: cnm_nccl_net_v11_t.self)
        statisticsCall = dlsym(handle, "netmem_nccl_plugin_statistics").map {
            unsafeBitCast($0, to: (@convention(c) (UnsafeMutablePointer<CChar>?, Int) -> Int).self)
        }
    }

    public var name: String { table.pointee.name.map { String(cString: $0) } ?? "(unnamed)" }

    /// The plugin's own counters (Netmem's plugin exports them as JSON), if it has any.
    public var statisticsJSON: String? {
        guard let call = statisticsCall else { return nil }
        var buf = [CChar](repeating: 0, count: 4096)
        _ = call(&buf, buf.count)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @inline(__always)
    func check(_ call: String, _ r: cnm_nccl_result_t) throws(NCCLCallError) {
        if r != CNM_NCCL_SUCCESS { throw NCCLCallError(call: call, code: Int32(r.rawValue)) }
    }

    func function<T>(_ name: String, _ f: T?) throws(NCCLCallError) -> T {
        guard let f else { throw NCCLCallError(call: name, code: -1) }
        return f
    }

    // MARK: Calls (one wrapper per table entry the harness uses)

    /// Mirrors `init(&ctx, commId, NULL, logger, NULL)` with a logger that captures lines.
    public func initialize(commID: UInt64) throws(NCCLCallError) -> UnsafeMutableRawPointer? {
        var ctx: UnsafeMutableRawPointer?
        let f = try function("init", table.pointee.`init`)
        let logger = unsafeBitCast(cnm_nccl_capture_logger_address(), to: cnm_nccl_debug_logger_t.self)
        try check("init", f(&ctx, commID, nil, logger, nil))
        return ctx
    }

    public func finalize(_ ctx: UnsafeMutableRawPointer?) throws(NCCLCallError) {
        guard let f = table.pointee.finalize else { return }
        try check("finalize", f(ctx))
    }

    public func devices() throws(NCCLCallError) -> Int {
        var n: Int32 = 0
        try check("devices", try function("devices", table.pointee.devices)(&n))
        return Int(n)
    }

    public func properties(device: Int) throws(NCCLCallError) -> cnm_nccl_net_properties_v11_t {
        var p = cnm_nccl_net_properties_v11_t()
        try check("getProperties", try function("getProperties", table.pointee.getProperties)(Int32(device), &p))
        return p
    }

    /// Mirrors `listen`: the listen comm and the 128-byte handle.
    public func listen(_ ctx: UnsafeMutableRawPointer?, device: Int = 0) throws(NCCLCallError) -> (UnsafeMutableRawPointer?, [UInt8]) {
        var handle = [UInt8](repeating: 0, count: Int(CNM_NCCL_NET_HANDLE_MAXSIZE))
        var comm: UnsafeMutableRawPointer?
        let f = try function("listen", table.pointee.listen)
        let r = handle.withUnsafeMutableBytes { f(ctx, Int32(device), $0.baseAddress, &comm) }
        try check("listen", r)
        return (comm, handle)
    }

    /// Mirrors one `connect` call (nil: call again). The handle is updated in place, as
    /// NCCL keeps passing the same handle memory.
    public func connect(_ ctx: UnsafeMutableRawPointer?, handle: UnsafeMutableRawPointer, device: Int = 0) throws(NCCLCallError) -> UnsafeMutableRawPointer? {
        var comm: UnsafeMutableRawPointer?
        var dev: UnsafeMutablePointer<cnm_nccl_net_device_handle_t>?
        try check("connect", try function("connect", table.pointee.connect)(ctx, Int32(device), handle, &comm, &dev))
        return comm
    }

    /// Mirrors one `accept` call (nil: call again).
    public func accept(_ listenComm: UnsafeMutableRawPointer?) throws(NCCLCallError) -> UnsafeMutableRawPointer? {
        var comm: UnsafeMutableRawPointer?
        var dev: UnsafeMutablePointer<cnm_nccl_net_device_handle_t>?
        try check("accept", try function("accept", table.pointee.accept)(listenComm, &comm, &dev))
        return comm
    }

    public func regMr(_ comm: UnsafeMutableRawPointer?, _ data: UnsafeMutableRawPointer, _ size: Int) throws(NCCLCallError) -> UnsafeMutableRawPointer? {
        var mh: UnsafeMutableRawPointer?
        try check("regMr", try function("regMr", table.pointee.regMr)(comm, data, size, Int32(CNM_NCCL_PTR_HOST), &mh))
        return mh
    }

    public func deregMr(_ comm: UnsafeMutableRawPointer?, _ mhandle: UnsafeMutableRawPointer?) throws(NCCLCallError) {
        try check("deregMr", try function("deregMr", table.pointee.deregMr)(comm, mhandle))
    }

    /// Mirrors `isend` (nil: not taken, call again).
    public func isend(_ comm: UnsafeMutableRawPointer?, _ data: UnsafeMutableRawPointer?, _ size: Int,
                      _ mhandle: UnsafeMutableRawPointer?) throws(NCCLCallError) -> UnsafeMutableRawPointer? {
        var req: UnsafeMutableRawPointer?
        try check("isend", try function("isend", table.pointee.isend)(comm, data, size, 0, mhandle, nil, &req))
        return req
    }

    /// Mirrors `irecv` of one buffer (nil: not taken, call again).
    public func irecv(_ comm: UnsafeMutableRawPointer?, _ data: UnsafeMutableRawPointer?, _ size: Int,
                      _ mhandle: UnsafeMutableRawPointer?) throws(NCCLCallError) -> UnsafeMutableRawPointer? {
        var req: UnsafeMutableRawPointer?
        var d: UnsafeMutableRawPointer? = data
        var s = size
        var tag: Int32 = 0
        var mh: UnsafeMutableRawPointer? = mhandle
        try check("irecv", try function("irecv", table.pointee.irecv)(comm, 1, &d, &s, &tag, &mh, nil, &req))
        return req
    }

    /// Mirrors `test`: nil while not done, else the size it reports.
    public func test(_ request: UnsafeMutableRawPointer) throws(NCCLCallError) -> Int? {
        var done: Int32 = 0
        var size: Int32 = -1
        try check("test", try function("test", table.pointee.test)(request, &done, &size))
        return done != 0 ? Int(size) : nil
    }

    public func closeSend(_ comm: UnsafeMutableRawPointer?) throws(NCCLCallError) {
        try check("closeSend", try function("closeSend", table.pointee.closeSend)(comm))
    }

    public func closeRecv(_ comm: UnsafeMutableRawPointer?) throws(NCCLCallError) {
        try check("closeRecv", try function("closeRecv", table.pointee.closeRecv)(comm))
    }

    public func closeListen(_ comm: UnsafeMutableRawPointer?) throws(NCCLCallError) {
        try check("closeListen", try function("closeListen", table.pointee.closeListen)(comm))
    }
}

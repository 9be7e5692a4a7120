import CNetmemNCCL
import Glibc

// The plugin's C entry points (declared in CNetmemNCCLExports/include/cnm_nccl_exports.h,
// placed in the exported ncclNetPlugin_v11/_v10/_v9 tables). Each turns its C arguments
// into a call on the comm objects and an `NCCLError` into the result code NCCL expects,
// logging the message. Opaque pointers NCCL holds are the objects themselves: contexts
// and comms retained until finalize/close, requests owned by their comm.

/// Runs `body`, logging and converting an error.
@inline(__always)
private func result(_ context: NCCLContext?, _ what: StaticString, _ body: () throws(NCCLError) -> Void) -> cnm_nccl_result_t {
    do throws(NCCLError) {
        try body()
        return CNM_NCCL_SUCCESS
    } catch {
        context?.log(.warn, "\(what): \(error.message)")
        return error.result
    }
}

private func context(_ p: UnsafeMutableRawPointer?) throws(NCCLError) -> NCCLContext {
    guard let p else { throw NCCLError(.invalidArgument, "NULL plugin context (was init called?)") }
    return Unmanaged<NCCLContext>.fromOpaque(p).takeUnretainedValue()
}

private func comm(_ p: UnsafeMutableRawPointer?) throws(NCCLError) -> NCCLComm {
    guard let p else { throw NCCLError(.invalidArgument, "NULL comm") }
    return Unmanaged<NCCLComm>.fromOpaque(p).takeUnretainedValue()
}

private func checkDevice(_ dev: Int32) throws(NCCLError) {
    guard dev == 0 else { throw NCCLError(.invalidArgument, "device \(dev) does not exist (this plugin reports one device, 0)") }
}

@_cdecl("netmem_nccl_init")
func netmem_nccl_init(_ ctx: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ commId: UInt64,
                      _ config: UnsafeMutablePointer<cnm_nccl_net_comm_config_t>?,
                      _ logger: UnsafeRawPointer?, _ profiler: UnsafeRawPointer?) -> cnm_nccl_result_t {
    do throws(NCCLError) {
        guard let ctx else { throw NCCLError(.invalidArgument, "init without a place for the context") }
        let configuration = try NCCLConfiguration(lookup: NCCLConfiguration.environment)
        let device = try NCCLPlugin.device(selector: configuration.interface)
        let c = NCCLContext(commID: commId, configuration: configuration, device: device, logger: logger)
        ctx.pointee = Unmanaged.passRetained(c).toOpaque()
        c.log(.info, "using \(device.interface) \(device.address.host), \(configuration.sockets) socket(s) per comm, zero-copy sends \(configuration.zeroCopy.rawValue)")
        return CNM_NCCL_SUCCESS
    } catch {
        if let logger { cnm_nccl_log(logger, Int32(CNM_NCCL_LOG_WARN.rawValue), CNM_NCCL_SUBSYS_NET, "netmem", 0, "NET/Netmem init: \(error.message)") }
        return error.result
    }
}

@_cdecl("netmem_nccl_finalize")
func netmem_nccl_finalize(_ ctx: UnsafeMutableRawPointer?) -> cnm_nccl_result_t {
    guard let ctx else { return CNM_NCCL_INVALID_ARGUMENT }
    let c = Unmanaged<NCCLContext>.fromOpaque(ctx).takeRetainedValue()
    let ids = c.pendingConnects.withLockChecked { $0 }
    for id in ids {
        NCCLConnector.pending.withLockChecked { $0[id] }?.abandon()
    }
    return CNM_NCCL_SUCCESS
}

@_cdecl("netmem_nccl_devices")
func netmem_nccl_devices(_ ndev: UnsafeMutablePointer<Int32>?) -> cnm_nccl_result_t {
    result(nil, "devices") { () throws(NCCLError) in
        guard let ndev else { throw NCCLError(.invalidArgument, "devices(NULL)") }
        ndev.pointee = 1
    }
}

@_cdecl("netmem_nccl_get_properties")
func netmem_nccl_get_properties(_ dev: Int32, _ props: UnsafeMutablePointer<cnm_nccl_net_properties_v11_t>?) -> cnm_nccl_result_t {
    result(nil, "getProperties") { () throws(NCCLError) in
        try checkDevice(dev)
        guard let props else { throw NCCLError(.invalidArgument, "getProperties(NULL)") }
        try NCCLPlugin.properties(props)
    }
}

@_cdecl("netmem_nccl_listen")
func netmem_nccl_listen(_ ctx: UnsafeMutableRawPointer?, _ dev: Int32, _ handle: UnsafeMutableRawPointer?,
                        _ listenComm: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> cnm_nccl_result_t {
    let c = try? context(ctx)
    return result(c, "listen") { () throws(NCCLError) in
        let c = try context(ctx)
        try checkDevice(dev)
        guard let handle, let listenComm else { throw NCCLError(.invalidArgument, "listen with a NULL handle or comm") }
        let l = try NCCLListenComm(context: c, handleBytes: handle)
        listenComm.pointee = Unmanaged.passRetained(l).toOpaque()
    }
}

@_cdecl("netmem_nccl_connect")
func netmem_nccl_connect(_ ctx: UnsafeMutableRawPointer?, _ dev: Int32, _ handle: UnsafeMutableRawPointer?,
                         _ sendComm: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                         _ devComm: UnsafeMutablePointer<UnsafeMutablePointer<cnm_nccl_net_device_handle_t>?>?) -> cnm_nccl_result_t {
    let c = try? context(ctx)
    return result(c, "connect") { () throws(NCCLError) in
        let c = try context(ctx)
        try checkDevice(dev)
        guard let handle, let sendComm else { throw NCCLError(.invalidArgument, "connect with a NULL handle or comm") }
        sendComm.pointee = nil
        if let comm = try NCCLConnector.connect(context: c, handleBytes: handle) {
            sendComm.pointee = Unmanaged.passRetained(comm as NCCLComm).toOpaque()
        }
    }
}

@_cdecl("netmem_nccl_accept")
func netmem_nccl_accept(_ listenComm: UnsafeMutableRawPointer?, _ recvComm: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                        _ devComm: UnsafeMutablePointer<UnsafeMutablePointer<cnm_nccl_net_device_handle_t>?>?) -> cnm_nccl_result_t {
    guard let listenComm, let recvComm else { return CNM_NCCL_INVALID_ARGUMENT }
    let l = Unmanaged<NCCLListenComm>.fromOpaque(listenComm).takeUnretainedValue()
    return result(l.context, "accept") { () throws(NCCLError) in
        recvComm.pointee = nil
        if let comm = try l.accept() {
            recvComm.pointee = Unmanaged.passRetained(comm as NCCLComm).toOpaque()
        }
    }
}

@_cdecl("netmem_nccl_close_listen")
func netmem_nccl_close_listen(_ listenComm: UnsafeMutableRawPointer?) -> cnm_nccl_result_t {
    guard let listenComm else { return CNM_NCCL_INVALID_ARGUMENT }
    Unmanaged<NCCLListenComm>.fromOpaque(listenComm).takeRetainedValue().close()
    return CNM_NCCL_SUCCESS
}

@_cdecl("netmem_nccl_reg_mr")
func netmem_nccl_reg_mr(_ commPtr: UnsafeMutableRawPointer?, _ data: UnsafeMutableRawPointer?, _ size: Int,
                        _ type: Int32, _ mhandle: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> cnm_nccl_result_t {
    let c = try? comm(commPtr)
    return result(c?.context, "regMr") { () throws(NCCLError) in
        let c = try comm(commPtr)
        guard let mhandle else { throw NCCLError(.invalidArgument, "regMr without a place for the handle") }
        guard type == Int32(CNM_NCCL_PTR_HOST) else {
            throw NCCLError(.unsupported, "regMr of memory type \(type): this plugin takes host memory (NCCL_PTR_HOST) only")
        }
        guard let data, size > 0 else { throw NCCLError(.invalidArgument, "regMr of \(size) bytes at \(String(describing: data))") }
        let region = NCCLMemoryRegion(base: data, size: size, type: type)
        c.register(region)
        mhandle.pointee = Unmanaged.passRetained(region).toOpaque()
    }
}

@_cdecl("netmem_nccl_reg_mr_dmabuf")
func netmem_nccl_reg_mr_dmabuf(_ commPtr: UnsafeMutableRawPointer?, _ data: UnsafeMutableRawPointer?, _ size: Int,
                               _ type: Int32, _ offset: UInt64, _ fd: Int32,
                               _ mhandle: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> cnm_nccl_result_t {
    let c = try? comm(commPtr)
    return result(c?.context, "regMrDmaBuf") { () throws(NCCLError) in
        throw NCCLError(.unsupported, "regMrDmaBuf: dma-buf memory is not supported yet (ptrSupport is NCCL_PTR_HOST)")
    }
}

@_cdecl("netmem_nccl_dereg_mr")
func netmem_nccl_dereg_mr(_ commPtr: UnsafeMutableRawPointer?, _ mhandle: UnsafeMutableRawPointer?) -> cnm_nccl_result_t {
    let c = try? comm(commPtr)
    return result(c?.context, "deregMr") { () throws(NCCLError) in
        let c = try comm(commPtr)
        guard let mhandle else { throw NCCLError(.invalidArgument, "deregMr(NULL)") }
        let region = Unmanaged<NCCLMemoryRegion>.fromOpaque(mhandle).takeRetainedValue()
        c.deregister(region)
    }
}

private func region(_ p: UnsafeMutableRawPointer?) -> NCCLMemoryRegion? {
    p.map { Unmanaged<NCCLMemoryRegion>.fromOpaque($0).takeUnretainedValue() }
}

@_cdecl("netmem_nccl_isend")
func netmem_nccl_isend(_ sendComm: UnsafeMutableRawPointer?, _ data: UnsafeMutableRawPointer?, _ size: Int, _ tag: Int32,
                       _ mhandle: UnsafeMutableRawPointer?, _ phandle: UnsafeMutableRawPointer?,
                       _ request: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> cnm_nccl_result_t {
    let c = try? comm(sendComm)
    return result(c?.context, "isend") { () throws(NCCLError) in
        guard let s = try comm(sendComm) as? NCCLSendComm else { throw NCCLError(.invalidArgument, "isend on a comm that is not a send comm") }
        guard let request else { throw NCCLError(.invalidArgument, "isend without a place for the request") }
        request.pointee = try s.isend(data: data, size: size, region: region(mhandle))?.opaque
    }
}

@_cdecl("netmem_nccl_irecv")
func netmem_nccl_irecv(_ recvComm: UnsafeMutableRawPointer?, _ n: Int32, _ data: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                       _ sizes: UnsafeMutablePointer<Int>?, _ tags: UnsafeMutablePointer<Int32>?,
                       _ mhandles: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                       _ phandles: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                       _ request: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> cnm_nccl_result_t {
    let c = try? comm(recvComm)
    return result(c?.context, "irecv") { () throws(NCCLError) in
        guard let r = try comm(recvComm) as? NCCLRecvComm else { throw NCCLError(.invalidArgument, "irecv on a comm that is not a receive comm") }
        guard n == 1 else { throw NCCLError(.invalidArgument, "irecv of \(n) buffers (maxRecvs is 1)") }
        guard let request, let data, let sizes else { throw NCCLError(.invalidArgument, "irecv with NULL arguments") }
        request.pointee = try r.irecv(data: data[0], size: sizes[0], region: region(mhandles?[0]))?.opaque
    }
}

@_cdecl("netmem_nccl_iflush")
func netmem_nccl_iflush(_ recvComm: UnsafeMutableRawPointer?, _ n: Int32, _ data: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                        _ sizes: UnsafeMutablePointer<Int32>?, _ mhandles: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                        _ request: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> cnm_nccl_result_t {
    // Host memory needs no flush: the CPU wrote the data, nothing to wait for.
    request?.pointee = nil
    return CNM_NCCL_SUCCESS
}

@_cdecl("netmem_nccl_test")
func netmem_nccl_test(_ requestPtr: UnsafeMutableRawPointer?, _ done: UnsafeMutablePointer<Int32>?,
                      _ sizes: UnsafeMutablePointer<Int32>?) -> cnm_nccl_result_t {
    guard let requestPtr, let done else { return CNM_NCCL_INVALID_ARGUMENT }
    // NCCL polls this in a tight loop: no reference counting on the way.
    return Unmanaged<NCCLRequest>.fromOpaque(requestPtr)._withUnsafeGuaranteedRef { r in
        test(r, done, sizes)
    }
}

private func test(_ r: NCCLRequest, _ done: UnsafeMutablePointer<Int32>, _ sizes: UnsafeMutablePointer<Int32>?) -> cnm_nccl_result_t {
    done.pointee = 0
    switch NCCLRequest.State(rawValue: r.state.load(ordering: .acquiring)) {
    case .done:
        done.pointee = 1
        sizes?.pointee = Int32(r.size)
        r.state.store(NCCLRequest.State.free.rawValue, ordering: .releasing)
        return CNM_NCCL_SUCCESS
    case .failed:
        let e = r.error ?? NCCLError(.remote, "request failed")
        r.state.store(NCCLRequest.State.free.rawValue, ordering: .releasing)
        r.comm.context.log(.warn, "test: \(e.message)")
        return e.result
    case .posted, .failing:
        do throws(NCCLError) {
            try r.comm.progress()
        } catch {
            // The comm failed: this request failed with it (reported on this call).
            if r.state.load(ordering: .acquiring) == NCCLRequest.State.failed.rawValue {
                return test(r, done, sizes)
            }
        }
        return CNM_NCCL_SUCCESS
    case .free, nil:
        r.comm.context.log(.warn, "test on a request that is not in flight (tested after it completed?)")
        return CNM_NCCL_INVALID_ARGUMENT
    }
}

@_cdecl("netmem_nccl_close_send")
func netmem_nccl_close_send(_ sendComm: UnsafeMutableRawPointer?) -> cnm_nccl_result_t {
    guard let sendComm else { return CNM_NCCL_INVALID_ARGUMENT }
    let c = Unmanaged<NCCLComm>.fromOpaque(sendComm).takeRetainedValue()
    guard let s = c as? NCCLSendComm else { return CNM_NCCL_INVALID_ARGUMENT }
    s.close()
    return CNM_NCCL_SUCCESS
}

@_cdecl("netmem_nccl_close_recv")
func netmem_nccl_close_recv(_ recvComm: UnsafeMutableRawPointer?) -> cnm_nccl_result_t {
    guard let recvComm else { return CNM_NCCL_INVALID_ARGUMENT }
    let c = Unmanaged<NCCLComm>.fromOpaque(recvComm).takeRetainedValue()
    guard let r = c as? NCCLRecvComm else { return CNM_NCCL_INVALID_ARGUMENT }
    r.close()
    return CNM_NCCL_SUCCESS
}

@_cdecl("netmem_nccl_get_device_mr")
func netmem_nccl_get_device_mr(_ comm: UnsafeMutableRawPointer?, _ mhandle: UnsafeMutableRawPointer?,
                               _ dptr: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> cnm_nccl_result_t {
    // Only called for device offload (netDeviceType UNPACK), which this build does not report.
    dptr?.pointee = nil
    return CNM_NCCL_INTERNAL_ERROR
}

@_cdecl("netmem_nccl_irecv_consumed")
func netmem_nccl_irecv_consumed(_ recvComm: UnsafeMutableRawPointer?, _ n: Int32, _ request: UnsafeMutableRawPointer?) -> cnm_nccl_result_t {
    // Device offload only: host receives are consumed when `test` reports them.
    CNM_NCCL_INTERNAL_ERROR
}

@_cdecl("netmem_nccl_statistics_json")
func netmem_nccl_statistics_json(_ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int) -> Int {
    let text = NCCLStatistics.shared.json
    let utf8 = Array(text.utf8)
    if let buffer, capacity > 0 {
        let n = min(utf8.count, capacity - 1)
        for i in 0..<n { buffer[i] = CChar(bitPattern: utf8[i]) }
        buffer[n] = 0
    }
    return utf8.count
}

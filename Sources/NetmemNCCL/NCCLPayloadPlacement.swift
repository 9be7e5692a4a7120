import CNetmemNCCL

/// Where the payload of a received piece goes. The host path (`NCCLHostCopy`, the only
/// one today) copies it into the buffer NCCL posted. A device path (NCCL's device unpack,
/// `netDeviceType` UNPACK) would leave the payload where it landed in a bound region and
/// record each piece's region offset and token in the request for NCCL's unpack kernel,
/// giving the tokens back on `irecvConsumed`; it needs the receive engine to hand over
/// the received segment instead of lending its bytes.
protocol NCCLPayloadPlacement: Sendable {
    /// Puts `bytes` at `offset` of the message `request` receives (receive thread).
    func place(_ bytes: UnsafeRawBufferPointer, into request: NCCLRequest, at offset: Int)
    /// Whether a payload may be received straight into the request's buffer instead (the
    /// receive engine's placement), skipping the pool and the copy.
    var receivesInPlace: Bool { get }
}

/// The host-memory path: a copy into NCCL's buffer with streaming stores (the buffer is
/// read next by NCCL's copy to the GPU, not by this core).
struct NCCLHostCopy: NCCLPayloadPlacement {
    var receivesInPlace: Bool { true }

    func place(_ bytes: UnsafeRawBufferPointer, into request: NCCLRequest, at offset: Int) {
        guard bytes.count > 0 else { return }
        cnm_nccl_copy_streaming(request.data! + offset, bytes.baseAddress!, bytes.count)
    }
}

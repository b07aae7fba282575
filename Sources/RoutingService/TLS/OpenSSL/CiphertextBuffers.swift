internal import COpenSSL
import NIOCore

/// Where a connection's BIO reads ciphertext from and writes ciphertext to: NIO `ByteBuffer`s, held
/// only while they have bytes in them.
///
/// Why not two `BIO_s_mem`: a memory BIO keeps its largest buffer for the life of the connection (about
/// 1.8 KiB per idle connection after the handshake, plus two BIO objects and their locks), and every
/// byte is copied into it and out again. Here the bytes NIO read are handed to OpenSSL from the read
/// buffer itself, the records OpenSSL writes land directly in the buffer that goes to the socket, and
/// an idle connection holds neither.
final class CiphertextBuffers {
    /// Ciphertext fed and not yet consumed by OpenSSL; nil once drained, so NIO's receive buffer is
    /// not kept alive (nor copied on its next read) by a reference from here.
    private var inbound: ByteBuffer?
    /// Ciphertext OpenSSL wrote and the caller has not taken yet.
    private var outbound: ByteBuffer?
    /// The event loop's spare buffers, when the connection has one (the gateway's listeners); else
    /// buffers come from NIO's default allocator (not stored: its four function pointers are 32 bytes
    /// that every connection would hold).
    private let recycler: ByteBufferRecycler?

    /// A flight or a record written into a fresh outbound buffer reserves at least this, so the few
    /// records of a handshake flight do not each grow the buffer.
    private static let minimumOutboundCapacity = 1024

    init(recycler: ByteBufferRecycler?) {
        self.recycler = recycler
    }

    var inboundBytes: Int { inbound?.readableBytes ?? 0 }
    /// Whether every byte fed was consumed (nothing fed is still held).
    var isInboundDrained: Bool { inbound == nil }
    var outboundBytes: Int { outbound?.readableBytes ?? 0 }

    func feed(_ ciphertext: ByteBuffer) {
        guard ciphertext.readableBytes > 0 else { return }
        if inbound == nil {
            inbound = ciphertext
        } else {
            var more = ciphertext
            inbound!.writeBuffer(&more)
        }
    }

    func takeOutbound() -> ByteBuffer? {
        defer { outbound = nil }
        return outbound
    }

    /// OpenSSL reads: copies up to `target.count` bytes; 0 when nothing is waiting.
    fileprivate func readInbound(into target: UnsafeMutableRawBufferPointer) -> Int {
        guard inbound != nil else { return 0 }
        let copied = inbound!.readWithUnsafeReadableBytes { source in
            let count = min(source.count, target.count)
            target.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: count)
            return count
        }
        if inbound!.readableBytes == 0 { inbound = nil }
        return copied
    }

    /// OpenSSL writes: appends the record bytes.
    fileprivate func writeOutbound(_ bytes: UnsafeRawBufferPointer) {
        if outbound == nil {
            let capacity = max(bytes.count, Self.minimumOutboundCapacity)
            outbound = recycler?.buffer(capacity: capacity) ?? ByteBufferAllocator().buffer(capacity: capacity)
        }
        outbound!.writeBytes(bytes)
    }

    /// A BIO over these buffers (one for both directions), for `SSL_set_bio(ssl, bio, bio)`.
    /// It points at `self` unretained: the owner of the `SSL*` must keep `self` alive as long.
    func makeBIO() -> OpaquePointer? {
        guard let method = ByteBufferBIOMethod.shared.method, let bio = BIO_new(method) else { return nil }
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())
        BIO_set_init(bio, 1)
        return bio
    }

    /// The buffers behind `bio`, or `otherwise` when it has none. OpenSSL calls the BIO only from inside
    /// the connection's calls, while the connection holds its buffers: they are used without a retain and
    /// release per call.
    fileprivate static func with<Result>(
        _ bio: OpaquePointer, otherwise: Result, _ body: (CiphertextBuffers) -> Result
    ) -> Result {
        guard let data = BIO_get_data(bio) else { return otherwise }
        return Unmanaged<CiphertextBuffers>.fromOpaque(data)._withUnsafeGuaranteedRef(body)
    }
}

@available(*, unavailable)
extension CiphertextBuffers: Sendable {}

/// The BIO method, made once per process (`BIO_METHOD` is immutable once set up, so sharing it is safe).
private final class ByteBufferBIOMethod: @unchecked Sendable {
    static let shared = ByteBufferBIOMethod()
    let method: OpaquePointer?

    private init() {
        guard let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "edge-router ciphertext buffers")
        else {
            self.method = nil
            return
        }
        _ = BIO_meth_set_write_ex(method, writeCiphertext)
        _ = BIO_meth_set_read_ex(method, readCiphertext)
        _ = BIO_meth_set_ctrl(method, controlCiphertextBIO)
        _ = BIO_meth_set_destroy(method, destroyCiphertextBIO)
        self.method = method
    }
}

private func readCiphertext(
    _ bio: OpaquePointer?,
    _ data: UnsafeMutablePointer<CChar>?,
    _ size: Int,
    _ readBytes: UnsafeMutablePointer<Int>?
) -> Int32 {
    guard let bio, let data, let readBytes else { return 0 }
    let copied = CiphertextBuffers.with(bio, otherwise: -1) {
        $0.readInbound(into: UnsafeMutableRawBufferPointer(start: data, count: size))
    }
    guard copied >= 0 else { return 0 }
    CO_BIO_clear_retry_flags(bio)
    readBytes.pointee = copied
    guard copied > 0 else {
        // Nothing yet: "try again later", never end of file (the peer's closing is seen by NIO).
        CO_BIO_set_retry_read(bio)
        return 0
    }
    return 1
}

private func writeCiphertext(
    _ bio: OpaquePointer?,
    _ data: UnsafePointer<CChar>?,
    _ size: Int,
    _ writtenBytes: UnsafeMutablePointer<Int>?
) -> Int32 {
    guard let bio, let data, let writtenBytes else { return 0 }
    let hasBuffers = CiphertextBuffers.with(bio, otherwise: false) {
        $0.writeOutbound(UnsafeRawBufferPointer(start: data, count: size))
        return true
    }
    guard hasBuffers else { return 0 }
    CO_BIO_clear_retry_flags(bio)
    writtenBytes.pointee = size
    return 1
}

private func controlCiphertextBIO(
    _ bio: OpaquePointer?,
    _ command: Int32,
    _ argument: Int,
    _ pointer: UnsafeMutableRawPointer?
) -> Int {
    guard let bio else { return 0 }
    switch command {
    case BIO_CTRL_FLUSH:
        // Written records are already in the outbound buffer; the handler writes them to the socket.
        return 1
    case BIO_CTRL_PENDING:
        return CiphertextBuffers.with(bio, otherwise: 0) { $0.inboundBytes }
    case BIO_CTRL_WPENDING:
        return CiphertextBuffers.with(bio, otherwise: 0) { $0.outboundBytes }
    case BIO_CTRL_GET_CLOSE:
        return Int(BIO_get_shutdown(bio))
    case BIO_CTRL_SET_CLOSE:
        BIO_set_shutdown(bio, Int32(truncatingIfNeeded: argument))
        return 1
    default:
        // Everything else (EOF, kTLS, push/pop, dup) is not supported by a buffer pair.
        return 0
    }
}

private func destroyCiphertextBIO(_ bio: OpaquePointer?) -> Int32 {
    // The buffers belong to the connection, not to the BIO: only forget them.
    if let bio {
        BIO_set_data(bio, nil)
        BIO_set_init(bio, 0)
    }
    return 1
}

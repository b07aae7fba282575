internal import COpenSSL

/// Memory BIOs for moving PEM text in and out of OpenSSL. Each BIO lives only inside the closure.
enum PEMBIO {
    /// Runs `body` with a read-only BIO over `bytes`; the bytes are not copied and must outlive the BIO,
    /// which the closure scope guarantees.
    static func reading<Result>(_ bytes: [UInt8], _ body: (OpaquePointer) throws -> Result) throws -> Result {
        guard bytes.count <= Int(Int32.max) else {
            throw X509Error(.encodingFailed, "the PEM input is too large (\(bytes.count) bytes)")
        }
        return try bytes.withUnsafeBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else {
                throw X509Error.draining(.encodingFailed, "cannot allocate a memory BIO")
            }
            defer { BIO_free(bio) }
            return try body(bio)
        }
    }

    /// Runs `write` on an empty memory BIO (it returns OpenSSL's 1-for-success) and returns what it wrote.
    static func writing(_ what: String, _ write: (OpaquePointer) -> Int32) throws -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else {
            throw X509Error.draining(.encodingFailed, "cannot allocate a memory BIO")
        }
        defer { BIO_free(bio) }
        X509ErrorQueue.clear()
        guard write(bio) == 1 else {
            throw X509Error.draining(.encodingFailed, "cannot encode \(what) as PEM")
        }
        var data: UnsafeMutablePointer<CChar>?
        let length = CO_BIO_get_mem_data(bio, &data)
        guard let data, length > 0 else { return [] }
        return data.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    }
}

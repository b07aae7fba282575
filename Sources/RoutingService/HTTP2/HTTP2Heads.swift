import NIOCore

/// One regular header of an HTTP/2 request, as offsets into its head's `block`.
struct HTTP2HeaderField {
    var name: Range<Int>
    var value: Range<Int>
    /// Classified like an HTTP/1 name (HTTP/2 names are lower case).
    var kind: HTTP1HeaderName
    var isCookie: Bool
}

/// An HTTP/2 request's header block as received: every name and value copied back to back into
/// `block` (nghttp2 hands them over one by one and forgets them), pseudo-headers picked out.
struct HTTP2RequestHead {
    var block: ByteBuffer
    var fields: [HTTP2HeaderField] = []
    var method: Range<Int>?
    var path: Range<Int>?
    var authority: Range<Int>?
    var scheme: Range<Int>?
    /// The `host` header's value (the authority when `:authority` is absent).
    var host: Range<Int>?
    /// More header bytes came than `HTTPFrontConfiguration.maximumHeaderBytes`: the rest were dropped
    /// and the request is answered 431.
    var isOversized = false

    init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.init(block: allocator.buffer(capacity: 256))
    }

    /// A head whose bytes go into `block`, an empty buffer, and whose fields into `fields`, an empty list
    /// (both taken over: kept by the caller too, the first write would copy them).
    init(block empty: consuming ByteBuffer, fields emptyFields: consuming [HTTP2HeaderField] = []) {
        block = consume empty
        fields = consume emptyFields
        // Room for a client's usual fields in one allocation, not one per doubling.
        fields.reserveCapacity(16)
    }

    /// Appends one header (name lower case, as HTTP/2 requires and nghttp2 checks).
    mutating func append(name: some Collection<UInt8>, value: some Collection<UInt8>) {
        guard !isOversized else { return }
        guard block.readableBytes + name.count + value.count <= HTTPFrontConfiguration.maximumHeaderBytes else {
            isOversized = true
            return
        }
        let nameStart = block.writerIndex
        block.writeBytes(name)
        let valueStart = block.writerIndex
        block.writeBytes(value)
        let nameRange = (nameStart - block.readerIndex)..<(valueStart - block.readerIndex)
        let valueRange = (valueStart - block.readerIndex)..<(block.writerIndex - block.readerIndex)
        if name.first == UInt8(ascii: ":") {
            // Compared as bytes: no string per pseudo-header of every stream.
            block.withUnsafeReadableBytes { raw in
                if HTTP1Bytes.equalsLowercased(raw, nameRange, ":method") {
                    method = valueRange
                    parsedMethod = HTTP1HeadParser.method(raw, valueRange)
                } else if HTTP1Bytes.equalsLowercased(raw, nameRange, ":path") {
                    path = valueRange
                } else if HTTP1Bytes.equalsLowercased(raw, nameRange, ":authority") {
                    authority = valueRange
                } else if HTTP1Bytes.equalsLowercased(raw, nameRange, ":scheme") {
                    scheme = valueRange
                }
                // `:protocol` (extended CONNECT) is not served.
            }
            return
        }
        let (kind, isCookie) = block.withUnsafeReadableBytes { raw in
            (HTTP1HeaderName.classify(raw, nameRange), HTTP1Bytes.equalsLowercased(raw, nameRange, "cookie"))
        }
        if kind == .host, host == nil { host = valueRange }
        fields.append(HTTP2HeaderField(name: nameRange, value: valueRange, kind: kind, isCookie: isCookie))
    }

    func text(_ range: Range<Int>) -> String {
        block.getString(at: block.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    /// `:authority`, else `host` (RFC 9113 §8.3.1): the Host the request is routed by.
    // Not `.map(text)`: the partially applied method boxes a copy of the head, an allocation per call.
    var hostText: String? {
        guard let range = authority ?? host else { return nil }
        return text(range)
    }
    var methodText: String {
        guard let method else { return "-" }
        return text(method)
    }
    var pathText: String {
        guard let path else { return "-" }
        return text(path)
    }

    private(set) var parsedMethod = HTTP1Method.other

    /// The value of a `content-length` header, if there is exactly one valid one.
    var contentLength: Int? {
        // A loop rather than filter and map: no intermediate arrays, asked once or twice per stream.
        var first: String?
        for field in fields where field.kind == .contentLength {
            let value = text(field.value)
            if let first {
                guard value == first else { return nil }
            } else {
                first = value
            }
        }
        return first.flatMap { Int($0) }
    }
}

/// A response head for an HTTP/2 stream: the status and lower-case fields, as offsets into `block`.
struct HTTP2ResponseHead {
    /// `:status` and its three digits first (so one buffer holds every byte of the header list),
    /// then names and values back to back.
    var block: ByteBuffer
    var fields: [(name: Range<Int>, value: Range<Int>)] = []
    let status: Int

    init(status: Int, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.init(status: status, block: allocator.buffer(capacity: 256))
    }

    /// A head whose bytes go into `block`, an empty buffer (taken over: kept by the caller too, the
    /// writes here would copy it).
    init(status: Int, block empty: consuming ByteBuffer) {
        precondition((100...999).contains(status), "an HTTP status has three digits")
        self.status = status
        block = consume empty
        block.writeStaticString(":status")
        // Three digits, written as bytes (no String per response).
        block.writeMultipleIntegers(
            UInt8(ascii: "0") + UInt8(status / 100), UInt8(ascii: "0") + UInt8(status / 10 % 10),
            UInt8(ascii: "0") + UInt8(status % 10)
        )
    }

    static let statusName = 0..<7
    static let statusValue = 7..<10

    mutating func append(name: StaticString, value: String) {
        append(name: name) { $0.writeString(value) }
    }

    /// Appends `name` and the value `writeValue` writes straight into the block.
    mutating func append(name: StaticString, writingValue writeValue: (inout ByteBuffer) -> Void) {
        let start = block.writerIndex - block.readerIndex
        block.writeStaticString(name)
        let middle = block.writerIndex - block.readerIndex
        writeValue(&block)
        fields.append((start..<middle, middle..<(block.writerIndex - block.readerIndex)))
    }

    /// Appends a name lower-cased and a value as they are, from an HTTP/1 head's bytes.
    mutating func append(lowercasing name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let start = block.writerIndex - block.readerIndex
        // One write for the whole name (a write per byte checked capacity and uniqueness per byte).
        block.writeWithUnsafeMutableBytes(minimumWritableBytes: name.count) { target in
            for (index, byte) in name.enumerated() {
                target[index] = (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte | 0x20 : byte
            }
            return name.count
        }
        let middle = block.writerIndex - block.readerIndex
        block.writeBytes(value)
        fields.append((start..<middle, middle..<(block.writerIndex - block.readerIndex)))
    }

    /// For tests and logs: the fields as text.
    var textFields: [(String, String)] {
        fields.map { field in
            (
                block.getString(at: block.readerIndex + field.name.lowerBound, length: field.name.count) ?? "",
                block.getString(at: block.readerIndex + field.value.lowerBound, length: field.value.count) ?? ""
            )
        }
    }
}

/// Follows a chunked body (RFC 9112 §7.1) byte by byte to find where it ends, without copying it.
///
/// The proxy forwards chunked bodies as the bytes they arrived as; this scanner only has to know
/// where the message ends (the next request or response starts right after) and, for an HTTP/1.0
/// client that cannot take chunked, which ranges are payload. Strict: a malformed size line or a
/// missing CRLF after a chunk is an error, never a guess.
struct ChunkedBodyScanner {
    private enum State {
        case size(digits: UInt8)
        case extensionBytes
        case sizeLineFeed
        case data
        case dataCarriageReturn
        case dataLineFeed
        /// After the last chunk: at the start of a trailer line (or of the final blank line).
        case trailerLineStart
        case trailerLine
        case trailerLineFeed
        case finalLineFeed
        case done
    }

    /// The largest chunk accepted: 2^60 keeps the arithmetic far from overflow.
    private static let maximumSizeDigits: UInt8 = 15

    // The words first and the state (two bytes) last: a front handler holds one while it discards a body,
    // in its state's payload, idle or not.
    private var chunkSize = 0
    private var remaining = 0
    private var state = State.size(digits: 0)

    var isFinished: Bool {
        if case .done = state { return true }
        return false
    }

    /// Scans `bytes` up to the end of the body. Returns how many bytes belong to the body (all of them
    /// unless it ended inside `bytes`); `payload` gets the chunk data ranges within them.
    mutating func scan(_ bytes: UnsafeRawBufferPointer, payload: (Range<Int>) -> Void = { _ in }) throws(HTTP1ParseError) -> Int {
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            switch state {
            case .size(let digits):
                if let value = Self.hexValue(byte) {
                    guard digits < Self.maximumSizeDigits else { throw .malformed("chunk size too large") }
                    chunkSize = chunkSize << 4 | value
                    state = .size(digits: digits + 1)
                } else if digits > 0 && byte == HTTP1Bytes.cr {
                    state = .sizeLineFeed
                } else if digits > 0 && (byte == UInt8(ascii: ";") || byte == HTTP1Bytes.space || byte == HTTP1Bytes.tab) {
                    state = .extensionBytes
                } else {
                    throw .malformed("invalid chunk size in a chunked body")
                }
                index += 1
            case .extensionBytes:
                if byte == HTTP1Bytes.cr {
                    state = .sizeLineFeed
                } else if !HTTP1Bytes.isFieldValueByte(byte) {
                    throw .malformed("invalid chunk extension in a chunked body")
                }
                index += 1
            case .sizeLineFeed:
                guard byte == HTTP1Bytes.lf else { throw .malformed("invalid chunk size line in a chunked body") }
                index += 1
                if chunkSize == 0 {
                    state = .trailerLineStart
                } else {
                    remaining = chunkSize
                    state = .data
                }
            case .data:
                let take = min(remaining, count - index)
                payload(index..<(index + take))
                remaining -= take
                index += take
                if remaining == 0 { state = .dataCarriageReturn }
            case .dataCarriageReturn:
                guard byte == HTTP1Bytes.cr else { throw .malformed("missing CRLF after a chunk") }
                state = .dataLineFeed
                index += 1
            case .dataLineFeed:
                guard byte == HTTP1Bytes.lf else { throw .malformed("missing CRLF after a chunk") }
                chunkSize = 0
                state = .size(digits: 0)
                index += 1
            case .trailerLineStart:
                state = byte == HTTP1Bytes.cr ? .finalLineFeed : .trailerLine
                if byte != HTTP1Bytes.cr && !HTTP1Bytes.isToken(byte) { throw .malformed("malformed trailer section") }
                index += 1
            case .trailerLine:
                if byte == HTTP1Bytes.cr {
                    state = .trailerLineFeed
                } else if !HTTP1Bytes.isFieldValueByte(byte) {
                    throw .malformed("malformed trailer section")
                }
                index += 1
            case .trailerLineFeed:
                guard byte == HTTP1Bytes.lf else { throw .malformed("malformed trailer section") }
                state = .trailerLineStart
                index += 1
            case .finalLineFeed:
                guard byte == HTTP1Bytes.lf else { throw .malformed("malformed end of a chunked body") }
                state = .done
                return index + 1
            case .done:
                return index
            }
        }
        return index
    }

    @inline(__always)
    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}

/// Where a body stands while its bytes pass through: how the next bytes are delimited.
struct HTTP1BodyProgress {
    private enum Mode {
        case length(remaining: Int)
        case chunked(ChunkedBodyScanner)
        case untilClose
        case finished
    }

    private var mode: Mode

    init(_ framing: HTTP1BodyFraming) {
        switch framing {
        case .none: mode = .finished
        case .length(let count): mode = count > 0 ? .length(remaining: count) : .finished
        case .chunked: mode = .chunked(ChunkedBodyScanner())
        case .untilClose: mode = .untilClose
        }
    }

    var isFinished: Bool {
        if case .finished = mode { return true }
        return false
    }

    /// The sender's close ends this body.
    var isDelimitedByClose: Bool {
        if case .untilClose = mode { return true }
        return false
    }

    /// How many of `bytes` belong to this body; after the call `isFinished` says whether it ended there.
    /// `payload` gets the data ranges (for a chunked body, the chunk contents only).
    mutating func consume(_ bytes: UnsafeRawBufferPointer, payload: (Range<Int>) -> Void = { _ in }) throws(HTTP1ParseError) -> Int {
        switch mode {
        case .length(let remaining):
            let take = min(remaining, bytes.count)
            if take > 0 { payload(0..<take) }
            mode = take == remaining ? .finished : .length(remaining: remaining - take)
            return take
        case .chunked(var scanner):
            let taken = try scanner.scan(bytes, payload: payload)
            mode = scanner.isFinished ? .finished : .chunked(scanner)
            return taken
        case .untilClose:
            if !bytes.isEmpty { payload(0..<bytes.count) }
            return bytes.count
        case .finished:
            return 0
        }
    }
}

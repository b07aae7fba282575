import NIOHTTP1

extension HTTPParserError {
    /// The status a client gets for this parse failure: 431 for an oversized header section, else 400.
    var responseStatus: HTTPResponseStatus {
        self == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
    }

    /// A short reason for the response body and the access log.
    var clientReason: String {
        switch self {
        case .headerOverflow:
            return "the request header section is larger than \(HTTPFrontConfiguration.maximumHeaderBytes / 1024) KiB"
        case .invalidChunkSize: return "invalid chunk size in a chunked body"
        case .invalidContentLength: return "invalid Content-Length"
        case .unexpectedContentLength:
            return "conflicting message framing (Content-Length with Transfer-Encoding, or repeated Content-Length)"
        case .invalidMethod: return "invalid request method"
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
            return "invalid request target"
        case .invalidVersion: return "invalid HTTP version in the request line"
        case .invalidHeaderToken: return "invalid character in a header field"
        case .lfExpected, .invalidConstant, .invalidCharactersUsed, .strictModeAssertion:
            return "malformed request line or header"
        default:
            // llhttp reports conflicting Content-Length/Transfer-Encoding and some framing errors only as "unknown".
            return "malformed request (syntax or conflicting message framing)"
        }
    }
}

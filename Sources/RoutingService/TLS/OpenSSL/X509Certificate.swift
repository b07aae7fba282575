internal import COpenSSL
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One parsed X.509 certificate. Owns its `X509*`; every fact is read once at parse time into Swift values,
/// so reading them later touches no C and the object can be shared across threads.
public final class X509Certificate: @unchecked Sendable {
    /// DNS names from the subjectAltName extension, in certificate order, lower-cased.
    public let subjectAlternativeDNSNames: [String]
    /// IP addresses from the subjectAltName extension, in textual form (`127.0.0.1`, `::1`).
    public let subjectAlternativeIPAddresses: [String]
    public let commonName: String?
    /// The subject, one line, most specific first: `CN=app.example.com, O=Example`.
    public let subject: String
    /// The issuer, one line, most specific first: `CN=R11, O=Let's Encrypt, C=US`.
    public let issuer: String
    /// Upper-case hexadecimal, no separators.
    public let serialNumberHex: String
    public let notBefore: Date
    public let notAfter: Date
    /// This certificate alone, PEM encoded.
    public let pem: [UInt8]

    /// The owned `X509*`, for building TLS contexts in this folder only: it must not leave `TLS/OpenSSL/`.
    let x509: OpaquePointer

    /// Takes ownership of `x509` (freed in deinit, also when reading a fact fails).
    private init(taking x509: OpaquePointer) throws {
        self.x509 = x509
        do {
            let alternativeNames = Self.readSubjectAlternativeNames(x509)
            subjectAlternativeDNSNames = alternativeNames.dns
            subjectAlternativeIPAddresses = alternativeNames.ip
            commonName = Self.readCommonName(x509)
            subject = Self.readableName(X509_get_subject_name(x509))
            issuer = Self.readableName(X509_get_issuer_name(x509))
            serialNumberHex = try Self.readSerialNumber(x509)
            notBefore = try Self.readTime(X509_get0_notBefore(x509), field: "notBefore")
            notAfter = try Self.readTime(X509_get0_notAfter(x509), field: "notAfter")
            pem = try PEMBIO.writing("a certificate") { PEM_write_bio_X509($0, x509) }
        } catch {
            X509_free(x509)
            throw error
        }
    }

    deinit {
        X509_free(x509)
    }

    /// Every certificate in `pem`, in file order (for a served chain: leaf first). Blocks of other kinds
    /// (a private key in the same file) are skipped; a certificate block that cannot be read is an error,
    /// never silently dropped.
    public static func parseChain(pem: [UInt8]) throws -> [X509Certificate] {
        X509ErrorQueue.clear()
        let certificates = try PEMBIO.reading(pem) { bio in
            var certificates: [X509Certificate] = []
            while true {
                guard let x509 = PEM_read_bio_X509(bio, nil, nil, nil) else {
                    if X509ErrorQueue.lastErrorIsNoStartLine() {
                        X509ErrorQueue.clear()
                        break
                    }
                    throw X509Error.draining(
                        .malformedCertificatePEM,
                        "certificate \(certificates.count + 1) in the PEM cannot be read"
                    )
                }
                certificates.append(try X509Certificate(taking: x509))
            }
            return certificates
        }
        guard !certificates.isEmpty else {
            throw X509Error(.noCertificateInPEM, "no certificate in the PEM (expected a -----BEGIN CERTIFICATE----- block)")
        }
        // OpenSSL reports a block cut short at the end of the input like the end of the input itself, so count
        // the markers to be sure none was lost.
        let markers = pem.occurrences(of: Array("-----BEGIN CERTIFICATE-----".utf8))
        guard markers == certificates.count else {
            throw X509Error(
                .malformedCertificatePEM,
                "the PEM has \(markers) certificate blocks but only \(certificates.count) could be read"
            )
        }
        return certificates
    }

    /// True when `issuer`'s subject and key identifiers match this certificate's issuer (OpenSSL's
    /// `X509_check_issued`): `issuer` is the next certificate of a well-ordered chain.
    public func isIssued(by issuer: X509Certificate) -> Bool {
        let result = X509_check_issued(issuer.x509, x509)
        X509ErrorQueue.clear()
        return result == X509_V_OK
    }

    /// True when the certificate's not-before/not-after window contains `date`.
    public func isValid(at date: Date) -> Bool {
        notBefore <= date && date <= notAfter
    }

    // MARK: - Reading facts

    private static func readSubjectAlternativeNames(_ x509: OpaquePointer) -> (dns: [String], ip: [String]) {
        guard let raw = X509_get_ext_d2i(x509, NID_subject_alt_name, nil, nil) else {
            X509ErrorQueue.clear()
            return ([], [])
        }
        let names = OpaquePointer(raw)
        defer { CO_GENERAL_NAMES_free(names) }
        var dns: [String] = []
        var ip: [String] = []
        for index in 0..<CO_sk_GENERAL_NAME_num(names) {
            guard let name = CO_sk_GENERAL_NAME_value(names, index) else { continue }
            switch name.pointee.type {
            case GEN_DNS:
                if let value = name.pointee.d.dNSName { dns.append(string(value).lowercased()) }
            case GEN_IPADD:
                if let value = name.pointee.d.iPAddress, let text = ipAddressText(bytes(value)) { ip.append(text) }
            default:
                continue
            }
        }
        return (dns, ip)
    }

    private static func readCommonName(_ x509: OpaquePointer) -> String? {
        guard let subject = X509_get_subject_name(x509) else { return nil }
        let index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(subject, index),
              let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        return utf8(data)
    }

    /// `CN=…, O=…, C=…`: RFC 4514 order (most specific first), short attribute names, UTF-8 values.
    private static func readableName(_ name: OpaquePointer?) -> String {
        guard let name else { return "" }
        var parts: [String] = []
        for index in (0..<X509_NAME_entry_count(name)).reversed() {
            guard let entry = X509_NAME_get_entry(name, index),
                  let data = X509_NAME_ENTRY_get_data(entry) else { continue }
            let nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry))
            let key = OBJ_nid2sn(nid).map { String(cString: $0) } ?? "OID"
            parts.append("\(key)=\(utf8(data) ?? "?")")
        }
        return parts.joined(separator: ", ")
    }

    private static func readSerialNumber(_ x509: OpaquePointer) throws -> String {
        guard let serial = X509_get0_serialNumber(x509), let number = ASN1_INTEGER_to_BN(serial, nil) else {
            throw X509Error.draining(.malformedCertificatePEM, "the certificate's serial number cannot be read")
        }
        defer { BN_free(number) }
        guard let hex = BN_bn2hex(number) else {
            throw X509Error.draining(.encodingFailed, "the certificate's serial number cannot be printed")
        }
        defer { CO_OPENSSL_free(hex) }
        return String(cString: hex)
    }

    private static func readTime(_ time: UnsafePointer<ASN1_TIME>?, field: String) throws -> Date {
        var parts = tm()
        guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else {
            throw X509Error.draining(.malformedCertificatePEM, "the certificate's \(field) date cannot be read")
        }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }

    // MARK: - ASN1_STRING helpers

    private static func bytes(_ string: UnsafePointer<ASN1_STRING>) -> [UInt8] {
        let length = Int(ASN1_STRING_length(string))
        guard length > 0, let data = ASN1_STRING_get0_data(string) else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: length))
    }

    private static func string(_ string: UnsafePointer<ASN1_STRING>) -> String {
        String(decoding: bytes(string), as: UTF8.self)
    }

    /// Any ASN.1 string type (BMPString, T61String, …) converted to UTF-8.
    private static func utf8(_ string: UnsafePointer<ASN1_STRING>) -> String? {
        var output: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&output, string)
        guard length >= 0, let output else {
            X509ErrorQueue.clear()
            return nil
        }
        defer { CO_OPENSSL_free(output) }
        return String(decoding: UnsafeBufferPointer(start: output, count: Int(length)), as: UTF8.self)
    }

    private static func ipAddressText(_ bytes: [UInt8]) -> String? {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return nil
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let converted = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        guard converted != nil else { return nil }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    /// How many times `needle` occurs, not overlapping.
    fileprivate func occurrences(of needle: [UInt8]) -> Int {
        guard !needle.isEmpty, count >= needle.count else { return 0 }
        var found = 0
        var index = 0
        while index <= count - needle.count {
            if self[index..<(index + needle.count)].elementsEqual(needle) {
                found += 1
                index += needle.count
            } else {
                index += 1
            }
        }
        return found
    }
}

extension DomainName {
    /// Why this is not a usable public name, or nil: labels of a–z, 0–9 and `-` (not at either end),
    /// at most 63 characters each and 253 in all; a wildcard only as a whole leftmost `*.` label with at
    /// least two labels after it (`*.example.com`, never `*.com` or `a*.example.com`).
    public var syntaxProblem: String? {
        if value.isEmpty { return "the name is empty" }
        if isWildcard {
            let parent = String(value.dropFirst(2))
            if parent.contains("*") { return "\"\(value)\": a wildcard may only be the whole leftmost label" }
            if let problem = AddressSyntax.hostnameProblem(parent) { return problem }
            if parent.split(separator: ".").count < 2 {
                return "\"\(value)\": a wildcard needs at least two labels after \"*.\" (e.g. *.example.com)"
            }
            return nil
        }
        if value.contains("*") {
            return "\"\(value)\": a wildcard may only be the whole leftmost label, as in *.example.com"
        }
        if AddressSyntax.isIPv4(value) || AddressSyntax.isIPv6(value) {
            return "\"\(value)\" is an IP address; domains are names (SNI carries names only)"
        }
        if let problem = AddressSyntax.hostnameProblem(value) { return problem }
        if let last = value.split(separator: ".").last, last.allSatisfy(\.isNumber) {
            return "\"\(value)\" ends with an all-digit label; it is neither a name nor an IPv4 address"
        }
        return nil
    }
}

import Foundation
import Testing

/// nghttp2 stays behind `HTTP2ServerSession`: only files under `HTTP2/nghttp2/` import it or name its API.
@Suite struct NGHTTP2ConfinementTests {
    @Test func onlyTheSessionFolderTouchesNGHTTP2() throws {
        let sources = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/RoutingService")
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        var checked = 0
        var offenders: [String] = []
        for case let file as URL in files where file.pathExtension == "swift" {
            checked += 1
            guard !file.path.contains("/HTTP2/nghttp2/") else { continue }
            let text = try String(contentsOf: file, encoding: .utf8)
            if text.contains("import CNGHTTP2") || text.contains("nghttp2_") { offenders.append(file.lastPathComponent) }
        }
        #expect(checked > 50, "found only \(checked) source files under \(sources.path)")
        #expect(offenders.isEmpty, "nghttp2 used outside HTTP2/nghttp2/: \(offenders)")
    }
}

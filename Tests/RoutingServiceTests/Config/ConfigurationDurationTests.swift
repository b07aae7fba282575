import Testing
@testable import RoutingService

@Suite struct ConfigurationDurationTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)),
        ("2s", .seconds(2)),
        ("1m", .seconds(60)),
        ("1h", .seconds(3600)),
        ("0s", .zero),
        ("90s", .seconds(90)),
        ("007ms", .milliseconds(7)),
    ])
    func acceptsANumberAndAUnit(_ text: String, _ expected: Duration) {
        #expect(ConfigurationDuration.parse(text) == expected)
    }

    @Test(arguments: [
        "", "2", "s", "ms", "2 s", " 2s", "2S", "1.5s", "-1s", "+1s", "2sec", "1d", "1m30s", "1e3ms", "٣s",
        "99999999999999999999s", "9999999999999h",
    ])
    func rejectsAnythingElse(_ text: String) {
        #expect(ConfigurationDuration.parse(text) == nil)
    }

    @Test func formatsToTheLargestWholeUnit() {
        #expect(ConfigurationDuration.format(.milliseconds(500)) == "500ms")
        #expect(ConfigurationDuration.format(.seconds(2)) == "2s")
        #expect(ConfigurationDuration.format(.seconds(120)) == "2m")
        #expect(ConfigurationDuration.format(.seconds(7200)) == "2h")
        #expect(ConfigurationDuration.format(.milliseconds(1500)) == "1500ms")
        #expect(ConfigurationDuration.format(.zero) == "0ms")
        for text in ["500ms", "2s", "1m", "1h", "61s"] {
            #expect(ConfigurationDuration.format(ConfigurationDuration.parse(text)!) == text)
        }
    }
}

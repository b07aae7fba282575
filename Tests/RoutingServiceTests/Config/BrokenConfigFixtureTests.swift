import Foundation
import Testing
@testable import RoutingService

/// Every file in `Fixtures/configs/broken/` names, in its leading `# expect: LINE KEY` comments, the problems
/// it must produce; the loader must report exactly those (line, key) pairs: none missing, none extra.
/// `# inventory: NAME …` gives the certificate names the `ssl: manual` check may rely on.
@Suite struct BrokenConfigFixtureTests {
    struct Fixture: CustomTestStringConvertible, Sendable {
        let url: URL
        let expected: Set<Expectation>
        let inventory: [String]?

        var testDescription: String { url.lastPathComponent }
    }

    struct Expectation: Hashable, Sendable, CustomStringConvertible {
        let line: Int
        let key: String
        var description: String { "\(line) \(key)" }
    }

    static let fixtures: [Fixture] = {
        guard
            let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?
                .appendingPathComponent("configs/broken", isDirectory: true),
            let files = try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        else { return [] }
        return files.filter { $0.pathExtension == "yaml" }.sorted { $0.lastPathComponent < $1.lastPathComponent }.map(
            parse
        )
    }()

    static func parse(_ url: URL) -> Fixture {
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        var expected: Set<Expectation> = []
        var inventory: [String]?
        for line in text.split(separator: "\n") where line.hasPrefix("#") {
            if line.hasPrefix("# expect: ") {
                let parts = line.dropFirst("# expect: ".count).split(separator: " ", maxSplits: 1)
                if parts.count == 2, let number = Int(parts[0]) {
                    expected.insert(Expectation(line: number, key: String(parts[1])))
                }
            } else if line.hasPrefix("# inventory: ") {
                inventory = line.dropFirst("# inventory: ".count).split(separator: " ").map(String.init)
            }
        }
        return Fixture(url: url, expected: expected, inventory: inventory)
    }

    @Test func thereIsOneFixturePerMistake() {
        #expect(Self.fixtures.count >= 20)
        for fixture in Self.fixtures {
            #expect(!fixture.expected.isEmpty, "\(fixture.url.lastPathComponent) has no # expect: line")
        }
    }

    @Test(arguments: fixtures)
    func reportsExactlyTheExpectedProblems(_ fixture: Fixture) throws {
        let inventory = fixture.inventory.map { StaticCertificateInventory(names: $0) }
        let result = ConfigurationLoader.load(path: fixture.url.path, inventory: inventory)
        guard case .failure(let error) = result else {
            Issue.record("\(fixture.url.lastPathComponent) was accepted")
            return
        }
        let reported = Set(error.problems.map { Expectation(line: $0.line, key: $0.key) })
        let missing = fixture.expected.subtracting(reported)
        let unexpected = reported.subtracting(fixture.expected)
        #expect(missing.isEmpty, "not reported: \(missing.sorted { $0.line < $1.line }) — got:\n\(error)")
        #expect(
            unexpected.isEmpty,
            "reported but not expected: \(unexpected.sorted { $0.line < $1.line }) — got:\n\(error)"
        )
        for problem in error.problems {
            #expect(problem.file == fixture.url.path)
            #expect(!problem.reason.isEmpty)
            #expect(problem.description == "\(fixture.url.path):\(problem.line): \(problem.key): \(problem.reason)")
        }
        #expect(error.problems.map(\.line) == error.problems.map(\.line).sorted(), "problems are sorted by line")
    }

    @Test func aFileWithSeveralMistakesReportsEveryOne() throws {
        let fixture = try #require(Self.fixtures.first { $0.url.lastPathComponent == "several-mistakes.yaml" })
        guard case .failure(let error) = ConfigurationLoader.load(path: fixture.url.path) else {
            Issue.record("accepted")
            return
        }
        #expect(fixture.expected.count >= 10)
        #expect(Set(error.problems.map(\.key)).count >= fixture.expected.count)
        #expect(error.description.split(separator: "\n").count == error.problems.count)
    }

    @Test func manualCertificateCheckIsSkippedWithoutAnInventory() throws {
        let fixture = try #require(
            Self.fixtures.first { $0.url.lastPathComponent == "manual-without-certificate.yaml" }
        )
        #expect(throws: Never.self) { try ConfigurationLoader.load(path: fixture.url.path, inventory: nil).get() }
    }
}

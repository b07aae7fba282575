import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Active health checks (SPEC §2.5): every instance of a service with `healthCheck` is probed on the
/// service's HTTP port every `interval`; an instance failing `fall` checks in a row is taken out of
/// selection by every HTTP balancer, and put back after `rise` good ones. Checks only write health;
/// balancers only read it (`UpstreamInstance.isAvailable`).
public final class HealthCheckService: Service, Sendable {
    struct Target: Sendable, Hashable {
        var service: String
        var endpoint: ListenAddress
        var path: String
        var interval: Duration
        var timeout: Duration
    }

    private let runtime: HTTPProxyRuntime
    private let logger: Logger
    private let targets: Mutex<[Target]>
    private let trackers = Mutex<[Target: HealthTracker]>([:])

    public init(configuration: GatewayConfiguration, runtime: HTTPProxyRuntime, logger: Logger) {
        self.runtime = runtime
        self.logger = logger
        self.targets = Mutex(Self.targets(of: configuration))
    }

    /// Hot reload: checks follow the new instances; trackers of instances that stay keep their state.
    public func apply(_ configuration: GatewayConfiguration) {
        let fresh = Self.targets(of: configuration)
        targets.withLock { $0 = fresh }
        let keep = Set(fresh)
        trackers.withLock { $0 = $0.filter { keep.contains($0.key) } }
    }

    static func targets(of configuration: GatewayConfiguration) -> [Target] {
        configuration.services.flatMap { service -> [Target] in
            guard let check = service.healthCheck, let port = service.ports.first(where: \.http) else { return [] }
            return service.instances.map { instance in
                Target(
                    service: service.name,
                    endpoint: instance.endpoint(forServicePort: port.port),
                    path: check.path,
                    interval: check.interval,
                    timeout: check.timeout
                )
            }
        }
    }

    public func run() async throws {
        var lastChecked: [Target: ContinuousClock.Instant] = [:]
        let tick = Duration.milliseconds(100)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = ContinuousClock.now
            let due = targets.withLock { $0 }.filter { target in
                lastChecked[target].map { now - $0 >= target.interval } ?? true
            }
            for target in due { lastChecked[target] = now }
            if !due.isEmpty {
                await withTaskGroup(of: (Target, HTTPHealthProbe.Outcome).self) { group in
                    for target in due {
                        group.addTask {
                            let probe = HTTPHealthProbe(endpoint: target.endpoint, path: target.path, timeout: target.timeout)
                            return (target, await probe.run(on: self.runtime.eventLoopGroup))
                        }
                    }
                    for await (target, outcome) in group { record(outcome, for: target) }
                }
            }
            try? await Task.sleep(for: tick)
        }
    }

    private func record(_ outcome: HTTPHealthProbe.Outcome, for target: Target) {
        let transition = trackers.withLock { trackers -> HealthTracker.Transition? in
            var tracker = trackers[target] ?? HealthTracker()
            defer { trackers[target] = tracker }
            return outcome.isHealthy ? tracker.checkSucceeded() : tracker.checkFailed()
        }
        guard let transition else { return }
        let healthy = transition == .cameUp
        for balancer in runtime.balancers {
            balancer.registry.instances(for: [target.endpoint]).first?.setHealthCheckResult(healthy: healthy)
        }
        var metadata: Logger.Metadata = ["service": "\(target.service)", "instance": "\(target.endpoint)"]
        if case .unhealthy(let reason) = outcome {
            metadata["reason"] = "\(reason)"
            logger.warning("Instance failed its health checks: out of selection", metadata: metadata)
        } else {
            logger.info("Instance passes its health checks again: back in selection", metadata: metadata)
        }
    }
}

import NIOCore
import NIOHTTP1

/// One request on its way through a balancer to an instance, from its head to the end of the response.
final class ProxyExchange {
    let method: HTTP1Method
    /// The client's HTTP/1.x minor version.
    let clientMinorVersion: Int
    let isWebSocketUpgrade: Bool
    /// The head as the instance gets it, kept to send again on a retry.
    let forwardedHead: ByteBuffer
    /// Method and target as text, for the access log; nil when nothing logs them.
    let logLine: (method: String, target: String)?
    let route: DomainRoute
    let routes: ProxyRoutes
    let balancer: HTTPBalancer
    let start: NIODeadline
    var instance: UpstreamInstance
    var attempts = 1
    var connection: UpstreamConnection?
    /// Where the request body stands.
    var requestBody: HTTP1BodyProgress
    /// Body bytes received before the upstream connection was ready (bounded: reads are held meanwhile).
    var bufferedBody: [ByteBuffer] = []
    var requestEnded = false
    /// Body bytes already written upstream: once there are some, a failed attempt cannot be replayed.
    var bodyPartsForwarded = 0
    var requestEndForwarded = false
    var responseHeadReceived = false
    var responseRelay = HTTP1ResponseRelay.none
    /// The response to the client is delimited by closing its connection.
    var responseCloseDelimited = false
    var responseStatus = 0
    var responseBytes = 0
    private var countsReleased = false

    init(
        request: HTTP1RequestHead,
        forwardedHead: ByteBuffer,
        logLine: (method: String, target: String)?,
        route: DomainRoute,
        routes: ProxyRoutes,
        balancer: HTTPBalancer,
        instance: UpstreamInstance,
        start: NIODeadline
    ) {
        self.method = request.method
        self.clientMinorVersion = request.minorVersion
        self.isWebSocketUpgrade = request.isWebSocketUpgrade
        self.requestBody = HTTP1BodyProgress(request.framing)
        self.requestEnded = self.requestBody.isFinished
        self.forwardedHead = forwardedHead
        self.logLine = logLine
        self.route = route
        self.routes = routes
        self.balancer = balancer
        self.instance = instance
        self.start = start
        balancer.requestStarted()
        instance.requestStarted()
    }

    /// Safe to send again to another instance: idempotent, nothing of its body gone, no answer yet.
    var isReplayable: Bool {
        attempts == 1 && method.isIdempotent && bodyPartsForwarded == 0 && !responseHeadReceived
    }

    func moveTo(_ next: UpstreamInstance) {
        instance.requestFinished()
        next.requestStarted()
        instance = next
        attempts += 1
        connection = nil
        requestEndForwarded = false
    }

    /// After a failed attempt: moves the exchange to another instance of its balancer when the request
    /// may be sent again (idempotent, nothing of it gone, not a response-head timeout) and one is
    /// available. True when the caller should connect again.
    func moveToAnotherInstance(after failure: UpstreamFailure, using random: inout SplitMix64) -> Bool {
        if case .responseHeadTimedOut = failure { return false }
        guard isReplayable else { return false }
        let candidates = routes.instances(balancer: balancer, group: route.upstream)
        guard let next = balancer.pickInstance(from: candidates, excluding: instance, now: .now(), using: &random) else {
            return false
        }
        moveTo(next)
        return true
    }

    /// The request metrics and the access-log line of the exchange, as it stands. The client address is
    /// asked for only when the line is written: copying it per request is a retain and a release.
    func record(note: String?, client: () -> String?, metrics: RequestMetricsRecorder?, accessLog: AccessLog) {
        metrics?.record(domain: route.domain.value, status: responseStatus, duration: .now() - start)
        guard accessLog.isEnabled else { return }
        accessLog.record(
            AccessLogEntry(
                client: client(),
                domain: route.domain.value,
                method: logLine?.method ?? "-",
                path: logLine?.target ?? "-",
                status: responseStatus,
                bytes: responseBytes,
                instance: instance.endpoint.description,
                balancer: balancer.index,
                start: start,
                note: note
            )
        )
    }

    /// Decrements the in-flight counts exactly once, whatever path ends the exchange.
    func releaseCounts() {
        guard !countsReleased else { return }
        countsReleased = true
        instance.requestFinished()
        balancer.requestFinished()
    }

    deinit {
        // Belt and braces: an exchange dropped on an unexpected path must not leave counts behind.
        releaseCounts()
    }
}

/// Why an attempt at an instance failed, and how the client is told.
enum UpstreamFailure {
    case refused(any Error)
    case connectTimedOut(TimeAmount)
    case closedBeforeResponse((any Error)?)
    case responseHeadTimedOut(Duration)

    var status: HTTPResponseStatus {
        switch self {
        case .refused, .closedBeforeResponse: return .badGateway
        case .connectTimedOut, .responseHeadTimedOut: return .gatewayTimeout
        }
    }

    func message(instance: UpstreamInstance) -> String {
        switch self {
        case .refused(let error):
            return "instance \(instance) refused the connection (\(error))"
        case .connectTimedOut(let timeout):
            return "instance \(instance) did not accept the connection within \(timeout.nanoseconds / 1_000_000) ms"
        case .closedBeforeResponse(let error):
            let reason = error.map { " (\($0))" } ?? ""
            return "instance \(instance) closed the connection before sending a response\(reason)"
        case .responseHeadTimedOut(let timeout):
            return "instance \(instance) sent no response head within \(timeout.millisecondsText)"
        }
    }
}

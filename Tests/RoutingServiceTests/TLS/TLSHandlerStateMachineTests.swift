@testable import RoutingService
import Testing

@Suite("TLSHandlerStateMachine")
struct TLSHandlerStateMachineTests {
    private func active() -> TLSHandlerStateMachine {
        var machine = TLSHandlerStateMachine()
        _ = machine.channelActive()
        _ = machine.handshakeCompleted()
        return machine
    }

    @Test func handshakeThenData() {
        var machine = TLSHandlerStateMachine()
        #expect(machine.write() == .buffer)
        #expect(machine.flush() == .waitForHandshake)
        #expect(machine.channelActive() == .beginHandshake)
        #expect(machine.channelActive() == .none)
        #expect(machine.ciphertextReceived() == .continueHandshake)
        #expect(machine.handshakeCompleted() == .announceAndDrainPending)
        #expect(machine.handshakeCompleted() == .none)
        #expect(machine.ciphertextReceived() == .decrypt)
        #expect(machine.flush() == .encryptFlushedWrites)
        #expect(machine.handshakeTimedOut() == .none)
    }

    @Test func timeoutClosesOnlyWhileHandshaking() {
        var machine = TLSHandlerStateMachine()
        _ = machine.channelActive()
        #expect(machine.handshakeTimedOut() == .closeForTimeout)
        #expect(machine.state == .closed)
        #expect(machine.ciphertextReceived() == .discard)
        #expect(machine.write() == .fail)
    }

    @Test func handshakeFailureSendsTheAlertOnce() {
        var machine = TLSHandlerStateMachine()
        _ = machine.channelActive()
        #expect(machine.handshakeFailed() == .sendAlertAndClose)
        #expect(machine.handshakeFailed() == .none)
        #expect(machine.state == .closing)
        #expect(machine.closeRequested() == .joinPendingClose)
        #expect(machine.channelInactive() == .failPendingWrites(closedDuringHandshake: false))
    }

    @Test func closeBeforeTheHandshakeClosesAtOnce() {
        var machine = TLSHandlerStateMachine()
        _ = machine.channelActive()
        #expect(machine.closeRequested() == .closeNow)
    }

    @Test func closeWhenActiveSendsCloseNotify() {
        var machine = active()
        #expect(machine.closeRequested() == .sendCloseNotifyAndClose)
        #expect(machine.write() == .fail)
        #expect(machine.flush() == .none)
        #expect(machine.closeNotifyReceived() == .none)
        #expect(machine.ciphertextReceived() == .discard)
    }

    @Test func peerCloseNotifyIsAnsweredOnce() {
        var machine = active()
        #expect(machine.closeNotifyReceived() == .answerAndClose)
        #expect(machine.closeNotifyReceived() == .none)
        #expect(machine.readFailed() == .none)
    }

    @Test func peerClosingDuringHandshakeIsReported() {
        var machine = TLSHandlerStateMachine()
        _ = machine.channelActive()
        #expect(machine.channelInactive() == .failPendingWrites(closedDuringHandshake: true))
        #expect(machine.state == .closed)
    }
}

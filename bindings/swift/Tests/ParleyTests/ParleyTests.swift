import CParley
import Foundation
@testable import Parley
import XCTest

/// Tests of the Swift binding against the real libparley and a real parley-relay process
/// (its path in the environment variable PARLEY_RELAY). Every wait is bounded by a deadline;
/// the only sleeps pace the simulated sound card.
final class ParleyTests: RelayTestCase {
    /// Waits for `call` to reach `state`; fails at once if it ends first.
    private func waitState(_ ctx: Context, _ call: Call, _ state: CallState,
                           timeout: TimeInterval = 10) throws -> ParleyError? {
        var error: ParleyError?
        try ctx.waitFor(timeout: timeout) { event in
            guard case .callState(let c, let s, let e, let text, _) = event, c === call else { return false }
            if s == state {
                error = e
                return true
            }
            if s == .ended {
                throw ParleyError(code: e?.code ?? -3,
                                  detail: "call ended while waiting for \(state): \(text)")
            }
            return false
        }
        return error
    }

    /// Two registered parties and an active call from A to B.
    private func activeCall(_ relay: RelayProcess,
                            configure: (inout Context.Configuration) -> Void = { _ in })
        throws -> (Context, Call, Context, Call) {
        let a = try party(relay, configure: configure)
        let b = try party(relay, configure: configure)
        try waitRegistered(a)
        try waitRegistered(b)
        let callA = try a.call(b.fingerprint)
        XCTAssertEqual(callA.peer, b.fingerprint)
        XCTAssertTrue(callA.isOutgoing)
        let incoming = try b.waitFor(timeout: 10) { event in
            if case .incomingCall = event { return true }
            return false
        }
        let callB = try XCTUnwrap(incoming.call)
        XCTAssertEqual(callB.peer, a.fingerprint)
        XCTAssertFalse(callB.isOutgoing)
        try callB.accept()
        XCTAssertNil(try waitState(b, callB, .active))
        XCTAssertNil(try waitState(a, callA, .active))
        return (a, callA, b, callB)
    }

    // MARK: - Tests

    func testVersionAndIdentity() throws {
        XCTAssertFalse(ParleyLibrary.versionString.isEmpty)
        XCTAssertEqual(ParleyLibrary.version >> 16, 0)

        let id = try Identity.generate()
        XCTAssertEqual(id.fingerprint.count, 64)
        XCTAssertTrue(id.fingerprint.allSatisfy { "0123456789abcdef".contains($0) })
        XCTAssertEqual(id.publicKey.count, 32)

        let seed = id.exportSeed()
        XCTAssertEqual(seed.count, 32)
        XCTAssertEqual(try Identity(seed: seed).fingerprint, id.fingerprint)
        XCTAssertNotEqual(try Identity.generate().fingerprint, id.fingerprint)

        let file = try scratchDirectory().appendingPathComponent("id.seed").path
        try id.save(to: file)
        XCTAssertEqual(try Identity(contentsOfFile: file).fingerprint, id.fingerprint)
        XCTAssertThrowsError(try id.save(to: file)) { error in
            XCTAssertEqual((error as? ParleyError)?.code, ParleyError.Code.seedFileExists.rawValue)
        }
        try id.save(to: file, overwrite: true)

        XCTAssertEqual(try Fingerprint.of(certificateDER: id.certificateDER()), id.fingerprint)
        var grouped = ""
        for (i, ch) in id.fingerprint.uppercased().enumerated() {
            if i > 0 && i % 4 == 0 { grouped += ":" }
            grouped.append(ch)
        }
        XCTAssertEqual(try Fingerprint.normalize(grouped), id.fingerprint)
    }

    func testErrorsThrowParleyError() throws {
        // A malformed relay fingerprint: -12.
        var config = Context.Configuration(relayAddress: "127.0.0.1:9", relayFingerprint: "xyz")
        XCTAssertThrowsError(try Context(identity: Identity.generate(), configuration: config)) { error in
            guard let e = error as? ParleyError else { return XCTFail("not a ParleyError: \(error)") }
            XCTAssertEqual(e.code, -12)
            XCTAssertEqual(e.knownCode, .fingerprintInvalid)
            XCTAssertEqual(e.name, "PARLEY_ERR_FINGERPRINT_INVALID")
            XCTAssertTrue(e.message.contains("relay_fingerprint"), e.message)
        }
        // A relay address that is not ip:port: -20.
        config = Context.Configuration(relayAddress: "not-an-address")
        XCTAssertThrowsError(try Context(identity: Identity.generate(), configuration: config)) { error in
            guard let e = error as? ParleyError else { return XCTFail("not a ParleyError: \(error)") }
            XCTAssertEqual(e.code, -20)
            XCTAssertEqual(e.name, "PARLEY_ERR_ADDRESS_INVALID")
            XCTAssertTrue(e.message.contains("not-an-address"), e.message)
        }
        // An unsupported audio format: -42.
        config = Context.Configuration(relayAddress: "127.0.0.1:9")
        config.sampleRate = 44100
        XCTAssertThrowsError(try Context(identity: Identity.generate(), configuration: config)) { error in
            XCTAssertEqual((error as? ParleyError)?.name, "PARLEY_ERR_AUDIO_FORMAT")
        }
        // A seed of the wrong length: -1.
        XCTAssertThrowsError(try Identity(seed: [1, 2, 3])) { error in
            XCTAssertEqual((error as? ParleyError)?.code, -1)
        }
        // Calls on a context that is not registered (nothing listens on port 9).
        let ctx = try Context(identity: Identity.generate(),
                              configuration: Context.Configuration(relayAddress: "127.0.0.1:9"))
        contexts.append(ctx)
        XCTAssertThrowsError(try ctx.call("nothex")) { error in
            XCTAssertEqual((error as? ParleyError)?.code, -12)
        }
        XCTAssertThrowsError(try ctx.call(String(repeating: "ab", count: 32))) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .notRegistered)
        }
        XCTAssertThrowsError(try ctx.relayFingerprint()) { error in  // none configured or trusted
            XCTAssertEqual((error as? ParleyError)?.knownCode, .notRegistered, "\(error)")
        }
        XCTAssertNil(try ctx.next(timeout: 0.05).flatMap { event -> Event? in
            if case .relayState = event { return nil }  // connecting/backoff: fine
            return event
        })
        ctx.close()
        ctx.close()
        XCTAssertTrue(ctx.isClosed)
        XCTAssertNil(ctx.poll())
        XCTAssertThrowsError(try ctx.call(String(repeating: "ab", count: 32))) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .closed)
        }
        XCTAssertThrowsError(try ctx.next(timeout: 0.01)) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .closed)
        }
    }

    func testRejectedCall() throws {
        let relay = try startRelay()
        let a = try party(relay)
        let b = try party(relay)
        try waitRegistered(a)
        try waitRegistered(b)
        let callA = try a.call(b.fingerprint)
        let incoming = try b.waitFor(timeout: 10) { if case .incomingCall = $0 { return true }; return false }
        try XCTUnwrap(incoming.call).reject()
        let ended = try a.waitFor(timeout: 10) { event in
            if case .callState(let c, .ended, _, _, _) = event, c === callA { return true }
            return false
        }
        guard case .callState(_, _, let error, _, let origin) = ended else { return XCTFail("\(ended)") }
        XCTAssertEqual(error?.knownCode, .callRejected, "\(ended)")
        // The rejection's words are the callee's, carried by the relay: untrusted text.
        XCTAssertEqual(origin, .peer, "\(ended)")
        XCTAssertThrowsError(try callA.send(datagram: [1])) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .callEnded, "\(error)")
        }
        XCTAssertEqual(callA.push([Int16](repeating: 0, count: 960)), Int(ParleyError.Code.callEnded.rawValue))
    }

    /// Without a pinned fingerprint the context reports the identity the relay presents and
    /// registers only once the host trusts it; then it keeps that pin.
    func testRelayTrustIsTheHostsDecision() throws {
        let relay = try startRelay()
        let ctx = try Context(identity: Identity.generate(),
                              configuration: Context.Configuration(relayAddress: relay.address))
        contexts.append(ctx)
        var registered = false
        let untrusted = try ctx.waitFor(timeout: 10) { event in
            if case .relayState(.registered, _) = event { registered = true }
            if case .relayTrusted = event { XCTFail("RELAY_TRUSTED is no longer raised") }
            if case .relayUntrusted = event { return true }
            return false
        }
        XCTAssertFalse(registered, "registered before the host decided")
        guard case .relayUntrusted(let fingerprint) = untrusted else { return XCTFail("\(untrusted)") }
        XCTAssertEqual(fingerprint, relay.fingerprint)
        XCTAssertThrowsError(try ctx.relayFingerprint()) { error in  // none configured or trusted
            XCTAssertEqual((error as? ParleyError)?.knownCode, .notRegistered, "\(error)")
        }
        XCTAssertThrowsError(try ctx.call(String(repeating: "ab", count: 32))) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .notRegistered, "\(error)")
        }
        // A malformed fingerprint is refused and pins nothing.
        XCTAssertThrowsError(try ctx.trustRelay("abc")) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .fingerprintInvalid, "\(error)")
            XCTAssertEqual((error as? ParleyError)?.name, "PARLEY_ERR_FINGERPRINT_INVALID")
        }
        XCTAssertThrowsError(try ctx.trustRelay(fingerprint + "0")) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .fingerprintInvalid, "\(error)")
        }
        XCTAssertThrowsError(try ctx.relayFingerprint())

        try ctx.trustRelay(fingerprint)
        try waitRegistered(ctx)
        XCTAssertEqual(try ctx.relayFingerprint(), relay.fingerprint)
        ctx.close()
        XCTAssertThrowsError(try ctx.trustRelay(fingerprint)) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .closed, "\(error)")
        }
    }

    /// An ERROR naming a peer is an invite parley refused (no relay here forges one: the
    /// conversion is checked directly).
    func testRefusedInviteAndErrorOrigin() {
        let fp = String(repeating: "ab", count: 32)
        let key = ParleyError(code: ParleyError.Code.mediaKey.rawValue, detail: "refused an invite: stale")
        guard case .inviteRefused(let from, let error) =
                Registry.errorEvent(key, peer: fp, call: nil, room: nil, origin: .local) else {
            return XCTFail("not an inviteRefused")
        }
        XCTAssertEqual(from, fp)
        XCTAssertEqual(error.name, "PARLEY_ERR_MEDIA_KEY")
        let limited = ParleyError(code: ParleyError.Code.rateLimited.rawValue, detail: "slow down")
        guard case .error(let e, let call, let origin) =
                Registry.errorEvent(limited, peer: "", call: nil, room: nil, origin: .relay) else {
            return XCTFail("not an error")
        }
        XCTAssertEqual(e.knownCode, .rateLimited)
        XCTAssertNil(call)
        XCTAssertEqual(origin, .relay)
    }

    /// The 0.2.0 error codes, and names from the library (`parley_error_name`).
    func testErrorNamesAndNewCodes() {
        XCTAssertEqual(ParleyError.Code.notAMember.rawValue, Int32(PARLEY_ERR_NOT_A_MEMBER.rawValue))
        XCTAssertEqual(ParleyError.Code.callNotActive.rawValue, Int32(PARLEY_ERR_CALL_NOT_ACTIVE.rawValue))
        XCTAssertEqual(ParleyError.Code.wrongCallState.rawValue, Int32(PARLEY_ERR_WRONG_CALL_STATE.rawValue))
        for code in ParleyError.Code.allCases {
            XCTAssertEqual(ParleyError(code: code.rawValue).name, code.cName)
            XCTAssertEqual(String(cString: parley_error_name(code.rawValue)), code.cName)
        }
        XCTAssertEqual(ParleyError(code: -9999).name, "PARLEY_ERR_-9999")
        XCTAssertEqual(String(cString: parley_event_type_name(Int32(PARLEY_EVENT_CALL_STATE.rawValue))),
                       "PARLEY_EVENT_CALL_STATE")
        XCTAssertEqual(ParleyLibrary.headerVersionString, "0.2.0")
        XCTAssertEqual(ParleyLibrary.bindingVersionString, "0.2.0")
        XCTAssertGreaterThanOrEqual(ParleyLibrary.version, 0x000200)
    }

    func testEnumsMirrorTheHeader() {
        XCTAssertEqual(RelayState.untrusted.rawValue, Int32(PARLEY_RELAY_UNTRUSTED.rawValue))
        XCTAssertEqual(RelayState(rawValue: 5), .untrusted)
        XCTAssertEqual(Origin.local.rawValue, Int32(PARLEY_ORIGIN_LOCAL.rawValue))
        XCTAssertEqual(Origin.relay.rawValue, Int32(PARLEY_ORIGIN_RELAY.rawValue))
        XCTAssertEqual(Origin.peer.rawValue, Int32(PARLEY_ORIGIN_PEER.rawValue))
        XCTAssertEqual(Origin(rawValue: 7), .unknown(7))
        XCTAssertEqual(QualityReason.loss.rawValue, Int32(PARLEY_QUALITY_REASON_LOSS.rawValue))
        XCTAssertEqual(QualityReason.directive.rawValue, Int32(PARLEY_QUALITY_REASON_DIRECTIVE.rawValue))
    }

    /// With `disableDirect` no direct attempt is made, and the stats say why there is no
    /// direct path (`iceFailed`) without counting a lost one.
    func testRelayOnlyCallStats() throws {
        let relay = try startRelay()
        let (a, callA, b, callB) = try activeCall(relay) { $0.disableDirect = true }
        for call in [callA, callB] {
            let stats = try call.stats()
            XCTAssertEqual(stats.path, .relay)
            XCTAssertEqual(stats.directAttempts, 0)
            XCTAssertEqual(stats.directError?.knownCode, .iceFailed)
            XCTAssertEqual(stats.directLost, 0)
            XCTAssertNil(stats.timeToDirectMs)
        }
        try callA.hangup()
        XCTAssertNil(try waitState(b, callB, .ended))
        XCTAssertNil(try waitState(a, callA, .ended))
    }

    /// The real call: a 440 Hz sine from A arrives at B, datagrams go both ways, stats count
    /// frames, and a hangup ends the call on both sides without an error.
    func testCallCarriesVoiceDatagramsAndHangup() throws {
        let relay = try startRelay()
        let (a, callA, b, callB) = try activeCall(relay)

        // ~3 s of a simulated sound card on each side, 20 ms per tick on the wall clock.
        let rate = 48_000.0
        let chunk = 960
        let ticks = 150
        var received: [Int16] = []
        received.reserveCapacity(ticks * chunk)
        var paths: [String] = []
        let start = ProcessInfo.processInfo.systemUptime
        for tick in 0..<ticks {
            let tone = Signal.sine(freq: 440, amplitude: 8000, rate: rate, offset: tick * chunk, count: chunk)
            XCTAssertGreaterThanOrEqual(callA.push(tone), 0)
            received += callB.pull(frames: chunk)
            for ctx in [a, b] {
                while let event = ctx.poll() {
                    if case .pathChanged = event { paths.append("\(event)") }
                    if case .callState(_, .ended, _, let text, _) = event { XCTFail("call ended: \(text)") }
                }
            }
            let next = start + Double(tick + 1) * Double(chunk) / rate
            let left = next - ProcessInfo.processInfo.systemUptime
            if left > 0 { Thread.sleep(forTimeInterval: left) }  // audio pacing, not synchronisation
        }
        let tail = Array(received.suffix(Int(1.5 * rate)))
        let analysis = Signal.analyse(tail, rate: rate)
        print(String(format: "parley-swift: B's last 1.5 s: dominant %.1f Hz, RMS %.0f, purity %.3f; paths: %@",
                     analysis.dominantHz, analysis.rms, analysis.purity, paths.description))
        XCTAssertEqual(analysis.dominantHz, 440, accuracy: 10)
        XCTAssertGreaterThan(analysis.rms, 1000, "B hears (near) silence")

        let statsA = try callA.stats()
        let statsB = try callB.stats()
        print("parley-swift: A sent \(statsA.framesSent) frames on \(statsA.path) (rtt \(statsA.rttMs) ms); "
            + "B received \(statsB.framesReceived), decoded \(statsB.framesDecoded), "
            + "concealed \(statsB.concealed)")
        XCTAssertGreaterThan(statsA.framesSent, 0)
        XCTAssertGreaterThan(statsB.framesReceived, 0)
        // Direct is on here: the first ICE run counts as an attempt from the moment of active.
        for stats in [statsA, statsB] {
            XCTAssertGreaterThanOrEqual(stats.directAttempts, 1, "\(stats)")
            if let error = stats.directError { XCTAssertLessThan(error.code, 0, "\(stats)") }
        }

        // Datagrams: A -> B, then B echoes them reversed. Unreliable, so resend until seen.
        let ping: [UInt8] = Array("ping from A".utf8) + [0, 255]
        let gotPing = try exchange(datagram: ping, from: callA, to: b, at: callB)
        XCTAssertEqual(gotPing, ping)
        let pong = Array(ping.reversed())
        let gotPong = try exchange(datagram: pong, from: callB, to: a, at: callA)
        XCTAssertEqual(gotPong, pong)
        XCTAssertThrowsError(try callA.send(datagram: [UInt8](repeating: 0, count: Call.maxDatagramSize + 1))) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .messageTooLarge)
        }

        // Mute is remembered.
        callA.isMuted = true
        XCTAssertTrue(callA.isMuted)
        callA.isMuted = false

        // A hangs up: both sides see ENDED without an error.
        try callA.hangup()
        XCTAssertNil(try waitState(b, callB, .ended))
        XCTAssertNil(try waitState(a, callA, .ended))
        // After the end: push refuses, pull gives silence (and says the call is over), requests
        // throw PARLEY_ERR_CALL_ENDED.
        let ended = ParleyError.Code.callEnded.rawValue
        XCTAssertEqual(callA.push([Int16](repeating: 1000, count: 960)), Int(ended))
        var after = [Int16](repeating: 7, count: 960)
        XCTAssertEqual(after.withUnsafeMutableBufferPointer { callB.pull(into: $0) }, ended)
        XCTAssertEqual(after, [Int16](repeating: 0, count: 960))
        XCTAssertEqual(callB.pull(frames: 10), [Int16](repeating: 0, count: 10))
        XCTAssertThrowsError(try callB.send(datagram: [1])) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .callEnded, "\($0)")
        }

        // Call objects outlive their context.
        a.close()
        XCTAssertEqual(callA.peer, b.fingerprint)
        XCTAssertEqual(callA.pull(frames: 4), [0, 0, 0, 0])
        XCTAssertThrowsError(try callA.hangup()) { XCTAssertNotNil($0 as? ParleyError) }
    }

    /// A 440 Hz tone pushed as float32 on one call and as Int16 on another, at the same level
    /// and at the same time, pulled the same way at B: once the jitter buffers settled (the
    /// first 0.5 s skipped) both are heard at the same level, within 0.1 dB.
    func testFloatAudioHasTheLevelOfInt16() throws {
        let relay = try startRelay()
        let (a, floatA, b, floatB) = try activeCall(relay)
        let intA = try a.call(b.fingerprint)
        let incoming = try b.waitFor(timeout: 10) { if case .incomingCall = $0 { return true }; return false }
        let intB = try XCTUnwrap(incoming.call)
        try intB.accept()
        XCTAssertNil(try waitState(b, intB, .active))
        XCTAssertNil(try waitState(a, intA, .active))

        let rate = 48_000.0
        let chunk = 960
        let ticks = 150
        var heardFloat: [Float] = []
        var heardInt: [Int16] = []
        let start = ProcessInfo.processInfo.systemUptime
        for tick in 0..<ticks {
            let tone = Signal.sine(freq: 440, amplitude: 8000, rate: rate, offset: tick * chunk, count: chunk)
            let toneFloat = Signal.sineFloat(freq: 440, amplitude: 8000 / 32768, rate: rate,
                                             offset: tick * chunk, count: chunk)
            XCTAssertEqual(floatA.push(toneFloat), chunk)
            XCTAssertEqual(intA.push(tone), chunk)
            heardFloat += floatB.pullFloat(frames: chunk)
            heardInt += intB.pull(frames: chunk)
            for ctx in [a, b] {
                while let event = ctx.poll() {
                    if case .callState(_, .ended, _, let text, _) = event { XCTFail("call ended: \(text)") }
                }
            }
            let next = start + Double(tick + 1) * Double(chunk) / rate
            let left = next - ProcessInfo.processInfo.systemUptime
            if left > 0 { Thread.sleep(forTimeInterval: left) }  // audio pacing, not synchronisation
        }
        let settled = Int(rate / 2)
        let floatDB = Signal.levelDB(heardFloat.dropFirst(settled).map { Double($0) }, fullScale: 1)
        let intDB = Signal.levelDB(heardInt.dropFirst(settled).map { Double($0) }, fullScale: 32768)
        let sentDB = 20 * log10(8000 / 2.0.squareRoot() / 32768)
        print(String(format: "parley-swift: B heard the float32 call at %.3f dBFS, the Int16 call at %.3f dBFS (sent %.3f dBFS)",
                     floatDB, intDB, sentDB))
        XCTAssertEqual(floatDB, intDB, accuracy: 0.1)
        XCTAssertEqual(intDB, sentDB, accuracy: 3, "the tone, not silence")

        // UnsafeBufferPointer variants; after the end push refuses and pull gives silence.
        let tone = Signal.sineFloat(freq: 440, amplitude: 0.25, rate: rate, offset: 0, count: chunk)
        XCTAssertGreaterThanOrEqual(tone.withUnsafeBufferPointer { floatA.push($0) }, 0)
        try floatA.hangup()
        try intA.hangup()
        XCTAssertNil(try waitState(b, floatB, .ended))
        XCTAssertEqual(floatA.push(tone), Int(ParleyError.Code.callEnded.rawValue))
        var after = [Float](repeating: 0.5, count: chunk)
        XCTAssertEqual(after.withUnsafeMutableBufferPointer { floatB.pull(into: $0) },
                       ParleyError.Code.callEnded.rawValue)
        XCTAssertEqual(after, [Float](repeating: 0, count: chunk))
    }

    /// The 0.2.0 call errors: stats and datagrams before the call is active throw
    /// `callNotActive`, accepting an outgoing call `wrongCallState`; tags and tokens.
    func testCallStateErrorsAndTags() throws {
        let relay = try startRelay()
        let a = try party(relay)
        let b = try party(relay)
        try waitRegistered(a)
        try waitRegistered(b)
        let callA = try a.call(b.fingerprint)
        callA.tag = "bob"
        let incoming = try b.waitFor(timeout: 10) { if case .incomingCall = $0 { return true }; return false }
        let callB = try XCTUnwrap(incoming.call)
        XCTAssertThrowsError(try callA.accept()) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .wrongCallState, "\($0)")
        }
        for call in [callA, callB] {
            XCTAssertThrowsError(try call.stats()) {
                XCTAssertEqual(($0 as? ParleyError)?.knownCode, .callNotActive, "\($0)")
            }
            XCTAssertThrowsError(try call.send(datagram: [1])) {
                XCTAssertEqual(($0 as? ParleyError)?.knownCode, .callNotActive, "\($0)")
            }
            // The token naming it in events is its handle's user data.
            XCTAssertEqual(UInt(bitPattern: parley_call_user_data(call.handle)), call.token)
        }
        XCTAssertNotEqual(callA.token, 0)  // tokens count per context, from 1
        try callB.reject()
        let ended = try a.waitFor(timeout: 10) { event in
            if case .callState(let c, .ended, _, _, _) = event, c === callA { return true }
            return false
        }
        XCTAssertEqual(ended.call?.tag as? String, "bob")
    }

    /// A whole call with every event taken from `Context.events` (an `AsyncSequence`): two
    /// registrations, the invite, the answer, a datagram and the hangup.
    func testAsyncEventsPlaceACall() async throws {
        let relay = try startRelay()
        let a = try party(relay)
        let b = try party(relay)
        try await Self.first(a) { if case .relayState(.registered, _) = $0 { return true }; return false }
        try await Self.first(b) { if case .relayState(.registered, _) = $0 { return true }; return false }
        let callA = try a.call(b.fingerprint)
        let incoming = try await Self.first(b) { if case .incomingCall = $0 { return true }; return false }
        let callB = try XCTUnwrap(incoming.call)
        XCTAssertEqual(callB.peer, a.fingerprint)
        try callB.accept()
        try await Self.first(a) { event in
            if case .callState(let c, .active, _, _, _) = event { return c === callA }
            return false
        }
        try await Self.first(b) { event in
            if case .callState(let c, .active, _, _, _) = event { return c === callB }
            return false
        }
        try callA.send(datagram: Array("async".utf8))
        let datagram = try await Self.first(b) { if case .datagram = $0 { return true }; return false }
        guard case .datagram(let c, let bytes) = datagram else { return XCTFail("\(datagram)") }
        XCTAssertTrue(c === callB)
        XCTAssertEqual(bytes, Array("async".utf8))
        try callA.hangup()
        try await Self.first(b) { event in
            if case .callState(let c, .ended, _, _, _) = event { return c === callB }
            return false
        }

        // close() ends a running iteration (the sequence finishes without an error).
        let iteration = Task { () -> Int in
            var count = 0
            for try await _ in a.events { count += 1 }
            return count
        }
        a.close()
        _ = try await iteration.value
    }

    /// The first event of `ctx.events` that satisfies `predicate`, within `timeout` seconds
    /// (leaving the loop ends the iteration, which wakes its thread).
    @discardableResult
    private static func first(_ ctx: Context, timeout: TimeInterval = 10,
                              _ predicate: @escaping @Sendable (Event) -> Bool) async throws -> Event {
        try await withThrowingTaskGroup(of: Event?.self) { group in
            group.addTask {
                for try await event in ctx.events where predicate(event) { return event }
                return nil
            }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(timeout * 1e9))  // the deadline
                return nil
            }
            defer { group.cancelAll() }
            guard let event = try await group.next() ?? nil else {
                throw ParleyError(code: ParleyError.Code.timeout.rawValue,
                                  detail: "no matching event within \(timeout) s")
            }
            return event
        }
    }

    /// networkChanged() mid-call (what a host's NWPathMonitor handler does): it returns at once,
    /// the call stays active and datagrams keep arriving both ways while ICE restarts; a closed
    /// context throws PARLEY_ERR_CLOSED.
    func testNetworkChangedKeepsTheCall() throws {
        let relay = try startRelay()
        let (a, callA, b, callB) = try activeCall(relay)
        var others: [Event] = []
        let record: (Event) -> Void = { others.append($0) }
        XCTAssertEqual(try exchange(datagram: Array("before".utf8), from: callA, to: b, at: callB,
                                    onOther: record), Array("before".utf8))
        let receivedBefore = try callB.stats().framesReceived

        try a.networkChanged()
        for i in 0..<3 {  // on the old path at first, then wherever the restart settles
            let ab = Array("a->b after \(i)".utf8), ba = Array("b->a after \(i)".utf8)
            XCTAssertEqual(try exchange(datagram: ab, from: callA, to: b, at: callB, onOther: record), ab)
            XCTAssertEqual(try exchange(datagram: ba, from: callB, to: a, at: callA, onOther: record), ba)
        }
        try b.networkChanged()  // the other side too, twice in a row (a restart during a restart)
        try b.networkChanged()
        for i in 0..<3 {
            let ba = Array("b->a after b \(i)".utf8), ab = Array("a->b after b \(i)".utf8)
            XCTAssertEqual(try exchange(datagram: ba, from: callB, to: a, at: callA, onOther: record), ba)
            XCTAssertEqual(try exchange(datagram: ab, from: callA, to: b, at: callB, onOther: record), ab)
        }

        var paths: [String] = []
        for event in others {
            if case .callState(_, .ended, _, let text, _) = event { XCTFail("call ended: \(text)") }
            if case .pathChanged = event { paths.append("\(event)") }
        }
        // Still active: stats throw PARLEY_ERR_CALL_ENDED once a call is over.
        let statsA = try callA.stats()
        let statsB = try callB.stats()
        XCTAssertGreaterThan(statsB.framesReceived, receivedBefore)
        print("parley-swift: after networkChanged: A on \(statsA.path), B on \(statsB.path) "
            + "received \(statsB.framesReceived) frames; paths: \(paths)")

        try callA.hangup()
        XCTAssertNil(try waitState(b, callB, .ended))
        a.close()
        XCTAssertThrowsError(try a.networkChanged()) { error in
            XCTAssertEqual((error as? ParleyError)?.knownCode, .closed, "\(error)")
        }
    }

    /// Sends `datagram` on `sender` until `receiverCtx` reports a datagram on `receiver`
    /// (earlier payloads arriving late are skipped); other events go to `onOther`.
    private func exchange(datagram: [UInt8], from sender: Call, to receiverCtx: Context,
                          at receiver: Call, timeout: TimeInterval = 5,
                          onOther: (Event) -> Void = { _ in }) throws -> [UInt8] {
        let deadline = ProcessInfo.processInfo.systemUptime + timeout
        while ProcessInfo.processInfo.systemUptime < deadline {
            try sender.send(datagram: datagram)
            let resendAt = ProcessInfo.processInfo.systemUptime + 0.2
            while case let left = resendAt - ProcessInfo.processInfo.systemUptime, left > 0 {
                guard let event = try receiverCtx.next(timeout: left) else { break }
                if case .datagram(let c, let bytes) = event {
                    XCTAssertTrue(c === receiver)
                    if bytes == datagram { return bytes }
                    continue
                }
                onOther(event)
            }
        }
        throw ParleyError(code: ParleyError.Code.timeout.rawValue, detail: "no datagram within \(timeout) s")
    }
}

import CParley
import Foundation

/// Monotonic seconds.
enum Monotonic {
    static var now: TimeInterval { ProcessInfo.processInfo.systemUptime }
}

func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let s else { return try body(nil) }
    return try s.withCString { try body($0) }
}

/// A context's handle, its calls and its rooms, shared by the ``Context`` and every ``Call``
/// and ``Room`` (which outlive their context).
///
/// Calls and rooms are named by tokens: each gets a number, unique for the registry's life,
/// that is attached to its C handle as its user data (`parley_call_set_user_data`,
/// `parley_room_set_user_data`) and that every event about it carries back
/// (`parley_event.user_data`). So an event never has to be matched by its handle's address,
/// which a later handle may reuse once the first was destroyed.
///
/// Two locks:
/// - `pollLock` lets one thread at a time take an event: the pointers in a polled event
///   (`text`, `data`) are valid only until the next poll on the context.
/// - `state` (a condition) guards the context handle and the token → object maps. It is not
///   held while `parley_context_wait_event_sized` blocks, so requests (a call, a join, a
///   release) go ahead meanwhile; `waiting` marks a wait in flight, which
///   - ``close()`` wakes (`parley_context_wake`) and waits for before destroying the context
///     (libparley: a wait must not race with `parley_context_destroy`), so waits need no
///     time slices;
///   - an event it returns may name a handle created while it waited, before the handle got
///     its token (user data is read at delivery): such handles are kept in `bornDuringWait`
///     until the wait's event is converted, and a release of one is deferred until then.
final class Registry: @unchecked Sendable {
    private struct CallEntry {
        /// The one Swift object of this handle (weak: it releases the handle in deinit).
        weak var call: Call?
        /// A strong reference while the call is going (until its ENDED event, or close).
        var keep: Call?
    }

    private struct RoomEntry {
        weak var room: Room?
        /// A strong reference while joined (until leave, close of the room, or close).
        var keep: Room?
    }

    let sampleRate: Int
    let channels: Int
    private let pollLock = NSLock()
    private let state = NSCondition()
    private var context: OpaquePointer?
    /// True while a thread is inside `parley_context_wait_event_sized` (at most one: pollLock).
    private var waiting = false
    private var nextToken: UInt = 1
    private var calls: [UInt: CallEntry] = [:]
    private var rooms: [UInt: RoomEntry] = [:]
    /// Handles created (with their tokens) while the current wait was in flight.
    private var bornDuringWait: [OpaquePointer: UInt] = [:]
    private var deferredCalls: [OpaquePointer] = []
    private var deferredRooms: [OpaquePointer] = []

    init(context: OpaquePointer, sampleRate: Int, channels: Int) {
        self.context = context
        self.sampleRate = sampleRate
        self.channels = channels
    }

    static func closedError() -> ParleyError {
        ParleyError(code: ParleyError.Code.closed.rawValue, detail: "the context is closed")
    }

    /// The user data that carries `token`.
    static func userData(_ token: UInt) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer(bitPattern: token)
    }

    /// A fresh token (lock held).
    private func takeToken() -> UInt {
        defer { nextToken += 1 }
        return nextToken
    }

    var isClosed: Bool {
        state.lock()
        defer { state.unlock() }
        return context == nil
    }

    func close() {
        var dropped: [AnyObject] = []  // released after unlocking: deinits take the lock
        state.lock()
        if let ctx = context {
            context = nil  // no new wait starts; requests throw PARLEY_ERR_CLOSED
            if waiting { _ = parley_context_wake(ctx) }  // the wait returns at once
            while waiting { state.wait() }
            _ = parley_context_destroy(ctx)
            for (key, entry) in calls {
                if let c = entry.keep { dropped.append(c) }
                calls[key]?.keep = nil
            }
            for (key, entry) in rooms {
                if let r = entry.keep { dropped.append(r) }
                rooms[key]?.keep = nil
            }
        }
        state.unlock()
        withExtendedLifetime(dropped) {}
    }

    /// Makes a thread blocked in a wait on this context return (`parley_context_wake`); if
    /// none is waiting, the next wait returns at once. A no-op once closed.
    func wake() {
        state.lock()
        if let ctx = context { _ = parley_context_wake(ctx) }
        state.unlock()
    }

    /// Runs `body` with the live context handle (lock held); throws `PARLEY_ERR_CLOSED`.
    func withContext<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        state.lock()
        defer { state.unlock() }
        guard let ctx = context else { throw Registry.closedError() }
        return try body(ctx)
    }

    func start(_ peer: String) throws -> Call {
        // The lock is held until the call has its token and is registered: an event about it
        // that a concurrent wait takes meanwhile is converted only afterwards.
        try withContext { ctx in
            var out: OpaquePointer?
            try check(parley_call_start(ctx, peer, &out))
            let handle = out!
            let token = takeToken()
            _ = parley_call_set_user_data(handle, Registry.userData(token))
            let call = Call(handle: handle, token: token, registry: self, peer: peer, outgoing: true)
            calls[token] = CallEntry(call: call, keep: call)
            if waiting { bornDuringWait[handle] = token }
            return call
        }
    }

    func join(_ id: String) throws -> Room {
        try withContext { ctx in
            var out: OpaquePointer?
            try check(parley_room_join(ctx, id, &out))
            let handle = out!
            let token = takeToken()
            _ = parley_room_set_user_data(handle, Registry.userData(token))
            let room = Room(handle: handle, token: token, registry: self, id: id.lowercased())
            rooms[token] = RoomEntry(room: room, keep: room)
            if waiting { bornDuringWait[handle] = token }
            return room
        }
    }

    /// Called by `Call.deinit` (never with the lock held by this thread: strong references
    /// are only dropped after unlocking).
    func release(call handle: OpaquePointer, token: UInt) {
        state.lock()
        calls.removeValue(forKey: token)
        if waiting && bornDuringWait[handle] != nil {
            deferredCalls.append(handle)
        } else {
            parley_call_destroy(handle)
        }
        state.unlock()
    }

    /// Called once per room by `Room.close()` or `Room.deinit`.
    func release(room handle: OpaquePointer, token: UInt) {
        state.lock()
        let dropped = rooms.removeValue(forKey: token)?.keep
        if waiting && bornDuringWait[handle] != nil {
            deferredRooms.append(handle)
        } else {
            parley_room_destroy(handle)
        }
        state.unlock()
        withExtendedLifetime(dropped) {}
    }

    /// The context stops keeping the room of `token` alive (it was left).
    func unkeep(room token: UInt) {
        state.lock()
        let dropped = rooms[token]?.keep
        rooms[token]?.keep = nil
        state.unlock()
        withExtendedLifetime(dropped) {}
    }

    /// After a wait's event was converted (lock held): destroys the handles whose release
    /// waited for it, and forgets the handles born during it.
    private func endWait() {
        for h in deferredCalls { parley_call_destroy(h) }
        for h in deferredRooms { parley_room_destroy(h) }
        deferredCalls.removeAll()
        deferredRooms.removeAll()
        bornDuringWait.removeAll()
    }

    enum Step {
        /// No event (none in time, or a wake).
        case none
        /// An event about a released handle: nothing to report.
        case dropped
        case event(Event)
    }

    /// Takes one event, waiting up to `ms` milliseconds (`UInt32.max`: until an event or a
    /// wake); pollLock held by the caller.
    func step(waitingUpTo ms: UInt32) throws -> Step {
        state.lock()
        guard let ctx = context else {
            state.unlock()
            throw Registry.closedError()
        }
        waiting = true
        state.unlock()

        // parley_context_wait_event is a C macro passing the header's sizeof: Swift calls the
        // function behind it with the size of the struct it was compiled with.
        var ev = parley_event()
        let rc = parley_context_wait_event_sized(ctx, &ev, MemoryLayout<parley_event>.size, ms)
        let failure = rc < 0 ? ParleyError.last(rc) : nil

        var held: [AnyObject] = []  // released after unlocking: deinits take the lock
        state.lock()
        waiting = false
        var result = Step.none
        if rc > 0 {
            // Converted before deferred releases run: the handles it names are still live.
            result = convert(ev, holding: &held).map { .event($0) } ?? .dropped
        }
        endWait()
        state.broadcast()  // close() may be waiting
        state.unlock()
        withExtendedLifetime(held) {}
        if let failure { throw failure }
        return result
    }

    /// The next event, nil when none is queued (or another thread is taking one). Throws
    /// `PARLEY_ERR_CLOSED` once closed.
    func poll() throws -> Event? {
        guard pollLock.try() else {
            if isClosed { throw Registry.closedError() }
            return nil
        }
        defer { pollLock.unlock() }
        while true {
            switch try step(waitingUpTo: 0) {
            case .none: return nil
            case .dropped: continue
            case .event(let e): return e
            }
        }
    }

    /// The next event within `timeout` seconds, or nil. One blocking wait to the deadline
    /// (close() wakes it), not slices.
    func next(timeout: TimeInterval) throws -> Event? {
        let deadline = Monotonic.now + max(0, timeout)
        repeat {
            let left = deadline - Monotonic.now
            guard pollLock.lock(before: Date(timeIntervalSinceNow: max(0, left))) else { break }
            defer { pollLock.unlock() }
            let wait = max(0, deadline - Monotonic.now)
            let ms = min((wait * 1000).rounded(.up), Double(UInt32.max - 1))
            if case .event(let e) = try step(waitingUpTo: UInt32(ms)) {
                return e
            }
        } while Monotonic.now < deadline
        if isClosed { throw Registry.closedError() }
        return nil
    }

    /// One wait for the event pump of ``Context/events``: the next event, or nil when the
    /// wait returned without one (a wake) or `stopped()` said so before it began. Waits for
    /// the poll lock first.
    func pumpStep(stopped: () -> Bool) throws -> Event? {
        pollLock.lock()
        defer { pollLock.unlock() }
        while !stopped() {
            switch try step(waitingUpTo: UInt32.max) {
            case .none: return nil
            case .dropped: continue
            case .event(let e): return e
            }
        }
        return nil
    }

    /// A `PARLEY_EVENT_ERROR` as an ``Event``: an invite refused without ringing names its
    /// sender (and no call or room); any other error is ``Event/error(_:call:origin:)``.
    static func errorEvent(_ error: ParleyError, peer: String, call: Call?, room: Room?,
                           origin: Origin) -> Event {
        if call == nil && room == nil && !peer.isEmpty { return .inviteRefused(from: peer, error: error) }
        return .error(error, call: call, origin: origin)
    }

    /// Turns a polled C event into an ``Event`` (lock held). Returns nil for an event about a
    /// released call or room. Every object it takes a strong reference to goes to `held`, for
    /// the caller to drop after unlocking.
    private func convert(_ ev: parley_event, holding held: inout [AnyObject]) -> Event? {
        let text = ev.text.map { String(cString: $0) } ?? ""
        let peer = withUnsafeBytes(of: ev.peer) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let error: ParleyError? = ev.error == 0 ? nil : ParleyError(code: ev.error, detail: text)
        let origin = Origin(rawValue: ev.origin)
        let payload = { ev.data.map { Array(UnsafeBufferPointer(start: $0, count: ev.len)) } ?? [] }

        var call: Call?
        var callToken: UInt = 0
        if let handle = ev.call {
            if ev.type == Int32(PARLEY_EVENT_INCOMING_CALL.rawValue) {
                // A new handle, without user data yet: here it gets its token.
                callToken = takeToken()
                _ = parley_call_set_user_data(handle, Registry.userData(callToken))
                let c = Call(handle: handle, token: callToken, registry: self, peer: peer,
                             outgoing: false)
                calls[callToken] = CallEntry(call: c, keep: c)
                call = c
            } else {
                // The token parley handed back; none for a call placed while this wait was
                // in flight, before its token was set: bornDuringWait has it.
                callToken = UInt(bitPattern: ev.user_data)
                if callToken == 0 { callToken = bornDuringWait[handle] ?? 0 }
                // Released (its deinit may be waiting for the lock), or never ours.
                guard let c = calls[callToken]?.call else { return nil }
                held.append(c)
                call = c
            }
        }
        var room: Room?
        if let handle = ev.room {
            var token = UInt(bitPattern: ev.user_data)
            if token == 0 { token = bornDuringWait[handle] ?? 0 }
            guard let r = rooms[token]?.room else { return nil }  // released, or being released
            held.append(r)
            room = r
        }

        switch ev.type {
        case Int32(PARLEY_EVENT_RELAY_STATE.rawValue):
            let state = RelayState(rawValue: ev.relay_state)
            // The one relay state that names something: the identity the relay presented.
            if state == .untrusted { return .relayUntrusted(fingerprint: peer) }
            return .relayState(state, error: error)
        case Int32(PARLEY_EVENT_INCOMING_CALL.rawValue):
            guard let call else { return nil }
            return .incomingCall(call)
        case Int32(PARLEY_EVENT_CALL_STATE.rawValue):
            guard let call else { return nil }
            let state = CallState(rawValue: ev.call_state)
            if state == .ended, let keep = calls[callToken]?.keep {
                held.append(keep)
                calls[callToken]?.keep = nil
            }
            return .callState(call, state, error: error, text: text, origin: origin)
        case Int32(PARLEY_EVENT_DATAGRAM.rawValue):
            guard let call else { return nil }
            return .datagram(call, payload())
        case Int32(PARLEY_EVENT_PATH_CHANGED.rawValue):
            guard let call else { return nil }
            return .pathChanged(call, from: Path(rawValue: ev.path_from), to: Path(rawValue: ev.path),
                                reason: text)
        case Int32(PARLEY_EVENT_QUALITY_CHANGED.rawValue):
            let change = QualityChange(
                from: Int(ev.profile_from), to: Int(ev.profile),
                reason: QualityReason(rawValue: ev.quality_reason), name: text,
                timestamp: ev.timestamp)
            if let call { return .qualityChanged(call, change) }
            if let room { return .roomQualityChanged(room, change) }
            return nil
        case Int32(PARLEY_EVENT_RELAY_TRUSTED.rawValue):
            return .relayTrusted(fingerprint: peer)
        case Int32(PARLEY_EVENT_ERROR.rawValue):
            return Registry.errorEvent(
                error ?? ParleyError(code: ParleyError.Code.internal.rawValue, detail: text),
                peer: peer, call: call, room: room, origin: origin)
        case Int32(PARLEY_EVENT_ROOM_UPDATE.rawValue):
            guard let room else { return nil }
            return .roomUpdate(room, memberCount: Int(ev.member_count), ownStream: ev.stream_id)
        case Int32(PARLEY_EVENT_ROOM_FRAME.rawValue):
            guard let room else { return nil }
            return .roomFrame(room, sender: peer, stream: ev.stream_id, sequence: ev.sequence,
                              timestamp: ev.timestamp, payload: payload())
        default:
            return .other(type: ev.type, call: call)
        }
    }
}

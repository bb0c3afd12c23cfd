import Foundation
import Parley
import XCTest

/// Rooms against the real relay: three contexts in one room, membership, frames, leave,
/// re-join, release and the errors. Every wait is bounded by a deadline; nothing sleeps.
final class RoomTests: RelayTestCase {
    /// A received room frame, for comparisons.
    private struct Frame: Equatable {
        var sender: String
        var stream: UInt32
        var sequence: UInt32
        var timestamp: UInt32
        var payload: [UInt8]
    }

    /// Waits for an update of `room` with `count` members and returns our own stream id.
    /// A frame of our own coming back would be a relay bug: it fails the test.
    @discardableResult
    private func waitMembers(_ ctx: Context, _ room: Room, _ count: Int,
                             timeout: TimeInterval = 10) throws -> UInt32 {
        var own: UInt32 = 0
        try ctx.waitFor(timeout: timeout) { event in
            if case .roomFrame(_, let sender, _, _, _, _) = event, sender == ctx.fingerprint {
                XCTFail("our own frame came back: \(event)")
            }
            guard case .roomUpdate(let r, let n, let stream) = event, r === room, n == count else {
                return false
            }
            own = stream
            return true
        }
        return own
    }

    /// The next frame of `room` at `ctx` within `timeout` seconds, or nil.
    private func nextFrame(_ ctx: Context, _ room: Room, timeout: TimeInterval) throws -> Frame? {
        let deadline = ProcessInfo.processInfo.systemUptime + timeout
        while case let left = deadline - ProcessInfo.processInfo.systemUptime, left > 0 {
            guard let event = try ctx.next(timeout: left) else { return nil }
            if case .roomFrame(let r, let sender, let stream, let seq, let ts, let payload) = event, r === room {
                return Frame(sender: sender, stream: stream, sequence: seq, timestamp: ts, payload: payload)
            }
        }
        return nil
    }

    /// Sends frames from `sender` (a new sequence number each time, timestamp 960 per
    /// sequence) until every receiver has one; returns what each received and the timestamp
    /// sent with each sequence number. Room frames are unreliable, hence the resending.
    private func deliver(_ payload: [UInt8], from sender: Room, firstSequence: UInt32,
                         to receivers: [(Context, Room)], timeout: TimeInterval = 10)
        throws -> (received: [Frame], sent: [UInt32: UInt32]) {
        var got = [Frame?](repeating: nil, count: receivers.count)
        var sent: [UInt32: UInt32] = [:]
        var seq = firstSequence
        let deadline = ProcessInfo.processInfo.systemUptime + timeout
        while got.contains(where: { $0 == nil }) {
            guard ProcessInfo.processInfo.systemUptime < deadline else {
                throw ParleyError(code: ParleyError.Code.timeout.rawValue,
                                  detail: "no room frame within \(timeout) s (got \(got))")
            }
            let ts = seq &* 960
            try sender.send(payload, sequence: seq, timestamp: ts)
            sent[seq] = ts
            for (i, (ctx, room)) in receivers.enumerated() where got[i] == nil {
                got[i] = try nextFrame(ctx, room, timeout: 0.5)
            }
            seq += 1
        }
        return (got.map { $0! }, sent)
    }

    func testRoomMembersFramesLeaveAndRejoin() throws {
        let relay = try startRelay()
        let parties = try (0..<3).map { _ in try party(relay) }
        for p in parties { try waitRegistered(p) }
        let (a, b, c) = (parties[0], parties[1], parties[2])

        let id = Room.generateID()
        XCTAssertEqual(id.count, 32)
        XCTAssertTrue(id.allSatisfy { "0123456789abcdef".contains($0) }, id)
        XCTAssertNotEqual(Room.generateID(), id)

        // All three join; each sees three members and lists all three with their streams.
        let rooms = try parties.map { try $0.join(room: id) }
        XCTAssertEqual(rooms[0].id, id)
        let own = try zip(parties, rooms).map { try waitMembers($0, $1, 3) }
        XCTAssertEqual(Set(own).count, 3, "stream ids \(own)")
        let expected = Dictionary(uniqueKeysWithValues: zip(parties.map(\.fingerprint), own))
        for room in rooms {
            let members = try room.members()
            XCTAssertEqual(members.count, 3, "\(members)")
            XCTAssertEqual(Dictionary(members.map { ($0.fingerprint, $0.streamID) },
                                      uniquingKeysWith: { x, _ in x }), expected)
        }

        // A frame from A reaches B and C exactly as sent (binary payload included).
        let payload = Array(0...255).map(UInt8.init) + Array("sealed by the host".utf8)
        let (frames, sent) = try deliver(payload, from: rooms[0], firstSequence: 7,
                                         to: [(b, rooms[1]), (c, rooms[2])])
        for frame in frames {
            XCTAssertEqual(frame.sender, a.fingerprint)
            XCTAssertEqual(frame.stream, own[0])
            XCTAssertEqual(frame.payload, payload)
            XCTAssertEqual(sent[frame.sequence], frame.timestamp, "sequence \(frame.sequence)")
        }
        if frames[0].sequence == frames[1].sequence { XCTAssertEqual(frames[0], frames[1]) }
        XCTAssertThrowsError(try rooms[0].send([UInt8](repeating: 1, count: Room.maxPayloadSize + 1),
                                               sequence: 100, timestamp: 0)) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .messageTooLarge, "\($0)")
        }
        XCTAssertThrowsError(try rooms[0].send([1], sequence: 100, timestamp: 0, profile: 5)) {
            XCTAssertEqual(($0 as? ParleyError)?.code, -1, "\($0)")
        }

        // C leaves: A and B see two members; leaving again is -51 (not a member), and so is
        // sending.
        try rooms[2].leave()
        try waitMembers(a, rooms[0], 2)
        try waitMembers(b, rooms[1], 2)
        XCTAssertEqual(Set(try rooms[0].members().map(\.fingerprint)), [a.fingerprint, b.fingerprint])
        XCTAssertThrowsError(try rooms[2].leave()) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .notAMember, "\($0)")
        }
        XCTAssertThrowsError(try rooms[2].send([1], sequence: 1, timestamp: 0)) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .notAMember, "\($0)")
        }

        // Ids that are not 32 hex characters, and a room A is already in: -1.
        for bad in ["xyz", String(repeating: "g", count: 32), id + "00", id] {
            XCTAssertThrowsError(try a.join(room: bad), bad) {
                XCTAssertEqual(($0 as? ParleyError)?.code, -1, "\($0)")
            }
        }

        // C joins again (a new Room object); everyone sees three again and C's frames arrive.
        let again = try c.join(room: id.uppercased())
        XCTAssertFalse(again === rooms[2])
        XCTAssertEqual(again.id, id)
        let ownAgain = try waitMembers(c, again, 3)
        try waitMembers(a, rooms[0], 3)
        try waitMembers(b, rooms[1], 3)
        XCTAssertTrue(try again.members().contains(RoomMember(fingerprint: c.fingerprint, streamID: ownAgain)))
        let (fromC, sentC) = try deliver(Array("again".utf8), from: again, firstSequence: 1,
                                         to: [(a, rooms[0])])
        XCTAssertEqual(fromC[0].sender, c.fingerprint)
        XCTAssertEqual(fromC[0].stream, ownAgain)
        XCTAssertEqual(fromC[0].payload, Array("again".utf8))
        XCTAssertEqual(sentC[fromC[0].sequence], fromC[0].timestamp)

        // Closing B's room releases it, which leaves: A sees A and C. B's requests then throw
        // PARLEY_ERR_INVALID_HANDLE; closing twice is harmless.
        rooms[1].close()
        rooms[1].close()
        try waitMembers(a, rooms[0], 2)
        XCTAssertEqual(Set(try rooms[0].members().map(\.fingerprint)), [a.fingerprint, c.fingerprint])
        XCTAssertThrowsError(try rooms[1].members()) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .invalidHandle, "\($0)")
        }
        XCTAssertThrowsError(try rooms[1].send([1], sequence: 1, timestamp: 0)) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .invalidHandle, "\($0)")
        }

        // Rooms outlive their context: requests throw PARLEY_ERR_CLOSED, members stay readable.
        a.close()
        XCTAssertThrowsError(try rooms[0].send([1], sequence: 1, timestamp: 0)) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .closed, "\($0)")
        }
        XCTAssertEqual(try rooms[0].members().count, 2)
        XCTAssertThrowsError(try a.join(room: Room.generateID())) {
            XCTAssertEqual(($0 as? ParleyError)?.knownCode, .closed, "\($0)")
        }
        // C sees A go (the relay drops the members of a client that goes away).
        try waitMembers(c, again, 1)
    }

    /// Rooms joined and released on one thread while another waits for events: events name
    /// rooms by the tokens in their user data, so no event for a released room is reported
    /// (and a handle born during a wait is released only after it), nothing deadlocks.
    func testJoinAndReleaseWhileAnotherThreadWaits() throws {
        let relay = try startRelay()
        let a = try party(relay)
        try waitRegistered(a)
        let stop = Outcome()
        let finished = DispatchSemaphore(value: 0)
        let seen = Outcome()
        Thread.detachNewThread {
            while stop.get() == nil {
                do {
                    switch try a.next(timeout: 0.2) {
                    case .roomUpdate(let room, _, _)?: seen.count(room)
                    case .error(let error, _, _)?: seen.set(error)  // e.g. a refused join
                    default: break
                    }
                } catch {
                    seen.set(error)
                    break
                }
            }
            finished.signal()
        }
        // The relay allows a client 4 rooms at once: each round joins two, closes one at once
        // and leaves the other once the worker has seen its update (the same object). The
        // rooms left are kept (so no object address is reused) and released at the end.
        var left: [Room] = []
        for _ in 0..<15 {
            try a.join(room: Room.generateID()).close()
            let kept = try a.join(room: Room.generateID())
            XCTAssertTrue(seen.wait(for: ObjectIdentifier(kept), timeout: 10),
                          "no update seen for \(kept)")
            try kept.leave()
            left.append(kept)
        }
        left.removeAll()
        stop.set(ParleyError(code: 0))
        XCTAssertEqual(finished.wait(timeout: .now() + 10), .success)
        XCTAssertNil(seen.get())
    }

    /// `next(timeout:)` blocks in parley_context_wait_event; `close()` from another thread
    /// wakes it at once (parley_context_wake: the waiter gets PARLEY_ERR_CLOSED) instead of
    /// after its timeout.
    func testCloseEndsAWaitingNext() throws {
        let ctx = try Context(identity: Identity.generate(),
                              configuration: Context.Configuration(relayAddress: "127.0.0.1:9"))
        contexts.append(ctx)
        let started = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        Thread.detachNewThread {
            started.signal()
            do {
                while true { _ = try ctx.next(timeout: 30) }  // relay-state events until closed
            } catch {
                outcome.set(error)
            }
            finished.signal()
        }
        XCTAssertEqual(started.wait(timeout: .now() + 10), .success)
        let t0 = ProcessInfo.processInfo.systemUptime
        ctx.close()
        let closeTook = ProcessInfo.processInfo.systemUptime - t0
        XCTAssertEqual(finished.wait(timeout: .now() + 10), .success)
        XCTAssertLessThan(closeTook, 2, "close waited for the whole wait")
        XCTAssertEqual((outcome.get() as? ParleyError)?.knownCode, .closed, "\(String(describing: outcome.get()))")
    }
}

/// What a worker thread hands to the test: an error, and the rooms it saw events about.
private final class Outcome: @unchecked Sendable {
    private let cond = NSCondition()
    private var error: Error?
    private var rooms: Set<ObjectIdentifier> = []

    func set(_ e: Error) { cond.lock(); error = e; cond.unlock() }
    func get() -> Error? { cond.lock(); defer { cond.unlock() }; return error }

    func count(_ room: Room) {
        cond.lock()
        rooms.insert(ObjectIdentifier(room))
        cond.broadcast()
        cond.unlock()
    }

    /// Waits until `room` was seen; false after `timeout` seconds.
    func wait(for room: ObjectIdentifier, timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        cond.lock()
        defer { cond.unlock() }
        while !rooms.contains(room) {
            if !cond.wait(until: deadline) { return rooms.contains(room) }
        }
        return true
    }
}

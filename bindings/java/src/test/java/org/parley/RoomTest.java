package org.parley;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNotSame;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * Real rooms: a parley-relay process on loopback ($PARLEY_RELAY) and three contexts in this
 * JVM that join one room, see each other, exchange frames, leave and join again. Every wait
 * is on an event with a deadline.
 */
public class RoomTest {
  private static final long WAIT_MS = 10_000;

  private static RelayProcess relay;

  @BeforeClass
  public static void startRelay() throws Exception {
    relay = RelayProcess.start();
  }

  @AfterClass
  public static void stopRelay() throws Exception {
    if (relay != null) relay.close();
  }

  private static Context.Config config() {
    return Context.Config.builder()
        .relayAddress(relay.address)
        .relayFingerprint(relay.fingerprint)
        .build();
  }

  /** One room update as the listener saw it, with the members listed from the listener. */
  static final class Update {
    final Room room;
    final int memberCount;
    final int ownStreamId;
    final List<RoomMember> listed;
    final Thread thread;

    Update(Room room, int memberCount, int ownStreamId, List<RoomMember> listed) {
      this.room = room;
      this.memberCount = memberCount;
      this.ownStreamId = ownStreamId;
      this.listed = listed;
      this.thread = Thread.currentThread();
    }
  }

  /** One room frame as the listener saw it. */
  static final class Frame {
    final Room room;
    final String sender;
    final int streamId;
    final int sequence;
    final int timestamp;
    final byte[] payload;

    Frame(Room room, String sender, int streamId, int sequence, int timestamp, byte[] payload) {
      this.room = room;
      this.sender = sender;
      this.streamId = streamId;
      this.sequence = sequence;
      this.timestamp = timestamp;
      this.payload = payload;
    }
  }

  static final byte[] PING = "ping".getBytes(StandardCharsets.UTF_8);
  static final byte[] PONG = "xpong".getBytes(StandardCharsets.UTF_8); // sent from offset 1

  /**
   * Records room events into queues; lists the members from inside onRoomUpdate, optionally
   * answers a "ping" frame from inside onRoomFrame (both parley calls made by a listener), and
   * checks that no listener method is ever entered while another one runs on its thread.
   */
  static class RoomRecorder extends CallTest.Recorder {
    final BlockingQueue<Update> updates = new LinkedBlockingQueue<>();
    final BlockingQueue<Frame> frames = new LinkedBlockingQueue<>();
    final BlockingQueue<String> errors = new LinkedBlockingQueue<>();
    final BlockingQueue<Throwable> failures = new LinkedBlockingQueue<>();
    final AtomicInteger depth = new AtomicInteger();
    final AtomicInteger maxDepth = new AtomicInteger();
    volatile boolean answerPing;

    private void enter() {
      int d = depth.incrementAndGet();
      maxDepth.accumulateAndGet(d, Math::max);
    }

    private void exit() {
      depth.decrementAndGet();
    }

    @Override
    public void onRelayState(RelayState state, int error) {
      enter();
      try {
        super.onRelayState(state, error);
      } finally {
        exit();
      }
    }

    @Override
    public void onError(int error, String text) {
      errors.add(ParleyException.nameOf(error) + ": " + text);
    }

    @Override
    public void onRoomUpdate(Room room, int memberCount, int ownStreamId) {
      enter();
      try {
        List<RoomMember> listed = null;
        try {
          listed = room.members();
        } catch (RuntimeException e) {
          failures.add(e);
        }
        updates.add(new Update(room, memberCount, ownStreamId, listed));
      } finally {
        exit();
      }
    }

    @Override
    public void onRoomFrame(
        Room room, String sender, int streamId, int sequence, int timestamp, byte[] payload) {
      enter();
      try {
        frames.add(new Frame(room, sender, streamId, sequence, timestamp, payload));
        if (answerPing && Arrays.equals(PING, payload)) {
          try {
            room.send(PONG, 1, PONG.length - 1, sequence + 1000, timestamp + 960, 0);
          } catch (RuntimeException e) {
            failures.add(e);
          }
        }
      } finally {
        exit();
      }
    }

    /** Waits for an update of `room` with `members` members; others pass. */
    Update awaitUpdate(Room room, int members) throws InterruptedException {
      long deadline = System.currentTimeMillis() + WAIT_MS;
      for (;;) {
        long left = deadline - System.currentTimeMillis();
        Update u = left > 0 ? updates.poll(left, TimeUnit.MILLISECONDS) : null;
        if (u == null) fail(room + " never had " + members + " members");
        if (u.room == room && u.memberCount == members) return u;
      }
    }

    /** The next frame of `room` from `sender` within `ms`, or null; others pass. */
    Frame pollFrame(Room room, String sender, long ms) throws InterruptedException {
      long deadline = System.currentTimeMillis() + ms;
      for (;;) {
        long left = deadline - System.currentTimeMillis();
        Frame f = left > 0 ? frames.poll(left, TimeUnit.MILLISECONDS) : null;
        if (f == null) return null;
        if (f.room == room && f.sender.equals(sender)) return f;
      }
    }

    void assertClean() {
      assertEquals("a listener was re-entered", 1, maxDepth.get());
      assertTrue("listener failures: " + failures, failures.isEmpty());
      assertTrue("relay errors: " + errors, errors.isEmpty());
    }
  }

  private static ParleyException expect(int code, Runnable r) {
    try {
      r.run();
    } catch (ParleyException e) {
      assertEquals(e.toString(), code, e.code());
      assertEquals(ParleyException.nameOf(code), e.errorName());
      return e;
    }
    fail("expected " + ParleyException.nameOf(code));
    return null;
  }

  private static Set<RoomMember> set(List<RoomMember> members) {
    Set<RoomMember> s = new HashSet<>(members);
    assertEquals("duplicate members " + members, members.size(), s.size());
    return s;
  }

  @Test(timeout = 60_000)
  public void threeMembersFramesLeaveAndRejoin() throws Exception {
    String id = Room.generateId();
    assertTrue(id, id.matches("[0-9a-f]{32}"));
    assertEquals(Parley.ROOM_ID_LENGTH, id.length());
    assertNotEquals(id, Parley.generateRoomId());

    final int n = 3;
    Identity[] ids = new Identity[n];
    Context[] c = new Context[n];
    RoomRecorder[] r = new RoomRecorder[n];
    try {
      for (int i = 0; i < n; ++i) {
        ids[i] = Identity.generate();
        r[i] = new RoomRecorder();
        c[i] = Context.create(ids[i], config(), r[i]);
      }
      for (int i = 0; i < n; ++i) r[i].awaitRegistered();
      r[1].answerPing = true;

      // Ids that are not 32 hex characters: PARLEY_ERR_INVALID_ARGUMENT (-1).
      for (String bad : new String[] {"not-a-room", id.substring(1), id + "0", ""}) {
        ParleyException e = expect(ParleyException.INVALID_ARGUMENT, () -> c[0].joinRoom(bad));
        assertEquals(-1, e.code());
      }

      Room[] rooms = new Room[n];
      for (int i = 0; i < n; ++i) {
        rooms[i] = c[i].joinRoom(id);
        assertSame(c[i], rooms[i].context());
        assertEquals(id, rooms[i].id());
      }
      // Already in it (in either case): refused.
      expect(ParleyException.INVALID_ARGUMENT, () -> c[0].joinRoom(id));
      expect(ParleyException.INVALID_ARGUMENT, () -> c[0].joinRoom(id.toUpperCase()));

      // Everyone sees three members; the update names the very Room object joinRoom returned,
      // on the context's daemon thread, and members() from inside the listener agrees.
      int[] streams = new int[n];
      for (int i = 0; i < n; ++i) {
        Update u = r[i].awaitUpdate(rooms[i], 3);
        assertSame(rooms[i], u.room);
        assertTrue(u.thread.isDaemon());
        assertNotSame(Thread.currentThread(), u.thread);
        assertNotEquals(0, u.ownStreamId);
        assertNotNull(u.listed);
        assertEquals(3, u.listed.size());
        streams[i] = u.ownStreamId;
        assertEquals(3, rooms[i].memberCount());
        assertEquals(streams[i], rooms[i].ownStreamId());
      }
      assertEquals(3, new HashSet<>(Arrays.asList(streams[0], streams[1], streams[2])).size());
      Set<RoomMember> all = new HashSet<>();
      for (int i = 0; i < n; ++i) all.add(new RoomMember(c[i].fingerprint(), streams[i]));
      for (int i = 0; i < n; ++i) {
        List<RoomMember> m = rooms[i].members();
        assertEquals(all, set(m));
        System.out.println("RoomTest: member " + i + " lists " + m);
      }

      // A frame from 0 reaches 1 and 2 as sent (unreliable: resent, one more each time).
      byte[] payload = new byte[300];
      for (int k = 0; k < payload.length; ++k) payload[k] = (byte) (k * 7 + 3);
      payload[0] = 0;
      payload[1] = (byte) 0xff;
      Frame[] got = new Frame[n];
      int sent = 0;
      while (sent < 10 && (got[1] == null || got[2] == null)) {
        ++sent;
        rooms[0].send(payload, sent, sent * 960, 0);
        for (int i = 1; i < n; ++i) {
          if (got[i] == null) got[i] = r[i].pollFrame(rooms[i], c[0].fingerprint(), 1000);
        }
      }
      for (int i = 1; i < n; ++i) {
        Frame f = got[i];
        assertNotNull("no frame reached member " + i + " in " + sent + " tries", f);
        assertSame(rooms[i], f.room);
        assertArrayEquals(payload, f.payload);
        assertEquals(c[0].fingerprint(), f.sender);
        assertEquals(streams[0], f.streamId);
        assertTrue(f.sequence >= 1 && f.sequence <= sent);
        assertEquals(f.sequence * 960, f.timestamp);
      }
      System.out.println(
          "RoomTest: a " + payload.length + "-byte frame reached both others (" + sent
              + " sent)");

      // Member 1 answers a ping from inside its listener (Room.send from the callback).
      Frame pong = null;
      for (int k = 0; k < 10 && pong == null; ++k) {
        rooms[0].send(PING, 100 + k, 0x7fff_fff0 + k, 0);
        pong = r[0].pollFrame(rooms[0], c[1].fingerprint(), 1000);
      }
      assertNotNull("no answer from member 1", pong);
      assertEquals("pong", new String(pong.payload, StandardCharsets.UTF_8));
      assertEquals(streams[1], pong.streamId);
      assertTrue(pong.sequence >= 1100 && pong.sequence < 1110);
      // Timestamps are unsigned 32 bit: the answer's wrapped past 2^31.
      assertEquals(pong.sequence - 1100 + 0x7fff_fff0 + 960, pong.timestamp);
      assertTrue(pong.timestamp < 0);

      // Our own frames never come back.
      for (Frame f : r[0].frames) assertNotEquals(c[0].fingerprint(), f.sender);

      expect(ParleyException.MESSAGE_TOO_LARGE,
          () -> rooms[0].send(new byte[Parley.DATAGRAM_MAX + 1], 1, 0, 0));
      expect(ParleyException.INVALID_ARGUMENT, () -> rooms[0].send(payload, 1, 0, 5));
      try {
        rooms[0].send(payload, 299, 2, 1, 0, 0);
        fail("range past the end accepted");
      } catch (IndexOutOfBoundsException expected) {
        // checked in Java
      }

      // Member 2 leaves: the others see two members; leaving again is NOT_A_MEMBER (-51).
      rooms[2].leave();
      assertTrue(rooms[2].isLeft());
      for (int i = 0; i < 2; ++i) {
        Update u = r[i].awaitUpdate(rooms[i], 2);
        Set<RoomMember> two = new HashSet<>(all);
        two.remove(new RoomMember(c[2].fingerprint(), streams[2]));
        assertEquals(two, set(u.listed));
        assertEquals(two, set(rooms[i].members()));
      }
      ParleyException e = expect(ParleyException.NOT_A_MEMBER, rooms[2]::leave);
      assertEquals(-51, e.code());
      assertEquals("PARLEY_ERR_NOT_A_MEMBER", e.errorName());
      expect(ParleyException.NOT_A_MEMBER, () -> rooms[2].send(payload, 1, 0, 0));
      // The last known members stay readable.
      assertTrue(set(rooms[2].members()).contains(new RoomMember(c[2].fingerprint(), streams[2])));

      // Joining again works: a new Room, seen by the others, whose frames reach them.
      Room again = c[2].joinRoom(id);
      assertNotSame(rooms[2], again);
      Update mine = r[2].awaitUpdate(again, 3);
      assertSame(again, mine.room);
      int stream2 = again.ownStreamId();
      assertNotEquals(0, stream2);
      RoomMember back = new RoomMember(c[2].fingerprint(), stream2);
      for (int i = 0; i < 2; ++i) {
        Update u = r[i].awaitUpdate(rooms[i], 3);
        assertTrue(set(u.listed).contains(back));
      }
      assertTrue(set(again.members()).contains(new RoomMember(c[0].fingerprint(), streams[0])));
      Frame f = null;
      for (int k = 1; k <= 10 && f == null; ++k) {
        again.send(payload, 10, 20, k, k, 1);
        f = r[0].pollFrame(rooms[0], c[2].fingerprint(), 1000);
      }
      assertNotNull("no frame from the re-joined member", f);
      assertEquals(stream2, f.streamId);
      assertArrayEquals(Arrays.copyOfRange(payload, 10, 30), f.payload);

      // Closing leaves; closing twice is harmless; a closed room refuses with CLOSED.
      again.close();
      again.close();
      assertTrue(again.isClosed());
      for (int i = 0; i < 2; ++i) r[i].awaitUpdate(rooms[i], 2);
      expect(ParleyException.CLOSED, again::leave);
      expect(ParleyException.CLOSED, again::members);
      rooms[2].close();

      // Closing a context closes its rooms: the others see it go.
      c[1].close();
      assertTrue(rooms[1].isClosed());
      expect(ParleyException.CLOSED, () -> rooms[1].send(payload, 1, 0, 0));
      Update last = r[0].awaitUpdate(rooms[0], 1);
      assertEquals(Arrays.asList(new RoomMember(c[0].fingerprint(), streams[0])), last.listed);

      for (int i = 0; i < n; ++i) r[i].assertClean();
    } finally {
      for (int i = 0; i < n; ++i) {
        if (c[i] != null) c[i].close();
        if (ids[i] != null) ids[i].close();
      }
    }
  }

  /**
   * Joins from the context's own listener and from several threads at once: each Room object
   * is the one its updates name, with its own id.
   */
  @Test(timeout = 30_000)
  public void joinsFromListenerAndManyThreads() throws Exception {
    final String fromListener = Room.generateId();
    final AtomicReference<Room> listenerRoom = new AtomicReference<>();
    final BlockingQueue<Object> listenerJoin = new LinkedBlockingQueue<>(); // Room or Throwable
    final AtomicReference<Context> self = new AtomicReference<>();
    final CountDownLatch created = new CountDownLatch(1);
    RoomRecorder r =
        new RoomRecorder() {
          @Override
          public void onRelayState(RelayState state, int error) {
            super.onRelayState(state, error);
            if (state != RelayState.REGISTERED || listenerRoom.get() != null) return;
            try {
              if (!created.await(WAIT_MS, TimeUnit.MILLISECONDS)) return;
              Room room = self.get().joinRoom(fromListener);
              listenerRoom.set(room);
              listenerJoin.add(room);
            } catch (RuntimeException | InterruptedException e) {
              listenerJoin.add(e);
            }
          }
        };
    try (Identity id = Identity.generate();
        Context c = Context.create(id, config(), r)) {
      self.set(c);
      created.countDown();
      r.awaitRegistered();

      // The relay's default allows 4 rooms per client: 3 joined from threads at once, 1 from
      // the listener.
      final int threads = 3;
      final String[] roomIds = new String[threads];
      final Room[] joined = new Room[threads];
      final BlockingQueue<Throwable> errors = new LinkedBlockingQueue<>();
      final CountDownLatch go = new CountDownLatch(1);
      final CountDownLatch done = new CountDownLatch(threads);
      for (int t = 0; t < threads; ++t) {
        roomIds[t] = Parley.generateRoomId();
        final int k = t;
        Thread th =
            new Thread(
                () -> {
                  try {
                    go.await();
                    joined[k] = c.joinRoom(roomIds[k]);
                  } catch (Throwable e) {
                    errors.add(e);
                  } finally {
                    done.countDown();
                  }
                },
                "joiner-" + t);
        th.start();
      }
      go.countDown();
      assertTrue("joins did not return", done.await(WAIT_MS, TimeUnit.MILLISECONDS));
      assertTrue("join failures: " + errors, errors.isEmpty());

      // Every room gets its update (one member: us), naming the object its join returned.
      List<Room> expected = new ArrayList<>(Arrays.asList(joined));
      long deadline = System.currentTimeMillis() + WAIT_MS;
      Object result = listenerJoin.poll(WAIT_MS, TimeUnit.MILLISECONDS);
      assertNotNull("the listener did not join", result);
      if (result instanceof Throwable) {
        throw new AssertionError("join from the listener failed", (Throwable) result);
      }
      assertSame(listenerRoom.get(), result);
      expected.add(listenerRoom.get());
      Set<Room> seen = new HashSet<>();
      while (seen.size() < expected.size()) {
        long left = deadline - System.currentTimeMillis();
        Update u = left > 0 ? r.updates.poll(left, TimeUnit.MILLISECONDS) : null;
        if (u == null) fail("updates for " + seen.size() + " of " + expected.size() + " rooms");
        boolean known = false;
        for (Room x : expected) known |= x == u.room;
        assertTrue("an update named an unknown Room " + u.room, known);
        assertEquals(1, u.memberCount);
        assertEquals(
            Arrays.asList(new RoomMember(c.fingerprint(), u.ownStreamId)), u.listed);
        seen.add(u.room);
      }
      for (int t = 0; t < threads; ++t) assertEquals(roomIds[t], joined[t].id());
      assertEquals(fromListener, listenerRoom.get().id());
      r.assertClean();

      // A fifth room is one more than the relay allows: parley_room_join succeeded locally,
      // the relay's refusal arrives as onRoomError (by default passed on to onError), and the
      // room counts as left.
      Room fifth = c.joinRoom(Room.generateId());
      String refusal = r.errors.poll(WAIT_MS, TimeUnit.MILLISECONDS);
      assertNotNull("no refusal of the fifth room", refusal);
      assertTrue(refusal, refusal.startsWith("PARLEY_ERR_LIMIT_REACHED"));
      System.out.println("RoomTest: fifth room refused: " + refusal);
      assertEquals(0, fifth.memberCount());
      assertTrue(fifth.members().isEmpty());
      assertTrue(fifth.isLeft());
      expect(ParleyException.NOT_A_MEMBER, () -> fifth.send(PING, 1, 0, 0));
      expect(ParleyException.NOT_A_MEMBER, fifth::leave);
      fifth.close();
      for (Update u : r.updates) assertNotSame(fifth, u.room);

      c.close();
      for (Room x : expected) {
        assertTrue(x.isClosed());
        expect(ParleyException.CLOSED, x::members);
      }
    }
  }
}

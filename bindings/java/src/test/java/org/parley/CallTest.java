package org.parley;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * Real calls: a parley-relay process on loopback ($PARLEY_RELAY) and two contexts in this
 * JVM. Every wait is on an event with a deadline.
 */
public class CallTest {
  private static final long WAIT_MS = 10_000;
  private static final int RATE = 48000;
  private static final int CHUNK = RATE / 50; // 20 ms

  private static RelayProcess relay;

  @BeforeClass
  public static void startRelay() throws Exception {
    relay = RelayProcess.start();
  }

  @AfterClass
  public static void stopRelay() throws Exception {
    if (relay != null) relay.close();
  }

  private static Context.Config.Builder config() {
    return Context.Config.builder()
        .relayAddress(relay.name)  // by name: the library resolves "localhost:port"
        .relayFingerprint(relay.fingerprint)
        .sampleRate(RATE)
        .channels(1)
        .includeLoopback(true);
  }

  /** One call-state event as the listener saw it. */
  static final class StateEvent {
    final Call call;
    final CallState state;
    final int error;
    final String text;
    final Origin origin;
    final Thread thread;

    StateEvent(Call call, CallState state, int error, String text, Origin origin) {
      this.call = call;
      this.state = state;
      this.error = error;
      this.text = text;
      this.origin = origin;
      this.thread = Thread.currentThread();
    }

    @Override
    public String toString() {
      return state + " error " + error + " '" + text + "' from " + origin;
    }
  }

  /** A listener that records every event into queues the test waits on. */
  static class Recorder implements Context.Listener {
    final BlockingQueue<RelayState> relayStates = new LinkedBlockingQueue<>();
    final BlockingQueue<Call> incoming = new LinkedBlockingQueue<>();
    final BlockingQueue<StateEvent> states = new LinkedBlockingQueue<>();
    final BlockingQueue<byte[]> datagrams = new LinkedBlockingQueue<>();
    final BlockingQueue<String> paths = new LinkedBlockingQueue<>();
    final BlockingQueue<String> trusted = new LinkedBlockingQueue<>();
    final BlockingQueue<String> untrusted = new LinkedBlockingQueue<>();
    /** The origin of the call-state event being delivered (the listener thread only). */
    private Origin origin;

    @Override
    public void onRelayTrusted(String relayFingerprint) {
      trusted.add(relayFingerprint);
    }

    @Override
    public void onRelayUntrusted(String relayFingerprint) {
      untrusted.add(relayFingerprint);
    }

    @Override
    public void onRelayState(RelayState state, int error) {
      relayStates.add(state);
    }

    @Override
    public void onIncomingCall(Call call) {
      incoming.add(call);
    }

    @Override
    public void onCallState(Call call, CallState state, int error, String text, Origin origin) {
      this.origin = origin;
      // The default: passes it on to the four-argument method (which subclasses override).
      Context.Listener.super.onCallState(call, state, error, text, origin);
    }

    @Override
    public void onCallState(Call call, CallState state, int error, String text) {
      states.add(new StateEvent(call, state, error, text, origin));
    }

    @Override
    public void onPathChanged(Call call, Path from, Path to, String reason) {
      paths.add(from + "->" + to + " (" + reason + ")");
    }

    @Override
    public void onDatagram(Call call, byte[] data) {
      datagrams.add(data);
    }

    void awaitRegistered() throws InterruptedException {
      long deadline = System.currentTimeMillis() + WAIT_MS;
      for (;;) {
        long left = deadline - System.currentTimeMillis();
        RelayState s = left > 0 ? relayStates.poll(left, TimeUnit.MILLISECONDS) : null;
        if (s == null) fail("not registered with the relay within " + WAIT_MS + " ms");
        if (s == RelayState.REGISTERED) return;
      }
    }

    /** Waits for `call` to reach `want`; other states of it pass, an early ENDED fails. */
    StateEvent awaitState(Call call, CallState want) throws InterruptedException {
      long deadline = System.currentTimeMillis() + WAIT_MS;
      for (;;) {
        long left = deadline - System.currentTimeMillis();
        StateEvent e = left > 0 ? states.poll(left, TimeUnit.MILLISECONDS) : null;
        if (e == null) fail("call never reached " + want);
        if (e.call != call) continue;
        if (e.state == want) return e;
        if (e.state == CallState.ENDED) fail("call ended while waiting for " + want + ": " + e);
      }
    }

    Call awaitIncoming() throws InterruptedException {
      Call c = incoming.poll(WAIT_MS, TimeUnit.MILLISECONDS);
      assertNotNull("no incoming call", c);
      return c;
    }
  }

  private static ParleyException expect(int code, Runnable r) {
    try {
      r.run();
    } catch (ParleyException e) {
      assertEquals(e.toString(), code, e.code());
      assertEquals(ParleyException.nameOf(code), e.errorName());
      assertEquals(Parley.strerror(code), e.description());
      return e;
    }
    fail("expected " + ParleyException.nameOf(code));
    return null;
  }

  /** The frequency in [lo, hi] Hz with the most energy (Goertzel, coarse then fine). */
  static double dominantFrequency(short[] x, int from, int n, double lo, double hi) {
    double best = lo;
    double bestPower = -1;
    for (double f = lo; f <= hi; f += 5) {
      double p = goertzel(x, from, n, f);
      if (p > bestPower) {
        bestPower = p;
        best = f;
      }
    }
    double center = best;
    for (double f = center - 5; f <= center + 5; f += 0.5) {
      double p = goertzel(x, from, n, f);
      if (p > bestPower) {
        bestPower = p;
        best = f;
      }
    }
    return best;
  }

  static double goertzel(short[] x, int from, int n, double f) {
    double coeff = 2 * Math.cos(2 * Math.PI * f / RATE);
    double s1 = 0;
    double s2 = 0;
    for (int i = 0; i < n; ++i) {
      double s0 = x[from + i] + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    return s1 * s1 + s2 * s2 - coeff * s1 * s2;
  }

  static double rms(short[] x, int from, int n) {
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += (double) x[from + i] * x[from + i];
    return Math.sqrt(sum / n);
  }

  static double rmsDb(float[] x, int from, int n) {
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += (double) x[from + i] * x[from + i];
    return 20 * Math.log10(Math.sqrt(sum / n));
  }

  /** A call from a to b, active on both sides: {a's call, b's call}. */
  private static Call[] connect(Context a, Recorder ra, Context b, Recorder rb)
      throws InterruptedException {
    Call ca = a.call(b.fingerprint());
    Call cb = rb.awaitIncoming();
    cb.accept();
    rb.awaitState(cb, CallState.ACTIVE);
    ra.awaitState(ca, CallState.ACTIVE);
    return new Call[] {ca, cb};
  }

  /**
   * A 440 Hz tone pushed as float32 on one call and as 16-bit PCM on another, at the same
   * level and at the same time, and pulled the same way: once the jitter buffers settled (the
   * first 0.5 s skipped) B hears both at the same level, within 0.1 dB. Also the 0.2.0 call
   * errors, tags, and the library's error names.
   */
  @Test(timeout = 30_000)
  public void floatAudioHasTheLevelOf16Bit() throws Exception {
    assertEquals("PARLEY_ERR_CALL_NOT_ACTIVE", Parley.errorName(ParleyException.CALL_NOT_ACTIVE));
    assertEquals("PARLEY_ERR_NOT_A_MEMBER", ParleyException.nameOf(-51));
    assertEquals("PARLEY_ERR_WRONG_CALL_STATE", ParleyException.nameOf(-53));
    assertEquals("PARLEY_ERR_UNKNOWN(-9999)", ParleyException.nameOf(-9999));
    assertEquals("PARLEY_EVENT_CALL_STATE", Parley.eventTypeName(3));
    assertEquals("unknown", Parley.eventTypeName(999));
    Recorder ra = new Recorder();
    Recorder rb = new Recorder();
    try (Identity ia = Identity.generate();
        Identity ib = Identity.generate();
        Context a = Context.create(ia, config().build(), ra);
        Context b = Context.create(ib, config().build(), rb)) {
      ra.awaitRegistered();
      rb.awaitRegistered();
      // Before the answer: no stats, no datagram; an outgoing call cannot be accepted.
      Call fa = a.call(b.fingerprint());
      Call fb = rb.awaitIncoming();
      expect(ParleyException.WRONG_CALL_STATE, fa::accept);
      expect(ParleyException.CALL_NOT_ACTIVE, () -> fb.stats());
      expect(ParleyException.CALL_NOT_ACTIVE, () -> fa.sendDatagram(new byte[] {1}));
      fa.setTag("float32");
      fb.accept();
      rb.awaitState(fb, CallState.ACTIVE);
      StateEvent active = ra.awaitState(fa, CallState.ACTIVE);
      assertSame(fa, active.call);
      assertEquals("float32", active.call.tag());
      Call[] pcm16 = connect(a, ra, b, rb);
      Call sa = pcm16[0];
      Call sb = pcm16[1];
      assertNull(sa.tag());

      final int chunks = 150;
      float[] toneF = new float[CHUNK];
      short[] tone = new short[CHUNK];
      FloatBuffer toneDirect =
          ByteBuffer.allocateDirect(CHUNK * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
      FloatBuffer outDirect =
          ByteBuffer.allocateDirect(CHUNK * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
      float[] heardF = new float[chunks * CHUNK];
      short[] heard = new short[chunks * CHUNK];
      long start = System.nanoTime();
      for (int i = 0; i < chunks; ++i) {
        for (int k = 0; k < CHUNK; ++k) {
          double v = 8000 * Math.sin(2 * Math.PI * 440 * ((long) i * CHUNK + k) / RATE);
          tone[k] = (short) Math.round(v);
          toneF[k] = (float) (v / 32768);
        }
        assertEquals(CHUNK, sa.pushAudio(tone, CHUNK));
        assertTrue(sb.pullAudio(heard, i * CHUNK, CHUNK));
        // Odd chunks go through direct buffers, even ones through arrays.
        if (i % 2 == 0) {
          assertEquals(CHUNK, fa.pushAudio(toneF, CHUNK));
          assertTrue(fb.pullAudio(heardF, i * CHUNK, CHUNK));
        } else {
          toneDirect.clear();
          toneDirect.put(toneF).flip();
          assertEquals(CHUNK, fa.pushAudio(toneDirect, CHUNK));
          assertTrue(fb.pullAudio(outDirect, CHUNK));
          outDirect.get(heardF, i * CHUNK, CHUNK);
          outDirect.clear();
        }
        long wait = start + (i + 1) * 20_000_000L - System.nanoTime();
        if (wait > 0) TimeUnit.NANOSECONDS.sleep(wait);
      }
      int from = RATE / 2; // the jitter buffers settle in the first 0.5 s
      int n = heard.length - from;
      double floatDb = rmsDb(heardF, from, n);
      double pcm16Db = 20 * Math.log10(rms(heard, from, n) / 32768);
      double sentDb = 20 * Math.log10(8000 / Math.sqrt(2) / 32768);
      System.out.printf(
          "CallTest.floatAudioHasTheLevelOf16Bit: B heard the float32 call at %.3f dBFS, the"
              + " 16-bit call at %.3f dBFS (sent %.3f dBFS)%n",
          floatDb, pcm16Db, sentDb);
      assertEquals(pcm16Db, floatDb, 0.1);
      assertEquals("the tone, not silence", sentDb, pcm16Db, 3.0);

      fa.hangup();
      rb.awaitState(fb, CallState.ENDED);
      expect(ParleyException.CALL_ENDED, () -> fa.pushAudio(toneF, CHUNK));
      float[] after = new float[CHUNK];
      java.util.Arrays.fill(after, 0.5f);
      assertFalse(fb.pullAudio(after, CHUNK));
      assertEquals(0f, after[0], 0f);
      fb.close();
      assertFalse(fb.pullAudio(after, CHUNK)); // closed: silence, no exception
      sa.hangup();
    }
  }

  @Test(timeout = 30_000)
  public void realCall() throws Exception {
    Recorder ra = new Recorder();
    Recorder rb = new Recorder();
    try (Identity ia = Identity.generate();
        Identity ib = Identity.generate();
        Context a = Context.create(ia, config().build(), ra);
        Context b = Context.create(ib, config().build(), rb)) {
      assertEquals(ia.fingerprint(), a.fingerprint());
      ra.awaitRegistered();
      rb.awaitRegistered();
      assertEquals(RelayState.REGISTERED, a.relayState());
      assertEquals(relay.fingerprint, a.relayFingerprint());
      assertTrue(ra.untrusted.isEmpty()); // pinned: no trust decision
      assertTrue(ra.trusted.isEmpty());

      // A calls B; B accepts from the test thread.
      Call ca = a.call(b.fingerprint());
      assertFalse(ca.isIncoming());
      Call cb = rb.awaitIncoming();
      assertTrue(cb.isIncoming());
      assertEquals(CallState.INCOMING, cb.state());
      assertEquals(a.fingerprint(), cb.peerFingerprint());
      assertEquals(b.fingerprint(), ca.peerFingerprint());
      cb.accept();
      StateEvent activeB = rb.awaitState(cb, CallState.ACTIVE);
      StateEvent activeA = ra.awaitState(ca, CallState.ACTIVE);
      // One Call object per native handle; events come on the context's own thread.
      assertSame(ca, activeA.call);
      assertSame(cb, activeB.call);
      assertTrue(activeA.thread.isDaemon());
      assertFalse(activeA.thread == Thread.currentThread());
      assertEquals(CallState.ACTIVE, ca.state());

      // ~3 s of a 440 Hz tone from A, paced by the wall clock like a sound card; B plays out
      // in the same loop (heap arrays on A, a direct buffer on B).
      // Odd chunks go through direct buffers, even ones through arrays.
      final int chunks = 150;
      short[] tone = new short[CHUNK];
      ShortBuffer toneDirect =
          ByteBuffer.allocateDirect(CHUNK * 2).order(ByteOrder.nativeOrder()).asShortBuffer();
      ShortBuffer out =
          ByteBuffer.allocateDirect(CHUNK * 2).order(ByteOrder.nativeOrder()).asShortBuffer();
      short[] heard = new short[chunks * CHUNK];
      long taken = 0;
      long start = System.nanoTime();
      for (int i = 0; i < chunks; ++i) {
        for (int k = 0; k < CHUNK; ++k) {
          long n = (long) i * CHUNK + k;
          tone[k] = (short) Math.round(8000 * Math.sin(2 * Math.PI * 440 * n / RATE));
        }
        if (i % 2 == 0) {
          taken += ca.pushAudio(tone, CHUNK);
          assertTrue(cb.pullAudio(heard, i * CHUNK, CHUNK));
        } else {
          toneDirect.clear();
          toneDirect.put(tone).flip();
          taken += ca.pushAudio(toneDirect, CHUNK);
          assertTrue(cb.pullAudio(out, CHUNK));
          out.get(heard, i * CHUNK, CHUNK);
          out.clear();
        }
        long wait = start + (i + 1) * 20_000_000L - System.nanoTime();
        if (wait > 0) TimeUnit.NANOSECONDS.sleep(wait);
      }
      assertEquals((long) chunks * CHUNK, taken);
      int tail = RATE * 3 / 2; // the last 1.5 s
      int from = heard.length - tail;
      double freq = dominantFrequency(heard, from, tail, 100, 4000);
      double level = rms(heard, from, tail);
      System.out.printf(
          "CallTest.realCall: B heard %.1f Hz dominant, RMS %.0f over the last 1.5 s (sent"
              + " 440 Hz, RMS %.0f)%n",
          freq, level, 8000 / Math.sqrt(2));
      assertEquals(440.0, freq, 10.0);
      assertTrue("RMS " + level + " is near silence", level > 1000);

      // Datagrams both ways (unreliable: resend until one arrives).
      byte[] hello = "hello from A".getBytes(StandardCharsets.UTF_8);
      byte[] got = null;
      for (int i = 0; i < 10 && got == null; ++i) {
        ca.sendDatagram(hello);
        got = rb.datagrams.poll(500, TimeUnit.MILLISECONDS);
      }
      assertNotNull("no datagram reached B", got);
      assertEquals("hello from A", new String(got, StandardCharsets.UTF_8));
      got = null;
      for (int i = 0; i < 10 && got == null; ++i) {
        cb.sendDatagram(new byte[] {0, 1, 2, (byte) 0xff}, 1, 3);
        got = ra.datagrams.poll(500, TimeUnit.MILLISECONDS);
      }
      assertNotNull("no datagram reached A", got);
      assertEquals(3, got.length);
      assertEquals((byte) 0xff, got[2]);
      expect(ParleyException.MESSAGE_TOO_LARGE,
          () -> ca.sendDatagram(new byte[Parley.DATAGRAM_MAX + 1]));

      CallStats sa = ca.stats();
      CallStats sb = cb.stats();
      System.out.println("CallTest.realCall: A " + sa);
      System.out.println("CallTest.realCall: B " + sb);
      assertTrue(sa.framesSent > 0);
      assertTrue(sb.framesReceived > 0);
      assertTrue(sb.framesDecoded > 0);
      // Direct is on here: the first ICE run counts as an attempt from the moment of ACTIVE.
      for (CallStats st : new CallStats[] {sa, sb}) {
        assertTrue(st.toString(), st.directAttempts >= 1);
        assertTrue(st.toString(), st.directError <= 0);
        assertTrue(st.toString(), st.directLost >= 0);
      }

      ca.setMuted(true);
      assertTrue(ca.stats().muted);

      // A hangs up: B sees ENDED with error 0, A its own ENDED.
      ca.hangup();
      StateEvent endB = rb.awaitState(cb, CallState.ENDED);
      assertEquals(0, endB.error);
      assertEquals(endB.toString(), Origin.PEER, endB.origin); // the peer's words, relayed
      StateEvent endA = ra.awaitState(ca, CallState.ENDED);
      assertEquals(0, endA.error);
      assertEquals(endA.toString(), Origin.LOCAL, endA.origin); // "hung up here"
      assertEquals(CallState.ENDED, cb.state());
      // After the end: push is refused, pull reports it and gives silence, hangup refuses.
      expect(ParleyException.CALL_ENDED, () -> ca.pushAudio(tone, CHUNK));
      short[] silence = new short[CHUNK];
      java.util.Arrays.fill(silence, (short) 1);
      assertFalse(cb.pullAudio(silence, CHUNK));
      assertEquals("playout after ENDED is not silent", 0.0, rms(silence, 0, CHUNK), 0.0);
      expect(ParleyException.CALL_ENDED, ca::hangup);

      // Closing twice is harmless; a closed call refuses politely.
      ca.close();
      ca.close();
      assertTrue(ca.isClosed());
      expect(ParleyException.CLOSED, ca::hangup);
      assertFalse(ca.pullAudio(silence, CHUNK));
      cb.close();
      a.close();
      a.close();
      assertTrue(a.isClosed());
      // The context's thread detached from the JVM when it exited.
      assertFalse(activeA.thread.isAlive());
      expect(ParleyException.CLOSED, () -> a.call(b.fingerprint()));
    }
  }

  /**
   * With disableDirect no direct attempt is made, and the stats say why there is no direct
   * path (ICE_FAILED) without counting a lost one.
   */
  @Test(timeout = 20_000)
  public void relayOnlyCallStats() throws Exception {
    Recorder ra = new Recorder();
    Recorder rb = new Recorder();
    try (Identity ia = Identity.generate();
        Identity ib = Identity.generate();
        Context a = Context.create(ia, config().disableDirect(true).build(), ra);
        Context b = Context.create(ib, config().disableDirect(true).build(), rb)) {
      ra.awaitRegistered();
      rb.awaitRegistered();
      Call ca = a.call(b.fingerprint());
      Call cb = rb.awaitIncoming();
      cb.accept();
      rb.awaitState(cb, CallState.ACTIVE);
      ra.awaitState(ca, CallState.ACTIVE);
      for (Call c : new Call[] {ca, cb}) {
        CallStats st = c.stats();
        assertEquals(st.toString(), Path.RELAY, st.path);
        assertEquals(st.toString(), 0, st.directAttempts);
        assertEquals(st.toString(), ParleyException.ICE_FAILED, st.directError);
        assertEquals(st.toString(), 0, st.directLost);
        assertEquals(st.toString(), -1, st.timeToDirectMs);
      }
      ca.hangup();
      assertEquals(0, rb.awaitState(cb, CallState.ENDED).error);
    }
  }

  @Test(timeout = 20_000)
  public void errorsCarryCodeNameAndDetail() throws Exception {
    try (Identity id = Identity.generate()) {
      ParleyException e =
          expect(ParleyException.FINGERPRINT_INVALID,
              () -> Context.create(id, config().relayFingerprint("not-a-fingerprint").build(), null));
      assertEquals("PARLEY_ERR_FINGERPRINT_INVALID", e.errorName());
      assertTrue(e.detail(), e.detail().contains("relay_fingerprint"));

      e = expect(ParleyException.ADDRESS_INVALID,
          () -> Context.create(id, config().relayAddress("no.such:address:here").build(), null));
      assertEquals(-20, e.code());
      assertEquals("PARLEY_ERR_ADDRESS_INVALID", e.errorName());
      assertTrue(e.detail(), e.detail().contains("relay_address"));

      expect(ParleyException.AUDIO_FORMAT,
          () -> Context.create(id, config().sampleRate(44100).build(), null));
      expect(ParleyException.INVALID_ARGUMENT,
          () -> Context.create(id, config().qualityMode(QualityMode.FIXED).qualityProfile(9).build(), null));

      Recorder r = new Recorder();
      try (Context c = Context.create(id, config().qualityMode(QualityMode.FIXED).build(), r)) {
        e = expect(ParleyException.FINGERPRINT_INVALID, () -> c.call("xyz"));
        assertEquals(-12, e.code());
        r.awaitRegistered();
        expect(ParleyException.INVALID_ARGUMENT, () -> c.call(c.fingerprint())); // ourselves
        // A peer that is not registered: the call ends with PEER_UNAVAILABLE.
        String nobody;
        try (Identity other = Identity.generate()) {
          nobody = other.fingerprint();
        }
        Call call = c.call(nobody);
        StateEvent end = r.awaitState(call, CallState.ENDED);
        assertEquals(end.toString(), ParleyException.PEER_UNAVAILABLE, end.error);
        assertEquals(end.toString(), Origin.RELAY, end.origin);
        expect(ParleyException.CALL_ENDED, call::stats);
        call.close();
      }
    }
  }

  /** Closing a context from its own listener fails with WRONG_THREAD and changes nothing. */
  @Test(timeout = 20_000)
  public void closeFromListenerIsWrongThread() throws Exception {
    final AtomicReference<Context> aRef = new AtomicReference<>();
    final AtomicReference<Context> bRef = new AtomicReference<>();
    final BlockingQueue<ParleyException> aErrors = new LinkedBlockingQueue<>();
    final BlockingQueue<ParleyException> bErrors = new LinkedBlockingQueue<>();
    final BlockingQueue<Boolean> activeInsideAccept = new LinkedBlockingQueue<>();
    Recorder ra =
        new Recorder() {
          @Override
          public void onCallState(Call call, CallState state, int error, String text) {
            super.onCallState(call, state, error, text);
            if (state == CallState.ACTIVE) {
              try {
                aRef.get().close();
              } catch (ParleyException e) {
                aErrors.add(e);
              }
            }
          }
        };
    Recorder rb =
        new Recorder() {
          @Override
          public void onIncomingCall(Call call) {
            super.onIncomingCall(call);
            // Accepting here raises ACTIVE, which parley delivers once this listener returns
            // (never re-entrantly); the close after the accept must be refused all the same.
            call.accept();
            boolean early = false;
            for (StateEvent e : states) early |= e.call == call && e.state == CallState.ACTIVE;
            activeInsideAccept.add(early);
            try {
              bRef.get().close();
            } catch (ParleyException e) {
              bErrors.add(e);
            }
          }
        };
    try (Identity ia = Identity.generate();
        Identity ib = Identity.generate();
        Context a = Context.create(ia, config().disableDirect(true).build(), ra);
        Context b = Context.create(ib, config().disableDirect(true).build(), rb)) {
      aRef.set(a);
      bRef.set(b);
      ra.awaitRegistered();
      rb.awaitRegistered();
      Call ca = a.call(b.fingerprint());
      Call cb = rb.awaitIncoming();
      rb.awaitState(cb, CallState.ACTIVE);
      ra.awaitState(ca, CallState.ACTIVE);
      ParleyException ea = aErrors.poll(WAIT_MS, TimeUnit.MILLISECONDS);
      ParleyException eb = bErrors.poll(WAIT_MS, TimeUnit.MILLISECONDS);
      assertNotNull(ea);
      assertNotNull(eb);
      for (ParleyException e : new ParleyException[] {ea, eb}) {
        assertEquals(e.toString(), ParleyException.WRONG_THREAD, e.code());
        assertEquals(-43, e.code());
        assertEquals("PARLEY_ERR_WRONG_THREAD", e.errorName());
      }
      System.out.println("CallTest.closeFromListener: A (ACTIVE event): " + ea.getMessage());
      System.out.println("CallTest.closeFromListener: B (after accept): " + eb.getMessage());
      assertEquals("ACTIVE was delivered inside the listener that accepted",
          Boolean.FALSE, activeInsideAccept.poll(WAIT_MS, TimeUnit.MILLISECONDS));
      // Both contexts still work: the call goes on and ends normally.
      assertFalse(a.isClosed());
      ca.hangup();
      assertEquals(0, rb.awaitState(cb, CallState.ENDED).error);
    }
  }

  /**
   * Without a pinned fingerprint the relay's identity is reported and nothing registers until
   * the host trusts it; then the context registers and keeps that pin.
   */
  @Test(timeout = 20_000)
  public void relayTrustIsTheHostsDecision() throws Exception {
    Recorder r = new Recorder();
    try (Identity id = Identity.generate();
        Context c = Context.create(id, config().relayFingerprint(null).build(), r)) {
      String fp = r.untrusted.poll(WAIT_MS, TimeUnit.MILLISECONDS);
      assertEquals(relay.fingerprint, fp);
      assertEquals(RelayState.UNTRUSTED, c.relayState());
      assertFalse("registered before the host decided", r.relayStates.contains(RelayState.REGISTERED));
      assertNull(c.relayFingerprint()); // none configured, none trusted yet
      expect(ParleyException.NOT_REGISTERED, () -> c.call(relay.fingerprint)); // anyone else
      // A malformed fingerprint is refused and pins nothing.
      ParleyException e = expect(ParleyException.FINGERPRINT_INVALID, () -> c.trustRelay("abc"));
      assertEquals("PARLEY_ERR_FINGERPRINT_INVALID", e.errorName());
      expect(ParleyException.FINGERPRINT_INVALID, () -> c.trustRelay(fp + "0"));
      assertNull(c.relayFingerprint());

      c.trustRelay(fp.toUpperCase(java.util.Locale.ROOT)); // any spelling parley accepts
      assertEquals(relay.fingerprint, c.relayFingerprint()); // pinned at once, normalized
      r.awaitRegistered();
      assertEquals(relay.fingerprint, c.relayFingerprint());
      assertTrue(r.trusted.isEmpty()); // RELAY_TRUSTED is no longer raised
      c.close();
      assertEquals(relay.fingerprint, c.relayFingerprint());
      expect(ParleyException.CLOSED, () -> c.trustRelay(fp));
    }
  }

  /**
   * How Context routes the error events the trust change added: an ERROR naming a peer is a
   * refused invite (onInviteRefused, by default passed on to onError), others carry their
   * origin. Delivered here through the glue's entry point by hand: a forged invite needs a
   * hostile relay, which the real one is not.
   */
  @Test(timeout = 20_000)
  public void errorEventsCarryTheirOriginAndARefusedInviteItsSender() throws Exception {
    final BlockingQueue<String> seen = new LinkedBlockingQueue<>();
    Recorder r =
        new Recorder() {
          @Override
          public void onError(int error, String text, Origin origin) {
            seen.add("error " + error + " " + origin + " " + text);
            super.onError(error, text, origin); // the default: on to onError(int, String)
          }

          @Override
          public void onError(int error, String text) {
            seen.add("plain " + error + " " + text);
          }
        };
    final BlockingQueue<String> refused = new LinkedBlockingQueue<>();
    Recorder withRefusals =
        new Recorder() {
          @Override
          public void onInviteRefused(String peer, int error, String text) {
            refused.add(peer + " " + error + " " + text);
          }
        };
    Method deliver =
        Context.class.getDeclaredMethod(
            "onNativeEvent", int.class, long.class, int.class, int.class, int.class, int.class,
            int.class, String.class, String.class, byte[].class, int.class, int.class, int.class,
            int.class, long.class, int.class, int.class, int.class, int.class, Object.class);
    deliver.setAccessible(true);
    StringBuilder hex = new StringBuilder();
    for (int i = 0; i < 32; ++i) hex.append("ab");
    String peer = hex.toString();
    try (Identity ia = Identity.generate();
        Identity ib = Identity.generate();
        Context a = Context.create(ia, config().build(), r);
        Context b = Context.create(ib, config().build(), withRefusals)) {
      r.awaitRegistered(); // the listener thread is known: this one is not taken for it
      withRefusals.awaitRegistered();
      // PARLEY_EVENT_ERROR = 6, PARLEY_ORIGIN_RELAY = 1, PARLEY_ORIGIN_LOCAL = 0.
      deliver.invoke(a, 6, 0L, 0, 0, ParleyException.RATE_LIMITED, 0, 0, null, "slow down",
          null, 0, 0, 0, 0, 0L, 0, 0, 0, 1, null);
      assertEquals("error -33 RELAY slow down", seen.poll(WAIT_MS, TimeUnit.MILLISECONDS));
      assertEquals("plain -33 slow down", seen.poll(WAIT_MS, TimeUnit.MILLISECONDS));
      // Not overridden: a refused invite reaches onError with parley's (LOCAL) text.
      deliver.invoke(a, 6, 0L, 0, 0, ParleyException.MEDIA_KEY, 0, 0, peer,
          "refused an invite: stale", null, 0, 0, 0, 0, 0L, 0, 0, 0, 0, null);
      assertEquals("error -39 LOCAL refused an invite: stale",
          seen.poll(WAIT_MS, TimeUnit.MILLISECONDS));
      assertEquals("plain -39 refused an invite: stale", seen.poll(WAIT_MS, TimeUnit.MILLISECONDS));
      // Overridden: the sender's fingerprint.
      deliver.invoke(b, 6, 0L, 0, 0, ParleyException.MEDIA_KEY, 0, 0, peer,
          "refused an invite: replayed", null, 0, 0, 0, 0, 0L, 0, 0, 0, 0, null);
      assertEquals(peer + " -39 refused an invite: replayed",
          refused.poll(WAIT_MS, TimeUnit.MILLISECONDS));
      // An origin newer than this binding.
      assertEquals(Origin.UNKNOWN, Origin.of(7));
      assertEquals(RelayState.UNTRUSTED, RelayState.of(5));
    }
  }

  /**
   * Sends {@code payload} on {@code from} until {@code to}'s listener receives it. Datagrams are
   * unreliable, so a lost one is sent again; each attempt waits on the queue with its own
   * deadline (copies of earlier payloads are skipped).
   */
  private static void datagramArrives(Call from, Recorder to, String payload)
      throws InterruptedException {
    byte[] want = payload.getBytes(StandardCharsets.UTF_8);
    for (int attempt = 0; attempt < 10; ++attempt) {
      from.sendDatagram(want);
      long deadline = System.currentTimeMillis() + 500;
      for (;;) {
        long left = deadline - System.currentTimeMillis();
        byte[] got = left > 0 ? to.datagrams.poll(left, TimeUnit.MILLISECONDS) : null;
        if (got == null) break;
        if (java.util.Arrays.equals(want, got)) return;
      }
    }
    fail("datagram '" + payload + "' never arrived");
  }

  /**
   * networkChanged mid-call (what a host's network monitor does): it returns at once, the call
   * stays active and datagrams keep arriving both ways while ICE restarts; a closed context
   * throws CLOSED.
   */
  @Test(timeout = 30_000)
  public void networkChangedKeepsTheCall() throws Exception {
    Recorder ra = new Recorder();
    Recorder rb = new Recorder();
    try (Identity ia = Identity.generate();
        Identity ib = Identity.generate();
        Context a = Context.create(ia, config().build(), ra);
        Context b = Context.create(ib, config().build(), rb)) {
      ra.awaitRegistered();
      rb.awaitRegistered();
      Call ca = a.call(b.fingerprint());
      Call cb = rb.awaitIncoming();
      cb.accept();
      rb.awaitState(cb, CallState.ACTIVE);
      ra.awaitState(ca, CallState.ACTIVE);
      datagramArrives(ca, rb, "before");
      long receivedBefore = cb.stats().framesReceived;

      a.networkChanged();
      for (int i = 0; i < 3; ++i) { // on the old path at first, then wherever the restart settles
        datagramArrives(ca, rb, "a->b after " + i);
        datagramArrives(cb, ra, "b->a after " + i);
      }
      b.networkChanged(); // the other side too, twice in a row (a restart during a restart)
      b.networkChanged();
      for (int i = 0; i < 3; ++i) {
        datagramArrives(cb, ra, "b->a after b " + i);
        datagramArrives(ca, rb, "a->b after b " + i);
      }

      for (StateEvent e : ra.states) assertFalse(e.toString(), e.state == CallState.ENDED);
      for (StateEvent e : rb.states) assertFalse(e.toString(), e.state == CallState.ENDED);
      assertEquals(CallState.ACTIVE, ca.state());
      assertEquals(CallState.ACTIVE, cb.state());
      CallStats sb = cb.stats();
      assertTrue(receivedBefore + " -> " + sb.framesReceived, sb.framesReceived > receivedBefore);
      System.out.println("CallTest.networkChangedKeepsTheCall: A " + ca.stats());
      System.out.println("CallTest.networkChangedKeepsTheCall: B " + sb + "; paths " + ra.paths
          + " / " + rb.paths);

      ca.hangup();
      rb.awaitState(cb, CallState.ENDED);
      a.close();
      expect(ParleyException.CLOSED, a::networkChanged);
    }
  }

  /** A listener that throws does not disturb parley: the exception is printed and cleared. */
  @Test(timeout = 20_000)
  public void throwingListener() throws Exception {
    Recorder r =
        new Recorder() {
          @Override
          public void onRelayState(RelayState state, int error) {
            super.onRelayState(state, error);
            throw new IllegalStateException("thrown by a listener on purpose (expected)");
          }
        };
    try (Identity id = Identity.generate(); Context c = Context.create(id, config().build(), r)) {
      r.awaitRegistered();
      assertEquals(RelayState.REGISTERED, c.relayState());
    }
  }
}

package org.parley.examples;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.parley.Call;
import org.parley.CallState;
import org.parley.CallStats;
import org.parley.Context;
import org.parley.Identity;
import org.parley.Path;
import org.parley.RelayState;

/**
 * Two parties, Alice and Bob, in one process, calling each other through a parley relay:
 *
 * <pre>
 *   java -cp parley.jar:parley-example.jar -Djava.library.path=DIR_OF_libparley_jni.so \
 *       org.parley.examples.CallExample RELAY_IP:PORT RELAY_FINGERPRINT [SECONDS]
 * </pre>
 *
 * Bob answers every call. Alice calls Bob, plays a 440 Hz tone for SECONDS (default 2) as her
 * "microphone" while Bob's "speaker" thread plays out what arrives, sends Bob a text
 * datagram, prints the call's statistics and hangs up.
 *
 * <p>The shape is that of an app: the listener only records what happened and hands work to
 * other threads (an Android app would post to its main looper), and a separate audio thread
 * pushes and pulls on the audio clock.
 */
public final class CallExample {
  private CallExample() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: CallExample RELAY_IP:PORT RELAY_FINGERPRINT [SECONDS]");
      System.exit(2);
    }
    double seconds = args.length > 2 ? Double.parseDouble(args[2]) : 2.0;
    System.exit(run(args[0], args[1], seconds));
  }

  /** One party's listener: logs every event and hands out what the app waits for. */
  static final class Party implements Context.Listener {
    final String name;
    final boolean answer;
    final CountDownLatch registered = new CountDownLatch(1);
    final CountDownLatch active = new CountDownLatch(1);
    final CountDownLatch ended = new CountDownLatch(1);
    final BlockingQueue<String> datagrams = new LinkedBlockingQueue<>();
    volatile Call call;
    volatile int endError;

    Party(String name, boolean answer) {
      this.name = name;
      this.answer = answer;
    }

    @Override
    public void onRelayState(RelayState state, int error) {
      System.out.println(name + ": relay " + state + (error != 0 ? " (error " + error + ")" : ""));
      if (state == RelayState.REGISTERED) registered.countDown();
    }

    @Override
    public void onIncomingCall(Call c) {
      System.out.println(name + ": incoming call from " + c.peerFingerprint().substring(0, 16));
      call = c;
      if (answer) c.accept(); // fine on the listener thread: parley runs it at once
      else c.reject();
    }

    @Override
    public void onCallState(Call c, CallState state, int error, String text) {
      System.out.println(name + ": call " + state + (text.isEmpty() ? "" : " (" + text + ")"));
      if (state == CallState.ACTIVE) active.countDown();
      if (state == CallState.ENDED) {
        endError = error;
        ended.countDown();
      }
    }

    @Override
    public void onPathChanged(Call c, Path from, Path to, String reason) {
      System.out.println(name + ": media path " + from + " -> " + to + " (" + reason + ")");
    }

    @Override
    public void onDatagram(Call c, byte[] data) {
      datagrams.add(new String(data, StandardCharsets.UTF_8));
    }

    @Override
    public void onError(int error, String text) {
      System.out.println(name + ": relay error " + error + ": " + text);
    }
  }

  /** Runs the example; returns the process exit code (0: the call worked). */
  public static int run(String relayAddress, String relayFingerprint, double seconds)
      throws InterruptedException {
    Context.Config config =
        Context.Config.builder()
            .relayAddress(relayAddress)
            .relayFingerprint(relayFingerprint)
            .sampleRate(48000)
            .channels(1)
            .includeLoopback(true) // both parties on this machine
            .build();
    Party alice = new Party("alice", false);
    Party bob = new Party("bob", true);
    try (Identity aliceId = Identity.generate();
        Identity bobId = Identity.generate();
        Context aliceCtx = Context.create(aliceId, config, alice);
        Context bobCtx = Context.create(bobId, config, bob)) {
      if (!alice.registered.await(10, TimeUnit.SECONDS)
          || !bob.registered.await(10, TimeUnit.SECONDS)) {
        System.err.println("not registered with the relay");
        return 1;
      }
      System.out.println("alice " + aliceCtx.fingerprint().substring(0, 16) + " calls bob "
          + bobCtx.fingerprint().substring(0, 16));
      try (Call call = aliceCtx.call(bobCtx.fingerprint())) {
        if (!alice.active.await(10, TimeUnit.SECONDS) || !bob.active.await(10, TimeUnit.SECONDS)) {
          System.err.println("the call did not become active");
          return 1;
        }
        Call bobCall = bob.call;

        // The audio thread: 20 ms chunks on the wall clock, as a sound card's callback would.
        final int rate = 48000;
        final int chunk = rate / 50;
        short[] mic = new short[chunk];
        short[] speaker = new short[chunk];
        long chunks = Math.round(seconds * 50);
        double peak = 0;
        long start = System.nanoTime();
        for (long i = 0; i < chunks; ++i) {
          for (int k = 0; k < chunk; ++k) {
            long n = i * chunk + k;
            mic[k] = (short) Math.round(8000 * Math.sin(2 * Math.PI * 440 * n / rate));
          }
          call.pushAudio(mic, chunk);
          bobCall.pullAudio(speaker, chunk);
          for (short s : speaker) peak = Math.max(peak, Math.abs(s));
          long wait = start + (i + 1) * 20_000_000L - System.nanoTime();
          if (wait > 0) TimeUnit.NANOSECONDS.sleep(wait);
        }
        System.out.println("bob heard a peak level of " + (int) peak);

        // Datagrams are unreliable: send until one arrives.
        String got = null;
        for (int i = 0; i < 10 && got == null; ++i) {
          call.sendDatagram("hello bob".getBytes(StandardCharsets.UTF_8));
          got = bob.datagrams.poll(500, TimeUnit.MILLISECONDS);
        }
        System.out.println("bob got datagram: " + got);

        CallStats stats = call.stats();
        System.out.println("alice's stats: " + stats);
        call.hangup();
        if (!bob.ended.await(10, TimeUnit.SECONDS)) {
          System.err.println("bob never saw the call end");
          return 1;
        }
        boolean ok = got != null && stats.framesSent > 0 && peak > 1000 && bob.endError == 0;
        System.out.println(ok ? "OK" : "FAILED");
        return ok ? 0 : 1;
      }
    }
  }
}

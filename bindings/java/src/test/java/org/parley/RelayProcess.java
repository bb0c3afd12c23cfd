package org.parley;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The real parley-relay executable ($PARLEY_RELAY) as a child process on loopback: started
 * with an ephemeral port and a fresh seed, its fingerprint and address read from the two
 * lines it prints once it serves (with a deadline).
 */
public final class RelayProcess implements AutoCloseable {
  private static final String EOF = "\u0000eof";

  /** The relay's QUIC+STUN address, "127.0.0.1:port" (or as asked of {@link #start(String)}). */
  public final String address;
  /** The same relay by name, "localhost:port" (the library resolves it). */
  public final String name;
  /** The relay's fingerprint (64 hex), to pin. */
  public final String fingerprint;

  private final Process process;
  private final File dir;

  private RelayProcess(Process process, File dir, String address, String fingerprint) {
    this.process = process;
    this.dir = dir;
    this.address = address;
    this.name = "localhost:" + address.substring(address.lastIndexOf(':') + 1);
    this.fingerprint = fingerprint;
  }

  /** Starts the relay named by $PARLEY_RELAY and waits up to 10 s for it to serve. */
  public static RelayProcess start() throws IOException, InterruptedException {
    return start("127.0.0.1:0");
  }

  /** {@link #start()} listening on {@code listen}, e.g. {@code "[::1]:0"}. */
  public static RelayProcess start(String listen) throws IOException, InterruptedException {
    String binary = System.getenv("PARLEY_RELAY");
    if (binary == null || binary.isEmpty()) {
      throw new IllegalStateException("PARLEY_RELAY must name the parley-relay executable");
    }
    File dir = Files.createTempDirectory("parley-java-relay").toFile();
    ProcessBuilder pb =
        new ProcessBuilder(
            binary,
            "--listen", listen,
            "--stun-alt", "none",
            "--http3", "off",
            "--seed", new File(dir, "relay.seed").getPath(),
            "--log-level", "warn");
    pb.redirectError(ProcessBuilder.Redirect.INHERIT);
    final Process p = pb.start();
    final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
    // Reads stdout for the relay's whole life, so it never blocks on a full pipe.
    Thread reader =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(
                      new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) lines.add(line);
              } catch (IOException e) {
                // the relay exited
              } finally {
                lines.add(EOF);
              }
            },
            "parley-relay-stdout");
    reader.setDaemon(true);
    reader.start();

    String fingerprint = null;
    String address = null;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    try {
      while (address == null) {
        long left = deadline - System.nanoTime();
        String line = left > 0 ? lines.poll(left, TimeUnit.NANOSECONDS) : null;
        if (line == null) throw new IOException("parley-relay did not start within 10 s");
        if (line.equals(EOF)) throw new IOException("parley-relay exited while starting");
        String[] w = line.trim().split("\\s+");
        if (w.length >= 2 && w[0].equals("fingerprint")) fingerprint = w[1];
        // "listening quic+stun <ip:port> stun-alt none"
        if (w.length >= 3 && w[0].equals("listening")) address = w[2];
      }
      if (fingerprint == null || !fingerprint.matches("[0-9a-f]{64}")) {
        throw new IOException("parley-relay printed no fingerprint");
      }
    } catch (IOException | InterruptedException | RuntimeException e) {
      p.destroyForcibly();
      deleteAll(dir);
      throw e;
    }
    return new RelayProcess(p, dir, address, fingerprint);
  }

  /** Stops the relay (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(5, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    deleteAll(dir);
  }

  private static void deleteAll(File f) {
    File[] children = f.listFiles();
    if (children != null) {
      for (File c : children) deleteAll(c);
    }
    f.delete();
  }
}

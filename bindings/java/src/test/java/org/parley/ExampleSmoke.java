package org.parley;

import org.parley.examples.CallExample;

/**
 * The bindings.java.example test: runs examples/CallExample.java against a real relay
 * process, as a user would run it with a relay's address and fingerprint.
 */
public final class ExampleSmoke {
  private ExampleSmoke() {}

  public static void main(String[] args) throws Exception {
    int code;
    try (RelayProcess relay = RelayProcess.start()) {
      code = CallExample.run(relay.address, relay.fingerprint, 1.0);
    }
    System.out.println("CallExample exited with " + code);
    System.exit(code);
  }
}

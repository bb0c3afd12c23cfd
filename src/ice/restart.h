// ICE restart generations of one call (RFC 8445 9), sans-I/O. Either side may restart (a
// network change, a retry of the direct path); a restart announces a generation, the peer
// answers with its new credentials under the same generation, and checks of older generations
// die with their agents. Restarts may cross (both sides restart at once: each one's
// announcement is the other's answer) or overtake each other (a side restarting again before
// the answer came: the older answer is stale). Roles do not change across restarts: the
// caller stays controlling, so a restart can never cause a role conflict.
#ifndef PARLEY_ICE_RESTART_H
#define PARLEY_ICE_RESTART_H

#include <cstdint>

namespace parley::ice {

class RestartSequencer {
 public:
  enum class Incoming {
    kAdopt,   // a newer generation of the peer's: start it, and answer with ours
    kAnswer,  // the peer's credentials for the generation we announced: complete it
    kStale,   // an older generation, or one already complete: ignore it
  };

  // The generation in use (0: the call's first, from the offers).
  uint64_t generation() const { return generation_; }
  // We restart: the generation to announce (one past every generation seen).
  uint64_t begin_local();
  // The peer announced `generation`.
  Incoming on_remote(uint64_t generation);
  // Our announcement of generation() has not been answered yet.
  bool awaiting_answer() const { return awaiting_; }

 private:
  uint64_t generation_ = 0;
  bool awaiting_ = false;
};

}  // namespace parley::ice

#endif

#include "ice/restart.h"

namespace parley::ice {

uint64_t RestartSequencer::begin_local() {
  awaiting_ = true;
  return ++generation_;
}

RestartSequencer::Incoming RestartSequencer::on_remote(uint64_t generation) {
  if (generation > generation_) {
    generation_ = generation;
    awaiting_ = false;
    return Incoming::kAdopt;
  }
  if (generation == generation_ && awaiting_) {
    awaiting_ = false;
    return Incoming::kAnswer;
  }
  return Incoming::kStale;
}

}  // namespace parley::ice

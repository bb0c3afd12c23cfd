// A libuv loop running on its own thread. Other threads hand it work with post(); everything
// that touches the loop's handles runs on that thread.
#ifndef PARLEY_BASE_LOOP_H
#define PARLEY_BASE_LOOP_H

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <atomic>
#include <condition_variable>

namespace parley {

class Loop {
 public:
  using Task = std::function<void()>;

  Loop();
  // Stops the loop if it is still running. Must not run on the loop thread (aborts).
  ~Loop();
  Loop(const Loop &) = delete;
  Loop &operator=(const Loop &) = delete;

  // Starts the loop thread. Returns kOk, kErrClosed if already started (or stopped), or
  // kErrInternal if libuv could not set up the loop or thread.
  int start();

  // Queues `task` to run on the loop thread, in posting order. Thread-safe. Returns kOk, or
  // kErrClosed if the loop is not running or stop() was called — the task then never runs.
  // Tasks accepted before stop() all run before the loop thread exits.
  int post(Task task);

  // Stops the loop: runs the tasks already accepted, closes every handle still open on the
  // loop, and joins the thread. Idempotent, thread-safe. Called on the loop thread itself it
  // only requests the stop; the join then happens in a later stop() or the destructor.
  void stop();

  // True on the loop's own thread.
  bool on_loop_thread() const;

  // The underlying loop, for handle initialisation on the loop thread only.
  uv_loop_t *uv() { return &loop_; }

 private:
  static void thread_main(void *arg);
  static void on_wakeup(uv_async_t *async);
  void run_pending();

  uv_loop_t loop_;
  uv_async_t wakeup_;
  uv_thread_t thread_;
  enum class State { kIdle, kRunning, kStopping, kStopped } state_ = State::kIdle;
  bool joined_ = false;
  bool joining_ = false;
  bool wakeup_closed_ = false;
  std::condition_variable joined_cv_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::mutex mutex_;  // guards state_, pending_, joined_, joining_, wakeup_closed_
  std::deque<Task> pending_;
};

// A one-shot or repeating timer on a Loop. Create, use and destroy it on the loop thread.
class Timer {
 public:
  explicit Timer(Loop &loop);
  ~Timer();
  Timer(const Timer &) = delete;
  Timer &operator=(const Timer &) = delete;

  // If the Loop stopped first (it closes leftover handles), the Timer is inert: only its
  // destructor may still be called, from any thread.
  // (Re)arms the timer: `fn` runs after `timeout_ms`, then every `repeat_ms` if non-zero.
  void start(uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> fn);
  // Re-arms with the function of the last start(), allocating nothing: for timers re-armed
  // on every packet. Does nothing if start() was never called.
  void restart(uint64_t timeout_ms);
  void stop();
  bool active() const;

 private:
  // The uv handle outlives the Timer until libuv's close callback frees it.
  struct Handle {
    uv_timer_t timer;
    std::shared_ptr<std::function<void()>> fn;
  };
  void arm(uint64_t timeout_ms, uint64_t repeat_ms);
  Handle *handle_;
};

}  // namespace parley

#endif

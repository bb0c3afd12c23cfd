#include "base/loop.h"

#include <cstdlib>
#include <utility>

#include "base/error.h"
#include "base/log.h"

namespace parley {

Loop::Loop() = default;

Loop::~Loop() {
  if (on_loop_thread()) {
    // Freeing the loop under its own running thread cannot be made safe; fail loudly.
    PARLEY_LOG(kLogError, "loop", "a Loop was destroyed on its own thread");
    std::abort();
  }
  stop();
}

int Loop::start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_ != State::kIdle) return kErrClosed;
  int r = uv_loop_init(&loop_);
  if (r != 0) {
    return fail(kErrInternal, "uv_loop_init: %s", uv_strerror(r));
  }
  r = uv_async_init(&loop_, &wakeup_, on_wakeup);
  if (r != 0) {
    uv_loop_close(&loop_);
    return fail(kErrInternal, "uv_async_init: %s", uv_strerror(r));
  }
  wakeup_.data = this;
  r = uv_thread_create(&thread_, thread_main, this);
  if (r != 0) {
    uv_close(reinterpret_cast<uv_handle_t *>(&wakeup_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    return fail(kErrInternal, "uv_thread_create: %s", uv_strerror(r));
  }
  state_ = State::kRunning;
  return kOk;
}

int Loop::post(Task task) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_ != State::kRunning) return kErrClosed;
  pending_.push_back(std::move(task));
  // Under the lock: stop() closes the async handle under the same lock, so a wakeup is never
  // sent to a closed handle.
  uv_async_send(&wakeup_);
  return kOk;
}

void Loop::stop() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (state_ == State::kIdle) {
    state_ = State::kStopped;
    joined_ = true;
    return;
  }
  if (joined_) return;
  if (state_ == State::kRunning) state_ = State::kStopping;
  if (!wakeup_closed_) uv_async_send(&wakeup_);
  if (on_loop_thread()) return;  // cannot join ourselves; a later stop()/~Loop joins
  if (joining_) {
    joined_cv_.wait(lock, [this] { return joined_; });  // another thread is joining
    return;
  }
  joining_ = true;
  lock.unlock();
  uv_thread_join(&thread_);
  lock.lock();
  const int r = uv_loop_close(&loop_);
  if (r != 0) PARLEY_LOG(kLogError, "loop", "uv_loop_close: %s", uv_strerror(r));
  joined_ = true;
  state_ = State::kStopped;
  joined_cv_.notify_all();
}

bool Loop::on_loop_thread() const {
  return loop_thread_id_.load(std::memory_order_acquire) == std::this_thread::get_id();
}

void Loop::thread_main(void *arg) {
  auto *self = static_cast<Loop *>(arg);
  self->loop_thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
  uv_run(&self->loop_, UV_RUN_DEFAULT);
  self->loop_thread_id_.store(std::thread::id(), std::memory_order_release);
}

void Loop::on_wakeup(uv_async_t *async) {
  static_cast<Loop *>(async->data)->run_pending();
}

void Loop::run_pending() {
  for (;;) {
    std::deque<Task> batch;
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      batch.swap(pending_);
      stopping = state_ == State::kStopping;
    }
    for (auto &task : batch) task();
    if (!stopping) return;
    // post() refuses new tasks once stopping, but a task in this batch may have been
    // accepted just before the state changed; drain until nothing is left. The closing walk
    // happens under the lock so no post()/stop() can signal the async handle meanwhile.
    std::lock_guard<std::mutex> lock(mutex_);
    if (!pending_.empty()) continue;
    wakeup_closed_ = true;
    uv_walk(
        &loop_,
        [](uv_handle_t *h, void *) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    return;
  }
}

Timer::Timer(Loop &loop) : handle_(new Handle) {
  uv_timer_init(loop.uv(), &handle_->timer);
  handle_->timer.data = handle_;
}

Timer::~Timer() {
  uv_handle_t *h = reinterpret_cast<uv_handle_t *>(&handle_->timer);
  if (uv_is_closing(h)) {
    // Loop::stop closed it as a leftover handle; that close has completed (no user code runs
    // between the walk and its completion), so libuv no longer references the memory.
    delete handle_;
    return;
  }
  uv_close(h, [](uv_handle_t *hh) { delete static_cast<Handle *>(hh->data); });
}

void Timer::start(uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> fn) {
  handle_->fn = std::make_shared<std::function<void()>>(std::move(fn));
  arm(timeout_ms, repeat_ms);
}

void Timer::restart(uint64_t timeout_ms) {
  if (handle_->fn) arm(timeout_ms, 0);
}

void Timer::arm(uint64_t timeout_ms, uint64_t repeat_ms) {
  // libuv measures timeouts from the loop's cached "now", taken when the iteration began;
  // refresh it so a timer armed late in a long iteration does not fire early.
  uv_update_time(handle_->timer.loop);
  uv_timer_start(
      &handle_->timer,
      [](uv_timer_t *t) {
        // Hold a reference: the callback may re-arm the timer (replacing fn) or stop it.
        std::shared_ptr<std::function<void()>> keep = static_cast<Handle *>(t->data)->fn;
        if (keep && *keep) (*keep)();
      },
      timeout_ms, repeat_ms);
}

void Timer::stop() { uv_timer_stop(&handle_->timer); }

bool Timer::active() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t *>(&handle_->timer)) != 0;
}

}  // namespace parley

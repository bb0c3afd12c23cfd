#include "base/loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"

namespace parley {
namespace {

using namespace std::chrono_literals;

TEST(Loop, PostRunsOnLoopThreadInOrder) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  EXPECT_FALSE(loop.on_loop_thread());
  std::vector<int> order;
  std::promise<void> done;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(loop.post([&, i] {
      EXPECT_TRUE(loop.on_loop_thread());
      order.push_back(i);
      if (i == 99) done.set_value();
    }), kOk);
  }
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  loop.stop();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(Loop, PostFromManyThreads) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::atomic<int> ran{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) ASSERT_EQ(loop.post([&] { ++ran; }), kOk);
    });
  }
  for (auto &t : threads) t.join();
  loop.stop();  // drains everything accepted
  EXPECT_EQ(ran.load(), 4000);
}

TEST(Loop, StopDrainsAcceptedTasksAndRefusesNewOnes) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i) ASSERT_EQ(loop.post([&] { ++ran; }), kOk);
  loop.stop();
  EXPECT_EQ(ran.load(), 50);
  bool late_ran = false;
  EXPECT_EQ(loop.post([&] { late_ran = true; }), kErrClosed);
  EXPECT_FALSE(late_ran);
  loop.stop();  // idempotent
  EXPECT_EQ(loop.start(), kErrClosed);
}

TEST(Loop, PostBeforeStartIsRefused) {
  Loop loop;
  EXPECT_EQ(loop.post([] {}), kErrClosed);
}

TEST(Loop, StopFromLoopThreadThenJoinInDestructor) {
  auto loop = std::make_unique<Loop>();
  ASSERT_EQ(loop->start(), kOk);
  std::promise<void> stopped;
  ASSERT_EQ(loop->post([&] {
    loop->stop();  // only requests the stop: cannot join itself
    stopped.set_value();
  }), kOk);
  ASSERT_EQ(stopped.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(loop->post([] {}), kErrClosed);
  loop.reset();  // joins
}

TEST(Timer, FiresAfterTimeoutAndRepeats) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::mutex m;
  std::condition_variable cv;
  int fired = 0;
  Timestamp started = 0, first = 0;
  std::unique_ptr<Timer> timer;
  ASSERT_EQ(loop.post([&] {
    timer = std::make_unique<Timer>(loop);
    started = monotonic_now();
    timer->start(20, 5, [&] {
      std::lock_guard<std::mutex> lock(m);
      if (fired == 0) first = monotonic_now();
      if (++fired == 3) timer->stop();
      cv.notify_all();
    });
  }), kOk);
  {
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return fired >= 3; }));
  }
  std::promise<bool> active;
  ASSERT_EQ(loop.post([&] {
    active.set_value(timer->active());
    timer.reset();
  }), kOk);
  EXPECT_FALSE(active.get_future().get());
  loop.stop();
  EXPECT_EQ(fired, 3);
  EXPECT_GE(first - started, 19 * kNanosPerMilli);  // libuv rounds to whole milliseconds
}

TEST(Timer, LeftoverTimerIsClosedByStopAndMayBeDestroyedAfterwards) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::unique_ptr<Timer> timer;
  std::promise<void> armed;
  ASSERT_EQ(loop.post([&] {
    timer = std::make_unique<Timer>(loop);
    timer->start(100000, 0, [] {});
    armed.set_value();
  }), kOk);
  armed.get_future().wait();
  loop.stop();  // must not hang on the active timer
  timer.reset();
}

TEST(Clock, Monotonic) {
  Timestamp a = monotonic_now();
  Timestamp b = monotonic_now();
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace parley

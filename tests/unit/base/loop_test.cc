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

// Hosts post from any thread while another tears the context down: every post either runs or
// is refused, and nothing crashes (run under ASan/TSan by the sanitizer builds).
TEST(Loop, PostRacingStop) {
  for (int round = 0; round < 200; ++round) {
    auto loop = std::make_unique<Loop>();
    ASSERT_EQ(loop->start(), kOk);
    std::atomic<int> accepted{0}, ran{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> posters;
    for (int t = 0; t < 3; ++t) {
      posters.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < 50; ++i) {
          if (loop->post([&] { ++ran; }) == kOk) ++accepted;
        }
      });
    }
    go = true;
    loop->stop();
    for (auto &p : posters) p.join();
    EXPECT_EQ(ran.load(), accepted.load()) << "an accepted task was lost";
    loop.reset();
  }
}

TEST(Loop, ConcurrentStopsAllReturnAfterTheJoin) {
  for (int round = 0; round < 50; ++round) {
    Loop loop;
    ASSERT_EQ(loop.start(), kOk);
    std::atomic<int> ran{0};
    ASSERT_EQ(loop.post([&] { ++ran; }), kOk);
    std::vector<std::thread> stoppers;
    for (int t = 0; t < 3; ++t) stoppers.emplace_back([&] { loop.stop(); });
    for (auto &t : stoppers) t.join();
    EXPECT_EQ(ran.load(), 1);
    EXPECT_EQ(loop.post([] {}), kErrClosed);
  }
}

TEST(Timer, CallbackMayRearmItself) {
  Loop loop;
  ASSERT_EQ(loop.start(), kOk);
  std::promise<int> done;
  std::unique_ptr<Timer> timer;
  int fires = 0;
  std::function<void()> arm = [&] {
    std::string captured = "state that must outlive the re-arm";
    timer->start(1, 0, [&, captured] {
      ++fires;
      if (fires < 5) {
        arm();  // replaces this very closure while it runs
        EXPECT_EQ(captured.size(), 34u);
      } else {
        done.set_value(fires);
      }
    });
  };
  loop.post([&] {
    timer = std::make_unique<Timer>(loop);
    arm();
  });
  EXPECT_EQ(done.get_future().get(), 5);
  loop.post([&] { timer.reset(); });
  loop.stop();
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

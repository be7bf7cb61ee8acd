#pragma once

// segment_preparer: one background thread that makes log segments ahead of need.
//
// A new segment is zero-filled to its full size and synced before any record goes into it
// (log_format.md, section 4), so that an fdatasync of a record never has to journal a growing
// file. For a 64 MiB segment that is ~60-100 ms of writing and syncing; done on the persister
// thread at a roll, it stalls every acknowledgement of the partition for that long (it was
// the p99 of the engine benchmark). With a preparer, a log_writer whose current segment is
// half full queues a job here that builds the next one as a free segment (free-<n>.seg);
// the roll then only recycles it (header, end marker, sync, rename: under a millisecond).
//
// Threading: submit() from any thread; jobs run one at a time, in order, on the preparer's
// thread. Jobs must not throw. The destructor runs the jobs already queued, then joins.
// Several writers (all partitions of an engine) share one preparer.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace statefold {

class segment_preparer {
 public:
  segment_preparer() : thread_([this] { run(); }) {}
  ~segment_preparer() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  segment_preparer(const segment_preparer&) = delete;
  segment_preparer& operator=(const segment_preparer&) = delete;

  void submit(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to run
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace statefold

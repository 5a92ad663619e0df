// A fixed pool of worker threads for data-parallel loops; the calling thread takes a share of every loop. Waiting
// threads poll for 50 µs before they sleep, so a run of short loops does not pay a wake-up per loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace nc {

// A non-owning reference to a callable body(begin, end). A loop's body lives on the caller's stack until
// parallel_for returns, so nothing is copied: a std::function would allocate for every lambda whose captures
// outgrow its small buffer, i.e. on most op calls of every decode step (issue #4: no per-token allocations).
class LoopBody {
  public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, LoopBody>>>
    LoopBody(F&& f)  // implicit: a lambda argument converts as it would to std::function
        : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* o, int64_t begin, int64_t end) { (*static_cast<std::remove_reference_t<F>*>(o))(begin, end); }) {}

    void operator()(int64_t begin, int64_t end) const { call_(object_, begin, end); }

  private:
    void* object_;
    void (*call_)(void*, int64_t, int64_t);
};

class ThreadPool {
  public:
    // threads: total parallelism including the caller; 0 = hardware threads.
    explicit ThreadPool(int threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return int(workers_.size()) + 1; }

    // Calls body(begin, end) on disjoint chunks covering [0, n), chunk boundaries multiples of `grain`.
    // Returns when all chunks are done. Not re-entrant: one loop at a time per pool.
    void parallel_for(int64_t n, int64_t grain, LoopBody body);

  private:
    void work(int index);
    void run_share(int index);

    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable wake_, done_;
    // The loop's description: written by the caller before generation_ advances (release), read by the workers
    // after they see it advance (acquire).
    const LoopBody* body_ = nullptr;
    int64_t n_ = 0, grain_ = 1;
    // Polled by threads that wait (briefly, before they sleep on the condition variables) as well as under mu_.
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
};

}  // namespace nc

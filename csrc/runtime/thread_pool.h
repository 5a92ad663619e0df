// A fixed pool of worker threads for data-parallel loops; the calling thread takes a share of every loop. Waiting
// threads poll for 50 µs before they sleep, so a run of short loops does not pay a wake-up per loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace nc {

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
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

  private:
    void work(int index);
    void run_share(int index);

    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable wake_, done_;
    // The loop's description: written by the caller before generation_ advances (release), read by the workers
    // after they see it advance (acquire).
    const std::function<void(int64_t, int64_t)>* body_ = nullptr;
    int64_t n_ = 0, grain_ = 1;
    // Polled by threads that wait (briefly, before they sleep on the condition variables) as well as under mu_.
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
};

}  // namespace nc

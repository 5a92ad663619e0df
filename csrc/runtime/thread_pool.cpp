#include "runtime/thread_pool.h"

#include <algorithm>

namespace nc {

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

// Share `index` of the current loop: an equal split in units of grain.
void ThreadPool::run_share(int index) {
    const int64_t units = (n_ + grain_ - 1) / grain_;
    const int64_t parts = size();
    const int64_t begin = std::min(n_, units * index / parts * grain_);
    const int64_t end = std::min(n_, units * (index + 1) / parts * grain_);
    if (begin < end) (*body_)(begin, end);
}

void ThreadPool::work(int index) {
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mu_);
            wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
        }
        run_share(index);
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (--pending_ == 0) done_.notify_one();
        }
    }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    if (workers_.empty() || n <= grain) {
        body(0, n);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        body_ = &body;
        n_ = n;
        grain_ = grain;
        pending_ = int(workers_.size());
        ++generation_;
    }
    wake_.notify_all();
    run_share(0);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return pending_ == 0; });
    body_ = nullptr;
}

}  // namespace nc

#include "runtime/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace nc {

namespace {

// How long a thread polls before it sleeps: a model's ops come as runs of short loops (a decode step: a few hundred
// in a few ms), and a sleeping thread takes a futex wake and a context switch (10–50 µs here) to start the next one.
constexpr auto kSpin = std::chrono::microseconds(50);

// Polls `ready` until it holds or kSpin has passed; whether it holds.
template <class F>
bool spin_until(F ready) {
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
        for (int i = 0; i < 16; ++i) {
            if (ready()) return true;
            _mm_pause();
        }
        if (std::chrono::steady_clock::now() >= deadline) return ready();
    }
}

}  // namespace

namespace pool_detail {

size_t next_type_index() {
    static std::atomic<size_t> next{0};
    return next.fetch_add(1);
}

Current& current() {
    thread_local Current c;
    return c;
}

}  // namespace pool_detail

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    locals_.resize(size_t(threads));
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_.store(true);
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
    if (begin < end) run_as(index, *body_, begin, end);
}

void ThreadPool::run_as(int index, const LoopBody& body, int64_t begin, int64_t end) {
    pool_detail::Current& c = pool_detail::current();
    const pool_detail::Current outer = c;  // a loop of another pool may run around this one (the caller's)
    c = pool_detail::Current{this, index};
    struct Restore {
        pool_detail::Current& c;
        pool_detail::Current outer;
        ~Restore() { c = outer; }
    } restore{c, outer};
    body(begin, end);
}

void ThreadPool::work(int index) {
    uint64_t seen = 0;
    const auto next = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
    for (;;) {
        if (!spin_until(next)) {
            std::unique_lock<std::mutex> lock(mu_);
            wake_.wait(lock, next);
        }
        if (stop_.load(std::memory_order_acquire)) return;
        seen = generation_.load(std::memory_order_acquire);
        run_share(index);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard<std::mutex> lock(mu_);
            done_.notify_one();
        }
    }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, LoopBody body) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    if (workers_.empty() || n <= grain) {
        run_as(0, body, 0, n);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        body_ = &body;
        n_ = n;
        grain_ = grain;
        pending_.store(int(workers_.size()), std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_share(0);
    const auto finished = [&] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(finished)) {
        std::unique_lock<std::mutex> lock(mu_);
        done_.wait(lock, finished);
    }
    body_ = nullptr;
}

}  // namespace nc

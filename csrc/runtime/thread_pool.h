// A fixed pool of worker threads for data-parallel loops; the calling thread takes a share of every loop. Waiting
// threads poll for 50 µs before they sleep, so a run of short loops does not pay a wake-up per loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
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

class ThreadPool;

namespace pool_detail {
struct Slot {
    virtual ~Slot() = default;
};
template <class T>
struct Held final : Slot {
    T value{};
};
size_t next_type_index();
// A small dense index per type asked for (share_local), the same in every pool.
template <class T>
size_t type_index() {
    static const size_t index = next_type_index();
    return index;
}
// The loop share the calling thread runs now: its pool and index (0 = the caller's), or no pool outside any loop.
struct Current {
    ThreadPool* pool = nullptr;
    int share = 0;
};
Current& current();
}  // namespace pool_detail

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

    // Share `share`'s instance of T (see share_local), made on first use.
    template <class T>
    T& local(int share) {
        std::vector<std::unique_ptr<pool_detail::Slot>>& slots = locals_[size_t(share)];
        const size_t t = pool_detail::type_index<T>();
        if (slots.size() <= t) slots.resize(t + 1);
        if (!slots[t]) slots[t] = std::make_unique<pool_detail::Held<T>>();
        return static_cast<pool_detail::Held<T>&>(*slots[t]).value;
    }

  private:
    void work(int index);
    void run_share(int index);
    // Runs body(begin, end) as share `index` (what share_local sees meanwhile).
    void run_as(int index, const LoopBody& body, int64_t begin, int64_t end);

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
    // Per share (the caller's first), the instances share_local made: touched only by the thread running the share.
    std::vector<std::vector<std::unique_ptr<pool_detail::Slot>>> locals_;
};

// A kernel's per-thread state (scratch buffers): this loop share's own T, owned by the pool. A share is one thread at a
// time, so no two threads see the same instance; and unlike thread_local storage, the caller's share is the same memory
// whichever OS thread calls (a Go caller moves between threads, each of which would keep a copy for its life), and it
// goes when the pool does. Outside any loop, the calling thread's own instance.
template <class T>
T& share_local() {
    const pool_detail::Current& c = pool_detail::current();
    if (c.pool == nullptr) {
        thread_local T own;
        return own;
    }
    return c.pool->local<T>(c.share);
}

// This share's float buffer of at least n elements, one per Tag (a type that only names the buffer).
template <class Tag>
std::vector<float>& share_floats(size_t n) {
    struct Buffer {
        std::vector<float> floats;
    };
    std::vector<float>& b = share_local<Buffer>().floats;
    if (b.size() < n) b.resize(n);
    return b;
}

}  // namespace nc

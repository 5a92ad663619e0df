// Memory for the large, long-lived arrays the kernels stream from memory once per decode step (the LLM's re-coded
// weights): 2 MiB-aligned and advised as transparent huge pages. Streaming 4 KiB pages costs a page walk every 4 KiB
// and measured 1.25× slower: int8 rows of 2048 weights at batch 1, nextchat_bench_linear 11264 2048 12 2 int8 1,
// 18.5–20.8 GB/s on 4 KiB pages, 24.2–25.0 on huge ones (docs/BENCHMARKS.md "Int8 weights").
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace nc {

struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

template <class T>
using HugeArray = std::unique_ptr<T[], FreeDeleter>;

// `bytes` zero bytes, 64-byte aligned, and 2 MiB-aligned with huge pages advised when at least 2 MiB (the kernel
// grants them where it can: an advice, not a requirement). Throws NC_ERR_OUT_OF_MEMORY naming `what`.
void* huge_zeroed(std::size_t bytes, const char* what);

template <class T>
HugeArray<T> huge_array(std::size_t n, const char* what) {
    return HugeArray<T>(static_cast<T*>(huge_zeroed(n * sizeof(T), what)));
}

}  // namespace nc

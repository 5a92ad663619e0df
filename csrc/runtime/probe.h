// Machine probes: the two ceilings every benchmark is judged against (docs/BENCHMARKS.md) — sustained fp32 FMA
// throughput and memory read bandwidth — measured on this machine, in this process, when asked.
#pragma once

#include <cstddef>

namespace nc {

// Sustained fp32 FMA throughput, GFLOP/s (an FMA on one lane counts 2): `threads` threads (0 = one per hardware
// thread) each run independent register-resident FMA chains for about `seconds`, on the widest vector ISA the
// kernels use (ops::cpu_isa(): AVX-512, else AVX2, else scalar) — the ceiling of the code that runs.
double probe_fma_peak(int threads, double seconds);

// Sustained AMX tile throughput, GFLOP/s of bf16 products (a TDPBF16PS tile product of 16 × 16 × 32 pairs counts
// 2·16·16·32), `threads` threads for about `seconds`; 0 when the kernels do not use the tiles (ops::cpu_has_amx).
// The kernels' float32-exact products take three tile products each (x split in three bf16 parts, cpu_amx.h), so
// their ceiling on the tiles is a third of this.
double probe_amx_peak(int threads, double seconds);

// Sustained memory read bandwidth, GB/s (1e9 bytes): `threads` threads stream disjoint slices of a buffer of
// `bytes` for about `seconds`. bytes = 0: 4× the last-level cache, clamped to [256 MiB, 2 GiB].
double probe_read_bandwidth(int threads, double seconds, size_t bytes = 0);

}  // namespace nc

// The op harness in perf mode (docs/ARCHITECTURE.md "Testing"): every op of the CPU backend at the released model's
// shapes (LLaMA-7B, CLIP ViT-L/14-336, SAM ViT-H; default_7b_config), timed on its own and set against this
// machine's roofline, measured in the same run: the time an op needs at least is the larger of its FLOPs at the
// compute peak and its bytes at the read bandwidth, and the report gives that bound as a percentage of the time
// measured. The compute peak is the vector FMA units' (nc_probe_fma_peak) except for matrix products the AMX tiles
// take, whose ceiling is a third of the tiles' bf16 rate (x is split exactly into three bf16 parts, ops/cpu_amx.h).
// Bytes are the least an op must move: its inputs and weights read once, its outputs written once.
//
//   nextchat_bench_ops THREADS [FILTER]
//
// FILTER keeps the cases whose name contains it. The kernels are the CPU backend's choice for the machine, capped as
// the engine's by NEXTCHAT_CPU_ISA=avx512|avx2|portable.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "model/config.h"
#include "nextchat.h"
#include "ops/convert.h"
#include "ops/cpu_amx.h"
#include "ops/cpu_simd.h"
#include "ops/kv_view.h"
#include "ops/ops.h"
#include "runtime/probe.h"

namespace {

using nc::ops::Weight;

// Random values in [-1, 1) from a fixed seed (an LCG: gigabytes of weights in a second, and never all zeros).
std::vector<float> random_floats(size_t n, uint32_t seed) {
    std::vector<float> v(n);
    uint32_t s = seed * 2654435761u + 1;
    for (float& x : v) {
        s = s * 1664525u + 1013904223u;
        x = float(int32_t(s >> 8) - (1 << 23)) / float(1 << 23);
    }
    return v;
}

// A weight [rows, cols] of random values stored as bf16 or f32, owning its bytes.
struct StoredWeight {
    std::vector<uint16_t> bf16;
    std::vector<float> f32;
    Weight w;
    StoredWeight(int64_t rows, int64_t cols, nc_dtype dtype, uint32_t seed) {
        std::vector<float> v = random_floats(size_t(rows * cols), seed);
        if (dtype == NC_DTYPE_BF16) {
            bf16.resize(v.size());
            for (size_t i = 0; i < v.size(); ++i) bf16[i] = nc::ops::f32_to_bf16(v[i]);
            w = Weight{dtype, bf16.data(), rows, cols};
        } else {
            f32 = std::move(v);
            w = Weight{NC_DTYPE_F32, f32.data(), rows, cols};
        }
    }
    double bytes() const { return double(bf16.size() * 2 + f32.size() * 4); }
};

struct Case {
    std::string name;  // op and where the model runs it
    double flops;      // an FMA counts 2
    double bytes;      // read once and written once, at least
    bool tiles;        // the AMX tiles take it: judged against their float32-exact ceiling
    std::function<void()> run;
    // Before each call, untimed, for an op that works in place: its input restored, so that repeated calls see the
    // same values (GELU applied to its own output drifts into denormals, whose arithmetic is many times slower).
    std::function<void()> reset = nullptr;
};

struct Peaks {
    double fma_gflops, amx_exact_gflops, read_gbps;
};

// Mean seconds of a call over runs of at least 50 ms of calls, the fastest of five runs after one warm-up call. Each
// call is timed alone, after its case's reset.
double seconds_per_call(const Case& c) {
    using Clock = std::chrono::steady_clock;
    auto once = [&] {
        if (c.reset) c.reset();
        const auto t0 = Clock::now();
        c.run();
        return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    once();
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
        int calls = 0;
        double total = 0;
        while (total < 0.05) {
            total += once();
            ++calls;
        }
        best = std::min(best, total / calls);
    }
    return best;
}

void report(const Case& c, const Peaks& p) {
    const double t = seconds_per_call(c);
    const double peak = c.tiles ? p.amx_exact_gflops : p.fma_gflops;
    const double compute = c.flops / (peak * 1e9), memory = c.bytes / (p.read_gbps * 1e9);
    const double bound = std::max(compute, memory);
    std::printf("%-44s %9.3f ms %8.1f GFLOP/s %7.1f GB/s  %-7s %5.1f %%\n", c.name.c_str(), t * 1e3,
                c.flops / t / 1e9, c.bytes / t / 1e9, compute >= memory ? (c.tiles ? "tiles" : "compute") : "memory",
                100 * bound / t);
}

// Everything the cases read and write, allocated once before any timing.
class Bench {
  public:
    // Rows up to which a product streams its weights from memory (decode steps).
    static constexpr int64_t kStreamedRows = 16;

    // Cases whose name contains filter; the weight copies of the other products are never made.
    Bench(nc::ops::Ops& ops, const nc_config& c, std::string filter) : ops_(ops), c_(c), filter_(std::move(filter)) {}

    std::vector<Case> cases() {
        std::vector<Case> out;
        llm(out);
        vision(out);
        sam(out);
        out.erase(std::remove_if(out.begin(), out.end(), [&](const Case& c) { return !wanted(c.name); }), out.end());
        return out;
    }

  private:
    bool wanted(const std::string& name) const { return name.find(filter_) != std::string::npos; }

    float* buffer(size_t n, uint32_t seed) {
        buffers_.push_back(random_floats(n, seed));
        return buffers_.back().data();
    }
    // An input an op overwrites in place, random, and the reset that restores it from a pristine copy.
    std::pair<float*, std::function<void()>> in_place(size_t n, uint32_t seed) {
        const float* pristine = buffer(n, seed);
        float* x = buffer(n, seed);
        return {x, [=] { std::memcpy(x, pristine, n * sizeof(float)); }};
    }
    const Weight& weight(int64_t rows, int64_t cols, nc_dtype dtype) {
        weights_.push_back(std::make_unique<StoredWeight>(rows, cols, dtype, uint32_t(weights_.size() + 100)));
        return weights_.back()->w;
    }

    // Copies of a bf16 weight [outputs, inputs]. Streamed, there are enough of them to outgrow twice the last-level
    // cache (at most 1 GiB), so that a product at decode's few rows reads its weights from memory as a decode step
    // does; products over many rows reuse each weight from the caches and take one. Shared between cases.
    const std::vector<const Weight*>& copies(int64_t outputs, int64_t inputs, bool streamed) {
        std::vector<const Weight*>& ws = copies_[{outputs, inputs, streamed}];
        if (!ws.empty()) return ws;
        const double bytes = double(outputs * inputs) * 2, l3 = double(std::max(sysconf(_SC_LEVEL3_CACHE_SIZE), 0L));
        const double target = streamed ? std::min(2 * std::max(l3, 128e6), double(1 << 30)) : bytes;
        const int n = std::max(1, int(target / bytes));
        for (int i = 0; i < n; ++i) ws.push_back(&weight(outputs, inputs, NC_DTYPE_BF16));
        return ws;
    }

    // linear at `rows` rows, each call on the next copy of the weight.
    void linear(std::vector<Case>& out, const std::string& op, int64_t rows, int64_t outputs, int64_t inputs) {
        const std::string name = op + " " + std::to_string(rows) + "×" + std::to_string(inputs) + "→" + std::to_string(outputs);
        if (!wanted(name)) return;
        const std::vector<const Weight*>& ws = copies(outputs, inputs, rows <= kStreamedRows);
        const float* x = buffer(size_t(rows * inputs), 1);
        float* y = buffer(size_t(rows * outputs), 2);
        auto next = std::make_shared<size_t>(0);
        const nc::ops::LinearOut lo{ws[0], nullptr, y};
        out.push_back({name, 2.0 * double(rows * outputs * inputs),
                       double(outputs * inputs) * 2 + 4.0 * double(rows * (inputs + outputs)),
                       nc::ops::amx_takes(rows, &lo, 1), [this, &ws, x, y, rows, next] {
                           ops_.linear(x, rows, *ws[*next % ws.size()], nullptr, y);
                           ++*next;
                       }});
    }

    void llm(std::vector<Case>& out) {
        const int64_t H = c_.hidden_size, I = c_.intermediate_size, heads = c_.num_attention_heads;
        const int64_t d = H / heads, kv_heads = c_.num_key_value_heads;
        for (int64_t rows : {int64_t(1), int64_t(16), int64_t(512)}) {
            linear(out, "llm q_proj", rows, H, H);
            linear(out, "llm gate_proj", rows, I, H);
            linear(out, "llm down_proj", rows, H, I);
        }
        const int64_t rows = 512;
        const Weight& norm = weight(1, H, NC_DTYPE_BF16);
        const float* x = buffer(size_t(rows * H), 3);
        float* y = buffer(size_t(rows * H), 4);
        out.push_back({"llm rms_norm 512×" + std::to_string(H), 4.0 * double(rows * H), 8.0 * double(rows * H), false,
                       [=] { ops_.rms_norm(x, rows, norm, 1e-6f, y); }});
        const auto [rotated, restore_rotated] = in_place(size_t(rows * H), 5);
        float* cos = buffer(size_t(rows * d / 2), 6);
        float* sin = buffer(size_t(rows * d / 2), 7);
        for (int64_t i = 0; i < rows * d / 2; ++i) {  // rotations: angles, not independent values
            const float angle = 3.14159265f * cos[i];
            cos[i] = std::cos(angle);
            sin[i] = std::sin(angle);
        }
        out.push_back({"llm rope 512×" + std::to_string(heads) + "×" + std::to_string(d), 3.0 * double(rows * H),
                       8.0 * double(rows * H) + 8.0 * double(rows * d / 2), false,
                       [=, x = rotated] { ops_.rope(x, rows, int32_t(heads), int32_t(d), cos, sin); }, restore_rotated});
        const auto [gate, restore_gate] = in_place(size_t(rows * I), 8);
        const float* up = buffer(size_t(rows * I), 9);
        out.push_back({"llm silu_mul 512×" + std::to_string(I), 4.0 * double(rows * I), 12.0 * double(rows * I), false,
                       [=, g = gate] { ops_.silu_mul(g, up, rows * I); }, restore_gate});
        const float* q = buffer(size_t(rows * H), 5);
        // The paged KV cache (f16, blocks of 16) of one sequence at 2048 positions: a decode row attends to all of
        // them, a prompt of 512 rows at positions 1536.. to the ones before it.
        const int64_t ctx = 2048, block = 16;
        kv_pool_.assign(size_t(ctx / block * 2 * kv_heads * block * d), 0);
        for (size_t i = 0; i < kv_pool_.size(); ++i) kv_pool_[i] = nc::ops::f32_to_f16(float(int(i % 61) - 30) / 40);
        kv_table_.resize(size_t(ctx / block));
        for (size_t i = 0; i < kv_table_.size(); ++i) kv_table_[i] = int32_t(i);
        const nc::ops::KVSeqView kv{kv_pool_.data(), kv_table_.data(), int32_t(block), int32_t(kv_heads), int32_t(d),
                                    NC_DTYPE_F16};
        float* o = buffer(size_t(rows * H), 10);
        const double kv_bytes = 2.0 * 2 * double(ctx * kv_heads * d);
        out.push_back({"llm attention decode 1 row, 2048 cached", 4.0 * double(ctx * heads * d),
                       kv_bytes + 8.0 * double(H), false, [=] { ops_.attention(q, 1, int32_t(heads), ctx - 1, kv, o); }});
        out.push_back({"llm attention prefill 512 rows at 1536", 4.0 * double(rows) * double(ctx - rows / 2) * double(heads * d),
                       kv_bytes + 8.0 * double(rows * H), false,
                       [=] { ops_.attention(q, rows, int32_t(heads), ctx - rows, kv, o); }});
    }

    void vision(std::vector<Case>& out) {
        const int64_t W = c_.vision_hidden_size, I = c_.vision_intermediate_size, heads = c_.vision_num_attention_heads;
        const int64_t grid = c_.vision_image_size / c_.vision_patch_size, T = grid * grid + 1, d = W / heads;
        linear(out, "clip fc1", T, I, W);
        linear(out, "clip fc2", T, W, I);
        const Weight& gamma = weight(1, W, NC_DTYPE_BF16);
        const Weight& beta = weight(1, W, NC_DTYPE_BF16);
        const float* x = buffer(size_t(T * W), 11);
        float* y = buffer(size_t(T * W), 12);
        out.push_back({"clip layer_norm " + std::to_string(T) + "×" + std::to_string(W), 7.0 * double(T * W),
                       8.0 * double(T * W), false, [=] { ops_.layer_norm(x, T, gamma, beta, 1e-5f, y); }});
        const auto [h, restore_h] = in_place(size_t(T * I), 13);
        out.push_back({"clip quick_gelu " + std::to_string(T) + "×" + std::to_string(I), 4.0 * double(T * I),
                       8.0 * double(T * I), false, [=, x = h] { ops_.quick_gelu(x, T * I); }, restore_h});
        const float* q = buffer(size_t(T * W), 14);
        const float* k = buffer(size_t(T * W), 15);
        const float* v = buffer(size_t(T * W), 16);
        out.push_back({"clip attention " + std::to_string(T) + "² × " + std::to_string(heads) + " heads",
                       4.0 * double(T * T * W), 16.0 * double(T * W), false,
                       [=] { ops_.attention(q, k, v, 1, T, T, int32_t(heads), int32_t(d), 0.125f, nullptr, y); }});
    }

    void sam(std::vector<Case>& out) {
        const int64_t D = c_.sam_encoder_embed_dim, M = c_.sam_encoder_mlp_dim, heads = c_.sam_encoder_num_heads;
        const int64_t g = c_.sam_image_size / c_.sam_patch_size, T = g * g, d = D / heads, win = c_.sam_window_size;
        const int64_t wins = ((g + win - 1) / win) * ((g + win - 1) / win), N = c_.sam_prompt_embed_dim;
        linear(out, "sam qkv", T, 3 * D, D);
        linear(out, "sam lin1", T, M, D);
        linear(out, "sam lin2", T, D, M);
        const auto [h, restore_h] = in_place(size_t(T * M), 20);
        out.push_back({"sam gelu " + std::to_string(T) + "×" + std::to_string(M), 20.0 * double(T * M),
                       8.0 * double(T * M), false, [=, x = h] { ops_.gelu(x, T * M); }, restore_h});
        const Weight& gamma = weight(1, D, NC_DTYPE_BF16);
        const Weight& beta = weight(1, D, NC_DTYPE_BF16);
        const float* x = buffer(size_t(T * D), 21);
        float* y = buffer(size_t(wins * win * win * D), 22);
        out.push_back({"sam layer_norm " + std::to_string(T) + "×" + std::to_string(D), 7.0 * double(T * D),
                       8.0 * double(T * D), false, [=] { ops_.layer_norm(x, T, gamma, beta, 1e-6f, y); }});
        const float* pos = buffer(size_t(T * D), 23);
        float* sum = buffer(size_t(T * D), 19);
        out.push_back({"sam add_rows " + std::to_string(T) + "×" + std::to_string(D), double(T * D),
                       12.0 * double(T * D), false, [=] { ops_.add_rows(x, pos, T, T, D, sum); }});
        out.push_back({"sam window_partition " + std::to_string(g) + "² → " + std::to_string(wins) + " windows", 0,
                       4.0 * double(T * D + wins * win * win * D), false,
                       [=] { ops_.window_partition(x, g, g, D, int32_t(win), nullptr, y); }});
        out.push_back({"sam window_merge", 0, 4.0 * double(T * D + wins * win * win * D), false,
                       [=] { ops_.window_merge(y, g, g, D, int32_t(win), sum); }});
        // Global attention over the whole grid with the decomposed relative positions (§5.1), and windowed.
        const float* q = buffer(size_t(wins * win * win * D), 24);
        const float* k = buffer(size_t(wins * win * win * D), 25);
        const float* v = buffer(size_t(wins * win * win * D), 26);
        float* o = buffer(size_t(wins * win * win * D), 27);
        const Weight& rel_g = weight(2 * g - 1, d, NC_DTYPE_BF16);
        const Weight& rel_w = weight(2 * win - 1, d, NC_DTYPE_BF16);
        const float scale = 1.0f / 9.0f;
        out.push_back({"sam attention global " + std::to_string(T) + "² × " + std::to_string(heads) + ", rel-pos",
                       4.0 * double(T) * double(T * D) + 4.0 * double(T * g * D), 16.0 * double(T * D), false, [=] {
                           auto bias = ops_.rel_pos_bias(q, int32_t(heads), int32_t(d), g, g, rel_g, rel_g);
                           ops_.attention(q, k, v, 1, T, T, int32_t(heads), int32_t(d), scale, bias.get(), o);
                       }});
        const int64_t wt = win * win;
        out.push_back({"sam attention " + std::to_string(wins) + " windows of " + std::to_string(wt) + ", rel-pos",
                       4.0 * double(wins) * double(wt * wt * D) + 4.0 * double(wins * wt * win * D),
                       16.0 * double(wins * wt * D), false, [=] {
                           auto bias = ops_.rel_pos_bias(q, int32_t(heads), int32_t(d), win, win, rel_w, rel_w);
                           ops_.attention(q, k, v, wins, wt, wt, int32_t(heads), int32_t(d), scale, bias.get(), o);
                       }});
        // The neck's 3 × 3 convolution (N → N channels over the grid), then maps channels-last ↔ channels-first.
        const Weight& conv = weight(N, N * 9, NC_DTYPE_BF16);
        const float* map = buffer(size_t(T * N), 28);
        float* conv_out = buffer(size_t(T * N), 29);
        out.push_back({"sam conv2d 3×3 " + std::to_string(g) + "² × " + std::to_string(N), 2.0 * double(T * N * N * 9),
                       double(N * N * 9) * 2 + 8.0 * double(T * N), false,
                       [=] { ops_.conv2d(map, 1, g, g, conv, nullptr, 3, conv_out); }});
        out.push_back({"sam transpose " + std::to_string(T) + "×" + std::to_string(N), 0, 8.0 * double(T * N), false,
                       [=] { ops_.transpose(map, 1, T, N, conv_out); }});
        // The mask decoder's low-res masks [4g]² to the padded input size, and its image→token softmax.
        const int64_t low = 4 * g, S = c_.sam_image_size;
        const float* masks = buffer(size_t(low * low), 30);
        float* up = buffer(size_t(S * S), 31);
        out.push_back({"sam resize_bilinear " + std::to_string(low) + "² → " + std::to_string(S) + "²",
                       8.0 * double(S * S), 4.0 * double(low * low + S * S), false,
                       [=] { ops_.resize_bilinear(masks, 1, low, low, S, S, 0, S, 0, S, up); }});
        const auto [scores, restore_scores] = in_place(size_t(8 * T * 7), 32);
        out.push_back({"sam softmax " + std::to_string(8 * T) + "×7", 4.0 * double(8 * T * 7), 8.0 * double(8 * T * 7),
                       false, [=, x = scores] { ops_.softmax(x, 8 * T, 7); }, restore_scores});
    }

    nc::ops::Ops& ops_;
    nc_config c_;
    std::string filter_;
    std::vector<std::vector<float>> buffers_;
    std::vector<std::unique_ptr<StoredWeight>> weights_;
    std::map<std::tuple<int64_t, int64_t, bool>, std::vector<const Weight*>> copies_;
    std::vector<uint16_t> kv_pool_;
    std::vector<int32_t> kv_table_;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: %s THREADS [FILTER]\n", argv[0]);
        return 2;
    }
    const int threads = std::atoi(argv[1]);
    const std::string filter = argc == 3 ? argv[2] : "";
    if (threads < 0) {
        std::fprintf(stderr, "threads must be ≥ 0 (0: one per hardware thread)\n");
        return 2;
    }
    const nc_config config = nc::default_7b_config();
    auto ops = nc::ops::make_cpu_ops(threads);
    Bench bench(*ops, config, filter);
    const std::vector<Case> cases = bench.cases();
    const Peaks peaks{nc::probe_fma_peak(threads, 1.0), nc::probe_amx_peak(threads, 1.0) / 3,
                      nc::probe_read_bandwidth(threads, 1.0)};
    std::printf("CPU ops at nextchat-7b's shapes, %d threads (0: all), kernels %s; measured now: FMA peak %.1f "
                "GFLOP/s, float32-exact AMX products %.1f GFLOP/s, read bandwidth %.1f GB/s\n",
                threads, nc::ops::cpu_has_amx() ? "amx" : nc::ops::cpu_isa() == nc::ops::Isa::Avx512 ? "avx512"
                         : nc::ops::cpu_isa() == nc::ops::Isa::Avx2                                     ? "avx2"
                                                                                                          : "portable",
                peaks.fma_gflops, peaks.amx_exact_gflops, peaks.read_gbps);
    std::printf("%-44s %12s %16s %12s  %-7s %s\n", "op", "per call", "", "", "bound", "of roofline");
    for (const Case& c : cases) report(c, peaks);
    return 0;
}

// The memory plan (nc_model_plan, nc_model_reserve, nc_model_workspace) on the small fixture model: the plan's
// arithmetic against what the core allocates, a planned workload of every stage that grows no buffer and whose heap
// stays within the plan (every operator new of this test binary is counted), decode steps that allocate nothing, and
// over-plan work refused before any compute.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "nextchat.h"
#include "runtime/kv_cache.h"

// ---- heap accounting: every operator new of the binary, with its size in a header ----------------------------------

namespace {

std::atomic<int64_t> heap_live{0}, heap_peak{0}, heap_calls{0};
constexpr size_t kHeader = 16;  // keeps malloc's 16-byte alignment

void* counted_new(size_t n) {
    void* p = std::malloc(n + kHeader);
    if (p == nullptr) throw std::bad_alloc();
    heap_calls.fetch_add(1);
    *static_cast<size_t*>(p) = n;
    const int64_t live = heap_live.fetch_add(int64_t(n)) + int64_t(n);
    int64_t peak = heap_peak.load();
    while (live > peak && !heap_peak.compare_exchange_weak(peak, live)) {
    }
    return static_cast<char*>(p) + kHeader;
}

void counted_delete(void* q) noexcept {
    if (q == nullptr) return;
    void* p = static_cast<char*>(q) - kHeader;
    heap_live.fetch_sub(int64_t(*static_cast<size_t*>(p)));
    std::free(p);
}

}  // namespace

void* operator new(size_t n) { return counted_new(n); }
void* operator new[](size_t n) { return counted_new(n); }
void operator delete(void* p) noexcept { counted_delete(p); }
void operator delete[](void* p) noexcept { counted_delete(p); }
void operator delete(void* p, size_t) noexcept { counted_delete(p); }
void operator delete[](void* p, size_t) noexcept { counted_delete(p); }

namespace {

uint64_t sum(const uint64_t* v, int n) {
    uint64_t s = 0;
    for (int i = 0; i < n; ++i) s += v[i];
    return s;
}

class Plan : public testing::Test {
  protected:
    // How the fixture's LLM weights are held: float32 as stored, bf16 held compact (PlannedCompactWork) or float32
    // quantized to int8 rows (PlannedInt8Work).
    virtual nc_llm_weights held_as() const { return NC_LLM_WEIGHTS_AS_STORED; }

    void SetUp() override {
        file = std::make_unique<nc_test::WeightFile>(config, "plan", held_as() == NC_LLM_WEIGHTS_COMPACT ? NC_DTYPE_BF16 : NC_DTYPE_F32);
        files[0] = file->path().c_str();
        nc_model_params p = nc_test::cpu_params(config, files, 1, file->refs());
        p.threads = 2;
        p.llm_weights = held_as();
        ASSERT_EQ(nc_model_open(&p, &model), NC_OK) << nc_last_error();
        dims.struct_size = sizeof(dims);
        ASSERT_EQ(nc_model_get_dims(model, &dims), NC_OK) << nc_last_error();
        request.struct_size = sizeof(request);
        request.backend = NC_BACKEND_CPU;
        request.threads = 2;
        request.max_context = 96;
        request.max_sequences = 3;
        request.max_step_rows = 80;
        request.max_images = 3;
        request.max_locations = 9;  // more than one pass of the mask decoder (8)
        request.kv_block_size = 16;
        request.kv_dtype = NC_DTYPE_F16;
    }
    void TearDown() override { nc_model_free(model); }

    nc_plan make_plan(const nc_plan_request& r) {
        nc_plan p{};
        p.struct_size = sizeof(p);
        EXPECT_EQ(nc_model_plan(model, &r, &p), NC_OK) << nc_last_error();
        return p;
    }

    nc_config config = nc_test::small_config();
    std::unique_ptr<nc_test::WeightFile> file;
    const char* files[1] = {};
    nc_model* model = nullptr;
    nc_model_dims dims{};
    nc_plan_request request{};
};

TEST_F(Plan, FillsDefaultsAndChecksTheRequest) {
    nc_plan_request r{};
    r.struct_size = sizeof(r);
    r.backend = NC_BACKEND_CPU;
    r.kv_dtype = NC_DTYPE_BF16;
    const nc_plan p = make_plan(r);
    EXPECT_EQ(p.request.max_context, config.max_position_embeddings);
    EXPECT_EQ(p.request.max_sequences, 1);
    EXPECT_EQ(p.request.max_step_rows, config.max_position_embeddings);
    EXPECT_EQ(p.request.max_images, 1);
    EXPECT_EQ(p.request.max_locations, 8);
    EXPECT_EQ(p.request.kv_block_size, 16);

    struct Case {
        const char* name;
        void (*spoil)(nc_plan_request&);
        const char* message;
    };
    const Case cases[] = {
        {"context past the model", [](nc_plan_request& q) { q.max_context = 1 << 30; }, "max_context"},
        {"negative sequences", [](nc_plan_request& q) { q.max_sequences = -1; }, "max_sequences"},
        {"block not a power of two", [](nc_plan_request& q) { q.kv_block_size = 12; }, "kv_block_size"},
        {"unknown KV dtype", [](nc_plan_request& q) { q.kv_dtype = 9; }, "KV dtype"},
        {"unknown backend", [](nc_plan_request& q) { q.backend = 7; }, "backend"},
        {"negative cache", [](nc_plan_request& q) { q.sam_cache_images = -2; }, "cache"},
    };
    for (const Case& c : cases) {
        nc_plan_request bad = request;
        c.spoil(bad);
        nc_plan out{};
        out.struct_size = sizeof(out);
        EXPECT_EQ(nc_model_plan(model, &bad, &out), NC_ERR_INVALID_ARGUMENT) << c.name;
        EXPECT_NE(std::string(nc_last_error()).find(c.message), std::string::npos) << c.name << ": " << nc_last_error();
    }
    nc_plan small{};
    small.struct_size = sizeof(nc_plan) - 8;
    EXPECT_EQ(nc_model_plan(model, &request, &small), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_model_plan(nullptr, &request, &small), NC_ERR_INVALID_ARGUMENT);
}

TEST_F(Plan, KVCacheIsWhatCacheCreateAllocates) {
    const nc_plan p = make_plan(request);
    EXPECT_EQ(p.kv_blocks, 3 * (96 / 16));
    const int64_t head_dim = config.hidden_size / config.num_attention_heads;
    EXPECT_EQ(p.kv_block_bytes, uint64_t(2 * config.num_hidden_layers * config.num_key_value_heads * 16 * head_dim * 2));
    const nc::KVCache cache(config, 16, p.kv_blocks, NC_DTYPE_F16);
    EXPECT_EQ(cache.bytes(), p.kv_block_bytes * uint64_t(p.kv_blocks));
    EXPECT_EQ(p.kv_bytes, cache.bytes() + uint64_t(p.kv_blocks) * 8);  // + reference counts and the free list
    nc_cache_params cp{sizeof(cp), 16, p.kv_blocks, NC_DTYPE_F16};
    nc_cache* c = nullptr;
    ASSERT_EQ(nc_cache_create(model, &cp, &c), NC_OK) << nc_last_error();
    int64_t free_blocks = 0, total = 0;
    ASSERT_EQ(nc_cache_blocks(c, &free_blocks, &total), NC_OK);
    EXPECT_EQ(total, p.kv_blocks);
    nc_cache_free(c);

    // A context that is not a whole number of blocks rounds up per sequence.
    nc_plan_request odd = request;
    odd.max_context = 97;
    EXPECT_EQ(make_plan(odd).kv_blocks, 3 * 7);
}

TEST_F(Plan, TotalsAddUpAndCudaMovesTheModelToTheDevice) {
    request.feature_cache_images = 4;
    request.sam_cache_images = 2;
    const nc_plan p = make_plan(request);
    nc_memory_report mem{};
    mem.struct_size = sizeof(mem);
    ASSERT_EQ(nc_model_memory(model, NC_DTYPE_F16, &mem), NC_OK);
    EXPECT_EQ(p.weights_total, mem.weight_bytes_total);
    for (int c = 0; c < NC_COMPONENT_COUNT; ++c) EXPECT_EQ(p.weight_bytes[c], mem.weight_bytes[c]) << c;
    EXPECT_EQ(p.feature_cache_bytes, uint64_t(4 * dims.image_tokens * dims.hidden_size * 4));
    EXPECT_EQ(p.sam_cache_bytes, uint64_t(2 * dims.sam_embed_dim * dims.sam_grid * dims.sam_grid * 4));
    for (int st = 0; st < NC_STAGE_COUNT; ++st) {
        EXPECT_GT(p.workspace_bytes[st], 0u) << nc_stage_name(st);
        EXPECT_GT(p.scratch_bytes[st], 0u) << nc_stage_name(st);
    }
    const uint64_t model_bytes = p.weights_total + sum(p.derived_bytes, NC_STAGE_COUNT) + p.kv_bytes +
                                 sum(p.workspace_bytes, NC_STAGE_COUNT) + sum(p.scratch_bytes, NC_STAGE_COUNT);
    const uint64_t caller = p.sequence_bytes + p.feature_cache_bytes + p.sam_cache_bytes;
    EXPECT_EQ(p.host_bytes, model_bytes + caller);
    EXPECT_EQ(p.device_bytes, 0u);

    nc_plan_request gpu = request;
    gpu.backend = NC_BACKEND_CUDA;
    const nc_plan g = make_plan(gpu);
    EXPECT_EQ(sum(g.scratch_bytes, NC_STAGE_COUNT), 0u);
    EXPECT_EQ(g.device_bytes, model_bytes - sum(p.scratch_bytes, NC_STAGE_COUNT));
    EXPECT_EQ(g.host_bytes, caller);
    EXPECT_EQ(nc_model_reserve(model, &gpu, nullptr), NC_ERR_UNSUPPORTED);

    // Threads: 0 plans the model's own pools; a reserve must match them.
    nc_plan_request own = request;
    own.threads = 0;
    EXPECT_EQ(make_plan(own).request.threads, 2);
    nc_plan_request other = request;
    other.threads = 5;
    EXPECT_EQ(nc_model_reserve(model, &other, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("the model runs 2"), std::string::npos) << nc_last_error();
}

TEST_F(Plan, WorkspaceGrowsWithItsLimits) {
    const nc_plan base = make_plan(request);
    struct Case {
        const char* name;
        void (*grow)(nc_plan_request&);
        unsigned stages;  // bit per nc_stage whose workspace changes
    };
    const Case cases[] = {
        {"rows", [](nc_plan_request& q) { q.max_step_rows *= 2; }, 1u << NC_STAGE_STEP},
        {"sequences", [](nc_plan_request& q) { q.max_sequences *= 2; }, 1u << NC_STAGE_STEP},
        {"images within a pass", [](nc_plan_request& q) { q.max_images = 1; }, 1u << NC_STAGE_VISION},
        // the loc heads' boxes per nc_encode_boxes, and the SAM decoder's locations
        {"locations", [](nc_plan_request& q) { q.max_locations *= 2; }, 1u << NC_STAGE_STEP | 1u << NC_STAGE_SAM_DECODER},
    };
    for (const Case& c : cases) {
        nc_plan_request r = request;
        c.grow(r);
        const nc_plan p = make_plan(r);
        for (int st = 0; st < NC_STAGE_COUNT; ++st) {
            const bool changes = (c.stages >> st) & 1u;
            EXPECT_EQ(p.workspace_bytes[st] != base.workspace_bytes[st], changes) << c.name << " " << nc_stage_name(st);
        }
    }
    // The CLIP tower runs two images per pass: more images per call need no more workspace.
    nc_plan_request many = request;
    many.max_images = 40;
    EXPECT_EQ(make_plan(many).workspace_bytes[NC_STAGE_VISION], base.workspace_bytes[NC_STAGE_VISION]);
}

// One planned workload of every stage: prefill of two sequences in one step, decode steps with a located <at>, a
// fork, CLIP over max_images, SAM over max_locations with masks.
class PlannedWork : public Plan {
  protected:
    void reserve_allocates_the_plan_and_work_grows_nothing();
    void decode_steps_allocate_nothing();

    // Reserves the fixture's plan and makes the KV cache it plans for.
    void reserve_planned_cache(nc_cache** cache) {
        nc_plan p{};
        p.struct_size = sizeof(p);
        ASSERT_EQ(nc_model_reserve(model, &request, &p), NC_OK) << nc_last_error();
        nc_cache_params cp{sizeof(cp), p.request.kv_block_size, p.kv_blocks, p.request.kv_dtype};
        ASSERT_EQ(nc_cache_create(model, &cp, cache), NC_OK) << nc_last_error();
    }

    void run_workload(nc_cache* cache) {
        const int32_t H = config.hidden_size, V = config.vocab_size;
        nc_sampling greedy{sizeof(nc_sampling), 0.0f, 0, 1.0f, 1.0f, 0};
        nc_seq *a = nullptr, *b = nullptr;
        ASSERT_EQ(nc_seq_create(cache, &greedy, &a), NC_OK) << nc_last_error();
        ASSERT_EQ(nc_seq_create(cache, &greedy, &b), NC_OK) << nc_last_error();
        std::vector<int32_t> ta(50), tb(30);
        for (size_t i = 0; i < ta.size(); ++i) ta[i] = int32_t(i % 30);
        for (size_t i = 0; i < tb.size(); ++i) tb[i] = int32_t((i * 7) % 30);
        ta.back() = config.at_token_id;
        std::vector<uint8_t> locate(ta.size(), 0);
        locate.back() = 1;
        std::vector<float> logits(V), boxes(4 * 2), at_hidden(2 * H);
        nc_step_input in[2] = {};
        in[0].seq = a;
        in[0].tokens = ta.data();
        in[0].n_tokens = int32_t(ta.size());
        in[0].want = NC_STEP_SAMPLE;
        in[0].locate_rows = locate.data();
        in[0].boxes = boxes.data();
        in[0].at_hidden = at_hidden.data();
        in[1].seq = b;
        in[1].tokens = tb.data();
        in[1].n_tokens = int32_t(tb.size());
        in[1].want = NC_STEP_SAMPLE | NC_STEP_LOGITS;
        in[1].logits = logits.data();
        ASSERT_EQ(nc_step(model, cache, in, 2), NC_OK) << nc_last_error();
        nc_seq* c = nullptr;
        ASSERT_EQ(nc_seq_fork(b, &c), NC_OK);
        for (int t = 0; t < 12; ++t) {
            int32_t next[3] = {in[0].token, in[1].token, int32_t(t % 30)};
            nc_step_input d[3] = {};
            nc_seq* seqs[3] = {a, b, c};
            for (int i = 0; i < 3; ++i) {
                d[i].seq = seqs[i];
                d[i].tokens = &next[i];
                d[i].n_tokens = 1;
                d[i].want = NC_STEP_SAMPLE;
            }
            ASSERT_EQ(nc_step(model, cache, d, 3), NC_OK) << nc_last_error();
            in[0].token = d[0].token;
            in[1].token = d[1].token;
        }
        nc_seq_free(a);
        nc_seq_free(b);
        nc_seq_free(c);

        const int S = dims.image_size, n = request.max_images;
        std::vector<float> pixels(size_t(n) * 3 * S * S, 0.25f), projected(size_t(n) * dims.image_tokens * H);
        ASSERT_EQ(nc_encode_images(model, pixels.data(), n, projected.data(), nullptr), NC_OK) << nc_last_error();

        const int Ss = dims.sam_image_size, L = request.max_locations;
        std::vector<float> sam_pixels(size_t(3) * Ss * Ss, 0.5f);
        std::vector<float> embedding(size_t(dims.sam_embed_dim) * dims.sam_grid * dims.sam_grid);
        ASSERT_EQ(nc_sam_encode_image(model, sam_pixels.data(), embedding.data()), NC_OK) << nc_last_error();
        std::vector<float> hidden(L * H, 0.1f), sam_boxes(L * 4), iou(L);
        for (int i = 0; i < L; ++i) {
            sam_boxes[size_t(4 * i)] = 0.1f;
            sam_boxes[size_t(4 * i + 1)] = 0.2f;
            sam_boxes[size_t(4 * i + 2)] = 0.6f;
            sam_boxes[size_t(4 * i + 3)] = 0.7f;
        }
        const int width = 70, height = 45;
        std::vector<uint8_t> masks(size_t(L) * width * height);
        ASSERT_EQ(nc_sam_decode_masks(model, embedding.data(), L, hidden.data(), sam_boxes.data(), width, height, nullptr,
                                      iou.data(), masks.data(), nullptr),
                  NC_OK)
            << nc_last_error();
        std::vector<float> embeds(size_t(L) * H);
        ASSERT_EQ(nc_encode_boxes(model, sam_boxes.data(), L, embeds.data()), NC_OK) << nc_last_error();
    }
};

void PlannedWork::reserve_allocates_the_plan_and_work_grows_nothing() {
    const int64_t before = heap_live.load();
    heap_peak.store(before);
    nc_plan p{};
    p.struct_size = sizeof(p);
    ASSERT_EQ(nc_model_reserve(model, &request, &p), NC_OK) << nc_last_error();
    uint64_t held[NC_STAGE_COUNT] = {};
    ASSERT_EQ(nc_model_workspace(model, held), NC_OK);
    for (int st = 0; st < NC_STAGE_COUNT; ++st) EXPECT_EQ(held[st], p.workspace_bytes[st]) << nc_stage_name(st);

    nc_cache_params cp{sizeof(cp), p.request.kv_block_size, p.kv_blocks, p.request.kv_dtype};
    nc_cache* cache = nullptr;
    ASSERT_EQ(nc_cache_create(model, &cp, &cache), NC_OK) << nc_last_error();
    run_workload(cache);
    run_workload(cache);  // a second round reuses everything
    nc_cache_free(cache);

    uint64_t after[NC_STAGE_COUNT] = {};
    ASSERT_EQ(nc_model_workspace(model, after), NC_OK);
    for (int st = 0; st < NC_STAGE_COUNT; ++st) EXPECT_EQ(after[st], p.workspace_bytes[st]) << nc_stage_name(st);

    // The heap at its peak, less what was live before reserve and the workload's own inputs and outputs (pixels,
    // features, SAM inputs, masks: under 256 KiB at the fixture's size), stays within the plan.
    const uint64_t planned = sum(p.workspace_bytes, NC_STAGE_COUNT) + sum(p.scratch_bytes, NC_STAGE_COUNT) + p.kv_bytes +
                             p.sequence_bytes;
    const uint64_t test_buffers = 256u << 10;
    const uint64_t peak = uint64_t(heap_peak.load() - before);
    EXPECT_LE(peak, planned + test_buffers) << "peak " << peak << " plan " << planned;
    RecordProperty("heap_peak_bytes", std::to_string(peak));
    RecordProperty("planned_bytes", std::to_string(planned));
    // ...and the plan is not a wild overestimate: the workspace alone is most of what was used.
    EXPECT_GE(peak, sum(p.workspace_bytes, NC_STAGE_COUNT) + p.kv_bytes);
}

// A caller that moves between OS threads (a Go program's goroutines do) leaves nothing behind on them: the kernels'
// per-thread scratch belongs to the pools' loop shares, the caller's share included, so after one workload, the same
// workload on each of three more threads, all kept alive, grows the heap by nothing.
TEST_F(PlannedWork, OtherCallerThreadsGrowNothing) {
    nc_cache* cache = nullptr;
    ASSERT_NO_FATAL_FAILURE(reserve_planned_cache(&cache));
    run_workload(cache);

    constexpr int kCallers = 3;
    int64_t growth[kCallers] = {};
    std::mutex mu;
    std::condition_variable cv;
    int finished = 0;
    bool release = false;
    std::vector<std::thread> callers;
    callers.reserve(kCallers);
    for (int i = 0; i < kCallers; ++i) {
        callers.emplace_back([&, i] {
            const int64_t before = heap_live.load();
            run_workload(cache);
            growth[i] = heap_live.load() - before;
            std::unique_lock<std::mutex> lock(mu);
            ++finished;
            cv.notify_all();
            cv.wait(lock, [&] { return release; });  // alive until every caller has run
        });
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return finished == i + 1; });  // one caller at a time: nothing else allocates meanwhile
    }
    {
        std::lock_guard<std::mutex> lock(mu);
        release = true;
    }
    cv.notify_all();
    for (std::thread& t : callers) t.join();
    for (int i = 0; i < kCallers; ++i) EXPECT_EQ(growth[i], 0) << "caller thread " << i;
    nc_cache_free(cache);
}

// Issue #4's "no per-token allocations": once a sequence's first steps have run, decode steps — a batch of greedy
// and sampled sequences (temperature, top-k, top-p, repetition penalty), each at a different position, one of them
// fed a located <at> — make no heap allocation at all, in the core or the ABI.
void PlannedWork::decode_steps_allocate_nothing() {
    nc_cache* cache = nullptr;
    ASSERT_NO_FATAL_FAILURE(reserve_planned_cache(&cache));
    const nc_sampling samplings[3] = {{sizeof(nc_sampling), 0.0f, 0, 1.0f, 1.0f, 0},
                                      {sizeof(nc_sampling), 0.8f, 5, 0.9f, 1.3f, 7},
                                      {sizeof(nc_sampling), 1.5f, 0, 0.95f, 1.0f, 8}};
    nc_seq* seqs[3] = {};
    std::vector<int32_t> prompt(21);
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 5) % 30);
    const int32_t H = config.hidden_size;
    std::vector<float> boxes(4 * 40), at_hidden(size_t(40) * H);
    nc_step_input in[3] = {};
    int32_t next[3] = {};
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(nc_seq_create(cache, &samplings[i], &seqs[i]), NC_OK) << nc_last_error();
        nc_step_input first{};
        first.seq = seqs[i];
        first.tokens = prompt.data();
        first.n_tokens = 7 + 6 * i;
        first.want = NC_STEP_SAMPLE;
        ASSERT_EQ(nc_step(model, cache, &first, 1), NC_OK) << nc_last_error();
        next[i] = first.token;
    }
    const uint8_t locate = 1;
    // Every step: sequence 0 is fed <at> (located, so its next input is the forced <boxes> with the box's embedding)
    // every fourth step; the others decode what they sampled.
    auto decode = [&](int steps, int64_t* calls) {
        for (int t = 0; t < steps; ++t) {
            const bool at = t % 4 == 0;
            if (at) next[0] = config.at_token_id;
            for (int i = 0; i < 3; ++i) {
                in[i] = nc_step_input{};
                in[i].seq = seqs[i];
                in[i].tokens = &next[i];
                in[i].n_tokens = 1;
                in[i].want = NC_STEP_SAMPLE;
            }
            in[0].locate_rows = at ? &locate : nullptr;
            in[0].boxes = boxes.data();
            in[0].at_hidden = at_hidden.data();
            const int64_t before = heap_calls.load();
            const nc_status st = nc_step(model, cache, in, 3);
            calls[t] = heap_calls.load() - before;
            if (st != NC_OK) {
                calls[t] = -1;
                return;
            }
            for (int i = 0; i < 3; ++i) next[i] = in[i].token % 30;  // stays clear of <at> unless fed on purpose
            if (at) next[0] = in[0].token;                            // the forced <boxes>
        }
    };
    int64_t warm[2] = {}, calls[40] = {};
    decode(2, warm);
    ASSERT_NE(warm[1], -1) << nc_last_error();
    decode(40, calls);
    for (int t = 0; t < 40; ++t) EXPECT_EQ(calls[t], 0) << "decode step " << t << " (" << nc_last_error() << ")";
    for (nc_seq* s : seqs) nc_seq_free(s);
    nc_cache_free(cache);
}

TEST_F(PlannedWork, ReserveAllocatesThePlanAndWorkGrowsNothing) { reserve_allocates_the_plan_and_work_grows_nothing(); }
TEST_F(PlannedWork, DecodeStepsAllocateNothing) { decode_steps_allocate_nothing(); }

// The same with the LLM's weights bf16 held compact (docs/ARCHITECTURE.md "Compact weights"): the plan counts their
// bytes and the kernels' expansion buffers, and decode steps still allocate nothing.
class PlannedCompactWork : public PlannedWork {
  protected:
    nc_llm_weights held_as() const override { return NC_LLM_WEIGHTS_COMPACT; }
};

TEST_F(PlannedCompactWork, ReserveAllocatesThePlanAndWorkGrowsNothing) {
    reserve_allocates_the_plan_and_work_grows_nothing();
}
TEST_F(PlannedCompactWork, DecodeStepsAllocateNothing) { decode_steps_allocate_nothing(); }

// The same with the LLM's weights quantized to int8 rows (docs/ARCHITECTURE.md "Int8 weights").
class PlannedInt8Work : public PlannedWork {
  protected:
    nc_llm_weights held_as() const override { return NC_LLM_WEIGHTS_INT8; }
};

TEST_F(PlannedInt8Work, ReserveAllocatesThePlanAndWorkGrowsNothing) { reserve_allocates_the_plan_and_work_grows_nothing(); }
TEST_F(PlannedInt8Work, DecodeStepsAllocateNothing) { decode_steps_allocate_nothing(); }

TEST_F(PlannedWork, WorkBeyondThePlanIsRefusedBeforeCompute) {
    nc_plan p{};
    p.struct_size = sizeof(p);
    ASSERT_EQ(nc_model_reserve(model, &request, &p), NC_OK) << nc_last_error();
    nc_cache_params cp{sizeof(cp), 16, p.kv_blocks * 2, NC_DTYPE_F16};  // a cache larger than planned: only the plan limits
    nc_cache* cache = nullptr;
    ASSERT_EQ(nc_cache_create(model, &cp, &cache), NC_OK) << nc_last_error();
    nc_sampling greedy{sizeof(nc_sampling), 0.0f, 0, 1.0f, 1.0f, 0};
    std::vector<nc_seq*> seqs(4);
    for (auto& s : seqs) ASSERT_EQ(nc_seq_create(cache, &greedy, &s), NC_OK);
    std::vector<int32_t> tokens(200, 3);
    uint64_t held[NC_STAGE_COUNT] = {};
    ASSERT_EQ(nc_model_workspace(model, held), NC_OK);

    struct Case {
        const char* name;
        std::vector<int32_t> rows;  // per sequence
        const char* message;
    };
    const Case cases[] = {
        {"rows", {81}, "rows in one step 81"},
        {"sequences", {1, 1, 1, 1}, "sequences in one step 4"},
        {"context", {97}, "positions of a sequence 97"},
    };
    for (const Case& c : cases) {
        std::vector<nc_step_input> in(c.rows.size());
        for (size_t i = 0; i < in.size(); ++i) {
            in[i].seq = seqs[i];
            in[i].tokens = tokens.data();
            in[i].n_tokens = c.rows[i];
            in[i].want = NC_STEP_SAMPLE;
        }
        if (std::string(c.name) == "context") {  // 60 positions already, then 37 more: within rows, past the context
            nc_step_input first{};
            first.seq = seqs[0];
            first.tokens = tokens.data();
            first.n_tokens = 60;
            first.want = NC_STEP_SAMPLE;
            ASSERT_EQ(nc_step(model, cache, &first, 1), NC_OK) << nc_last_error();
            in[0].n_tokens = 37;
        }
        const int64_t length = nc_seq_length(seqs[0]);
        EXPECT_EQ(nc_step(model, cache, in.data(), int32_t(in.size())), NC_ERR_OVER_PLAN) << c.name;
        EXPECT_NE(std::string(nc_last_error()).find(c.message), std::string::npos) << c.name << ": " << nc_last_error();
        EXPECT_EQ(nc_seq_length(seqs[0]), length) << c.name;
    }
    EXPECT_STREQ(nc_status_name(NC_ERR_OVER_PLAN), "NC_ERR_OVER_PLAN");

    const int S = dims.image_size, n = request.max_images + 1, H = config.hidden_size;
    std::vector<float> pixels(size_t(n) * 3 * S * S, 0.25f), projected(size_t(n) * dims.image_tokens * H);
    EXPECT_EQ(nc_encode_images(model, pixels.data(), n, projected.data(), nullptr), NC_ERR_OVER_PLAN);
    const int L = request.max_locations + 1;
    std::vector<float> embedding(size_t(dims.sam_embed_dim) * dims.sam_grid * dims.sam_grid, 0.1f);
    std::vector<float> hidden(L * H, 0.1f), boxes(L * 4, 0.3f), iou(L), embeds(L * H);
    EXPECT_EQ(nc_sam_decode_masks(model, embedding.data(), L, hidden.data(), boxes.data(), 8, 8, nullptr, iou.data(),
                                  nullptr, nullptr),
              NC_ERR_OVER_PLAN);
    EXPECT_EQ(nc_encode_boxes(model, boxes.data(), L, embeds.data()), NC_ERR_OVER_PLAN);
    EXPECT_NE(std::string(nc_last_error()).find("boxes per call"), std::string::npos) << nc_last_error();

    uint64_t after[NC_STAGE_COUNT] = {};
    ASSERT_EQ(nc_model_workspace(model, after), NC_OK);
    for (int st = 0; st < NC_STAGE_COUNT; ++st) EXPECT_EQ(after[st], held[st]) << nc_stage_name(st);
    for (nc_seq* s : seqs) nc_seq_free(s);
    nc_cache_free(cache);
}

TEST_F(Plan, StageNames) {
    EXPECT_STREQ(nc_stage_name(NC_STAGE_STEP), "step");
    EXPECT_STREQ(nc_stage_name(NC_STAGE_SAM_DECODER), "sam_decoder");
    EXPECT_STREQ(nc_stage_name(NC_STAGE_COUNT), "");
}

}  // namespace

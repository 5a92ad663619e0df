// KV cache, sequences, sampler, the thread pool's per-share state, huge-page arrays and the batched step through the C
// ABI, on the small fixture model.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/huge_array.h"
#include "fixtures.h"
#include "nextchat.h"
#include "runtime/kv_cache.h"
#include "runtime/sampler.h"
#include "runtime/sequence.h"
#include "runtime/thread_pool.h"

namespace {

// Re-coded weights' arrays: zeroed, on a cache line, and on a 2 MiB boundary (where huge pages can map them) once they
// span one.
TEST(HugeArray, ZeroedAndAligned) {
    for (size_t n : {size_t(1), size_t(100), size_t(3) << 20}) {
        const auto a = nc::huge_array<uint8_t>(n, "test");
        const uintptr_t at = reinterpret_cast<uintptr_t>(a.get());
        EXPECT_EQ(at % (n >= (size_t(1) << 21) ? size_t(1) << 21 : 64), 0u) << n;
        EXPECT_TRUE(std::all_of(a.get(), a.get() + n, [](uint8_t v) { return v == 0; })) << n;
    }
}

TEST(KVCache, AllocatesUntilFullThenFailsClearly) {
    const nc_config c = nc_test::small_config();
    auto cache = std::make_shared<nc::KVCache>(c, 4, 3, NC_DTYPE_F16);
    EXPECT_EQ(cache->free_blocks(), 3);
    const int32_t a = cache->allocate(), b = cache->allocate(), d = cache->allocate();
    EXPECT_EQ(cache->free_blocks(), 0);
    EXPECT_THROW(cache->allocate(), nc::Error);
    cache->release(b);
    EXPECT_EQ(cache->allocate(), b);
    (void)a;
    (void)d;
    EXPECT_THROW(nc::KVCache(c, 3, 4, NC_DTYPE_F32), nc::Error);  // not a power of two
}

TEST(Sequence, ForkSharesBlocksAndCopiesOnWrite) {
    const nc_config c = nc_test::small_config();
    auto cache = std::make_shared<nc::KVCache>(c, 4, 8, NC_DTYPE_F32);
    nc::Sequence parent(cache, {});
    const std::vector<int32_t> tokens = {1, 2, 3, 4, 5};
    parent.reserve(5);
    parent.advance(tokens.data(), 5);
    EXPECT_EQ(cache->free_blocks(), 6);
    {
        nc::Sequence child(parent);
        EXPECT_EQ(cache->free_blocks(), 6);  // shared
        EXPECT_EQ(cache->refcount(parent.blocks()[1]), 2);
        child.reserve(1);  // position 5 is in the shared, partially filled block 1
        EXPECT_NE(child.blocks()[1], parent.blocks()[1]);
        EXPECT_EQ(child.blocks()[0], parent.blocks()[0]);  // full blocks stay shared
        EXPECT_EQ(cache->free_blocks(), 5);
    }
    EXPECT_EQ(cache->free_blocks(), 6);
}

TEST(Sequence, PrefixForkSharesOnlyThePrefixBlocks) {
    const nc_config c = nc_test::small_config();
    auto cache = std::make_shared<nc::KVCache>(c, 4, 8, NC_DTYPE_F32);
    auto parent = std::make_unique<nc::Sequence>(cache, nc::SamplingParams{});
    const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    parent->reserve(10);
    parent->advance(tokens.data(), 10);
    EXPECT_EQ(cache->free_blocks(), 5);
    nc::Sequence child(*parent, 6, nc::SamplingParams{});
    EXPECT_EQ(child.length(), 6);
    EXPECT_EQ(child.history(), std::vector<int32_t>(tokens.begin(), tokens.begin() + 6));
    EXPECT_EQ(cache->refcount(parent->blocks()[1]), 2);
    EXPECT_EQ(cache->refcount(parent->blocks()[2]), 1) << "the third block is past the prefix";
    EXPECT_TRUE(child.pending_location().empty());
    parent.reset();
    EXPECT_EQ(cache->free_blocks(), 6) << "the parent's block past the prefix went back";
    child.reserve(3);  // positions 6..8: the second block is the child's alone now, written in place
    EXPECT_EQ(cache->free_blocks(), 5);
}

// share_local: one instance per loop share (the caller's share 0 included), owned by the pool — so a loop run from
// another OS thread finds the same caller's instance — and outside any loop each thread's own.
TEST(ThreadPool, ShareLocalIsPerShareAndOwnedByThePool) {
    struct Tag {
        int uses = 0;
    };
    nc::ThreadPool pool(3);
    auto instances = [&] {
        std::vector<const Tag*> seen(3, nullptr);
        pool.parallel_for(3, 1, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
                Tag& t = nc::share_local<Tag>();
                ++t.uses;
                seen[size_t(i)] = &t;
            }
        });
        return seen;
    };
    const std::vector<const Tag*> first = instances();
    EXPECT_EQ(std::set<const Tag*>(first.begin(), first.end()).size(), 3u) << "three shares, three instances";
    std::vector<const Tag*> from_other_thread;
    std::thread([&] { from_other_thread = instances(); }).join();
    EXPECT_EQ(from_other_thread, first) << "the caller's share is the pool's, whichever thread calls";
    EXPECT_EQ(first[0]->uses, 2);

    const Tag* outside = &nc::share_local<Tag>();
    const Tag* outside_other = nullptr;
    std::thread([&] { outside_other = &nc::share_local<Tag>(); }).join();
    EXPECT_NE(outside, outside_other) << "outside loops, each thread's own";
    EXPECT_EQ(std::count(first.begin(), first.end(), outside), 0);
}

TEST(Sampler, GreedyTakesTheLowestIdAmongTies) {
    nc::Sampler s({});
    const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
    EXPECT_EQ(s.next(logits.data(), 4, {}), 1);
}

TEST(Sampler, SplitmixStreamHasTheDocumentedValues) {
    // docs/SAMPLING.md known answers: seed 1234 draws u = 0.730666524540624, 0.5928898580149862, ...; with two
    // tokens of equal probability the first pick is token 1 iff u >= 0.5.
    nc::SamplingParams p;
    p.temperature = 1.0f;
    p.seed = 1234;
    nc::Sampler s(p);
    const std::vector<float> even = {0.0f, 0.0f};
    EXPECT_EQ(s.next(even.data(), 2, {}), 1);  // u = 0.7307
    EXPECT_EQ(s.next(even.data(), 2, {}), 1);  // u = 0.5929
    EXPECT_EQ(s.next(even.data(), 2, {}), 0);  // u = 0.2021
}

TEST(Sampler, RepetitionPenaltyFollowsHF) {
    nc::SamplingParams p;
    p.temperature = 0.01f;
    p.repetition_penalty = 4.0f;
    nc::Sampler s(p);
    const std::vector<float> logits = {3.0f, 2.0f, -1.0f};
    EXPECT_EQ(s.next(logits.data(), 3, {0}), 1);  // 3/4 < 2
}

TEST(Sampler, SamplesFollowTheDistributionAndAreReproducible) {
    const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), -50.0f};
    nc::SamplingParams p;
    p.temperature = 1.0f;
    p.seed = 42;
    nc::Sampler a(p), b(p);
    std::map<int32_t, int> counts;
    const int n = 60000;
    for (int i = 0; i < n; ++i) {
        const int32_t t = a.next(logits.data(), 4, {});
        EXPECT_EQ(t, b.next(logits.data(), 4, {}));
        ++counts[t];
    }
    EXPECT_NEAR(counts[0] / double(n), 1 / 6.0, 0.01);
    EXPECT_NEAR(counts[1] / double(n), 2 / 6.0, 0.01);
    EXPECT_NEAR(counts[2] / double(n), 3 / 6.0, 0.01);
    p.top_k = 1;
    nc::Sampler top1(p);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(top1.next(logits.data(), 4, {}), 2);
    p.top_k = 0;
    p.top_p = 0.5f;  // the top token alone has probability 0.5
    nc::Sampler nucleus(p);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(nucleus.next(logits.data(), 4, {}), 2);
}

TEST(Sampler, BadParametersAreRejected) {
    for (auto edit : std::vector<void (*)(nc::SamplingParams&)>{
             [](nc::SamplingParams& p) { p.temperature = -1; }, [](nc::SamplingParams& p) { p.top_k = -2; },
             [](nc::SamplingParams& p) { p.top_p = 0; }, [](nc::SamplingParams& p) { p.top_p = 1.5f; },
             [](nc::SamplingParams& p) { p.repetition_penalty = 0; },
             [](nc::SamplingParams& p) { p.temperature = NAN; }}) {
        nc::SamplingParams p;
        edit(p);
        EXPECT_THROW(nc::validate_sampling(p), nc::Error);
    }
}

// The fixture model behind the ABI, with helpers for steps.
class Step : public testing::Test {
  protected:
    void SetUp() override {
        files[0] = file.path().c_str();
        nc_model_params p = nc_test::cpu_params(config, files, 1, file.refs());
        p.threads = 2;
        ASSERT_EQ(nc_model_open(&p, &model), NC_OK) << nc_last_error();
        nc_cache_params cp{sizeof(nc_cache_params), 4, 64, NC_DTYPE_F32};
        ASSERT_EQ(nc_cache_create(model, &cp, &cache), NC_OK) << nc_last_error();
    }
    void TearDown() override {
        nc_cache_free(cache);
        nc_model_free(model);
    }

    nc_seq* new_seq() {
        nc_sampling s{sizeof(nc_sampling), 0.0f, 0, 1.0f, 1.0f, 0};
        nc_seq* seq = nullptr;
        EXPECT_EQ(nc_seq_create(cache, &s, &seq), NC_OK) << nc_last_error();
        return seq;
    }

    // Runs tokens through seq and returns the final hidden state of every row.
    std::vector<float> run(nc_seq* seq, const std::vector<int32_t>& tokens) {
        std::vector<float> hidden(tokens.size() * size_t(config.hidden_size), NAN);
        nc_step_input in{seq, tokens.data(), int32_t(tokens.size()), nullptr, nullptr, NC_STEP_ALL_HIDDEN, nullptr,
                         hidden.data(), -1};
        EXPECT_EQ(nc_step(model, cache, &in, 1), NC_OK) << nc_last_error();
        return hidden;
    }

    nc_config config = nc_test::small_config();
    nc_test::WeightFile file{config, "step"};
    const char* files[1] = {nullptr};
    nc_model* model = nullptr;
    nc_cache* cache = nullptr;
};

double max_abs_diff(const float* a, const float* b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
    return m;
}

TEST_F(Step, PrefillInChunksEqualsOnePrefill) {
    const std::vector<int32_t> tokens = {1, 5, 9, 13, 2, 30, 7, 7, 0};
    nc_seq* whole = new_seq();
    nc_seq* chunked = new_seq();
    const auto all = run(whole, tokens);
    std::vector<float> parts;
    for (auto [a, b] : std::vector<std::pair<size_t, size_t>>{{0, 3}, {3, 4}, {4, 9}}) {
        const auto h = run(chunked, std::vector<int32_t>(tokens.begin() + long(a), tokens.begin() + long(b)));
        parts.insert(parts.end(), h.begin(), h.end());
    }
    EXPECT_LT(max_abs_diff(all.data(), parts.data(), all.size()), 1e-4);
    EXPECT_EQ(nc_seq_length(chunked), 9);
    nc_seq_free(whole);
    nc_seq_free(chunked);
}

TEST_F(Step, BatchedSequencesEqualSeparateOnes) {
    nc_seq* a = new_seq();
    nc_seq* b = new_seq();
    nc_seq* a2 = new_seq();
    nc_seq* b2 = new_seq();
    const std::vector<int32_t> ta = {1, 2, 3}, tb = {4, 5, 6, 7, 8};
    const int H = config.hidden_size;
    std::vector<float> ha(3 * size_t(H)), hb(5 * size_t(H));
    nc_step_input in[2] = {{a, ta.data(), 3, nullptr, nullptr, NC_STEP_ALL_HIDDEN, nullptr, ha.data(), -1},
                           {b, tb.data(), 5, nullptr, nullptr, NC_STEP_ALL_HIDDEN, nullptr, hb.data(), -1}};
    ASSERT_EQ(nc_step(model, cache, in, 2), NC_OK) << nc_last_error();
    EXPECT_LT(max_abs_diff(ha.data(), run(a2, ta).data(), ha.size()), 1e-5);
    EXPECT_LT(max_abs_diff(hb.data(), run(b2, tb).data(), hb.size()), 1e-5);
    for (nc_seq* s : {a, b, a2, b2}) nc_seq_free(s);
}

// Sequences sampled in one batched step draw what each draws alone: the samplers run in parallel, each on its own
// sequence's logits, history and stream.
TEST_F(Step, SampledBatchDrawsWhatEachSequenceDrawsAlone) {
    const nc_sampling params[5] = {{sizeof(nc_sampling), 1.0f, 0, 1.0f, 1.0f, 11},
                                   {sizeof(nc_sampling), 0.7f, 5, 0.9f, 1.2f, 12},
                                   {sizeof(nc_sampling), 1.3f, 0, 0.8f, 1.0f, 13},
                                   {sizeof(nc_sampling), 0.0f, 0, 1.0f, 1.0f, 0},
                                   {sizeof(nc_sampling), 1.0f, 3, 1.0f, 1.0f, 14}};
    constexpr int kSeqs = 5, kSteps = 8;
    nc_seq* batched[kSeqs] = {};
    nc_seq* alone[kSeqs] = {};
    std::vector<int32_t> prompts[kSeqs], drawn_batched[kSeqs], drawn_alone[kSeqs];
    for (int i = 0; i < kSeqs; ++i) {
        ASSERT_EQ(nc_seq_create(cache, &params[i], &batched[i]), NC_OK) << nc_last_error();
        ASSERT_EQ(nc_seq_create(cache, &params[i], &alone[i]), NC_OK) << nc_last_error();
        for (int t = 0; t < i + 2; ++t) prompts[i].push_back(int32_t((7 * i + 3 * t) % 30));
    }
    for (int step = 0; step <= kSteps; ++step) {
        nc_step_input in[kSeqs] = {};
        for (int i = 0; i < kSeqs; ++i) {
            const std::vector<int32_t>& feed = step == 0 ? prompts[i] : drawn_batched[i];
            in[i].seq = batched[i];
            in[i].tokens = step == 0 ? feed.data() : &feed.back();
            in[i].n_tokens = step == 0 ? int32_t(feed.size()) : 1;
            in[i].want = NC_STEP_SAMPLE;
        }
        ASSERT_EQ(nc_step(model, cache, in, kSeqs), NC_OK) << nc_last_error();
        for (int i = 0; i < kSeqs; ++i) drawn_batched[i].push_back(in[i].token % 30);  // fed back: clear of <at>
        for (int i = 0; i < kSeqs; ++i) {
            const std::vector<int32_t>& feed = step == 0 ? prompts[i] : drawn_alone[i];
            nc_step_input one{};
            one.seq = alone[i];
            one.tokens = step == 0 ? feed.data() : &feed.back();
            one.n_tokens = step == 0 ? int32_t(feed.size()) : 1;
            one.want = NC_STEP_SAMPLE;
            ASSERT_EQ(nc_step(model, cache, &one, 1), NC_OK) << nc_last_error();
            drawn_alone[i].push_back(one.token % 30);
        }
    }
    for (int i = 0; i < kSeqs; ++i) EXPECT_EQ(drawn_batched[i], drawn_alone[i]) << "sequence " << i;
    EXPECT_NE(drawn_batched[0], drawn_batched[4]) << "different seeds and settings should draw differently";
    for (int i = 0; i < kSeqs; ++i) {
        nc_seq_free(batched[i]);
        nc_seq_free(alone[i]);
    }
}

TEST_F(Step, ForkContinuesIndependently) {
    nc_seq* parent = new_seq();
    run(parent, {3, 1, 4, 1, 5});
    nc_seq* child = nullptr;
    ASSERT_EQ(nc_seq_fork(parent, &child), NC_OK);
    const auto hc = run(child, {9});
    const auto hp = run(parent, {2});
    nc_seq* fresh = new_seq();
    const auto hf = run(fresh, {3, 1, 4, 1, 5, 9});
    EXPECT_LT(max_abs_diff(hc.data(), hf.data() + 5 * config.hidden_size, size_t(config.hidden_size)), 1e-4);
    EXPECT_GT(max_abs_diff(hc.data(), hp.data(), size_t(config.hidden_size)), 1e-3);
    for (nc_seq* s : {parent, child, fresh}) nc_seq_free(s);
}

// A request continuing a cached prefix computes what a fresh sequence prefilled with the same tokens computes, draws
// with its own sampling (not the parent's), and leaves the parent as it was.
TEST_F(Step, PrefixForkContinuesLikeAFreshSequence) {
    const nc_sampling sampled{sizeof(nc_sampling), 0.9f, 4, 0.95f, 1.3f, 21};
    nc_seq* parent = nullptr;
    ASSERT_EQ(nc_seq_create(cache, &sampled, &parent), NC_OK) << nc_last_error();
    run(parent, {3, 1, 4, 1, 5, 9, 2});  // 7 positions: blocks of 4 leave the prefix of 5 mid-block
    const nc_sampling other{sizeof(nc_sampling), 1.1f, 0, 0.9f, 1.2f, 33};
    nc_seq* child = nullptr;
    ASSERT_EQ(nc_seq_fork_prefix(parent, 5, &other, &child), NC_OK) << nc_last_error();
    EXPECT_EQ(nc_seq_length(child), 5);
    nc_seq* fresh = nullptr;
    ASSERT_EQ(nc_seq_create(cache, &other, &fresh), NC_OK) << nc_last_error();
    run(fresh, {3, 1, 4, 1, 5});
    const std::vector<int32_t> next = {6, 8, 11};
    const int H = config.hidden_size;
    std::vector<float> hc(3 * size_t(H)), hf(3 * size_t(H));
    nc_step_input in[2] = {{child, next.data(), 3, nullptr, nullptr, NC_STEP_ALL_HIDDEN | NC_STEP_SAMPLE, nullptr,
                            hc.data(), -1},
                           {fresh, next.data(), 3, nullptr, nullptr, NC_STEP_ALL_HIDDEN | NC_STEP_SAMPLE, nullptr,
                            hf.data(), -1}};
    ASSERT_EQ(nc_step(model, cache, in, 2), NC_OK) << nc_last_error();
    EXPECT_LT(max_abs_diff(hc.data(), hf.data(), hc.size()), 1e-5);
    EXPECT_EQ(in[0].token, in[1].token) << "the child samples with its own settings and seed, like the fresh one";
    EXPECT_EQ(nc_seq_length(parent), 7);
    const auto after = run(parent, {7});  // the parent's own 8th position still sees its 7, not the child's rows
    nc_seq* whole = new_seq();
    const auto want = run(whole, {3, 1, 4, 1, 5, 9, 2, 7});
    EXPECT_LT(max_abs_diff(after.data(), want.data() + 7 * H, size_t(H)), 1e-5);

    nc_seq* none = nullptr;
    EXPECT_EQ(nc_seq_fork_prefix(parent, 9, &other, &none), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("prefix of 9 positions from a sequence of 8"), std::string::npos)
        << nc_last_error();
    EXPECT_EQ(nc_seq_fork_prefix(parent, -1, &other, &none), NC_ERR_INVALID_ARGUMENT);
    const nc_sampling bad{sizeof(nc_sampling), -1.0f, 0, 1.0f, 1.0f, 0};
    EXPECT_EQ(nc_seq_fork_prefix(parent, 2, &bad, &none), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_seq_fork_prefix(parent, 2, nullptr, &none), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(none, nullptr);
    for (nc_seq* s : {parent, child, fresh, whole}) nc_seq_free(s);
}

// Only the rows marked in embed_rows take the given embedding; unmarked rows (NaN here) are never read.
TEST_F(Step, EmbeddingRowsOverrideOnlyTheirRows) {
    nc_seq* a = new_seq();
    nc_seq* b = new_seq();
    const int H = config.hidden_size;
    const std::vector<int32_t> t = {4, 9, 2};
    const auto plain = run(b, t);
    std::vector<float> embeds(3 * size_t(H), NAN);
    for (int i = 0; i < H; ++i) embeds[size_t(H + i)] = 0.01f * float(i % 7);
    const std::vector<uint8_t> rows = {0, 1, 0};
    std::vector<float> hidden(3 * size_t(H));
    nc_step_input in{a, t.data(), 3, embeds.data(), rows.data(), NC_STEP_ALL_HIDDEN, nullptr, hidden.data(), -1};
    ASSERT_EQ(nc_step(model, cache, &in, 1), NC_OK) << nc_last_error();
    for (float v : hidden) ASSERT_TRUE(std::isfinite(v));
    EXPECT_LT(max_abs_diff(hidden.data(), plain.data(), size_t(H)), 1e-6);  // row 0 precedes the change (causal)
    EXPECT_GT(max_abs_diff(hidden.data() + H, plain.data() + H, size_t(H)), 1e-3);
    nc_seq_free(a);
    nc_seq_free(b);
}

TEST_F(Step, BadInputsChangeNothing) {
    nc_seq* s = new_seq();
    run(s, {1, 2});
    const std::vector<int32_t> bad = {3, 37};  // 37 == vocab size
    nc_step_input in{s, bad.data(), 2, nullptr, nullptr, NC_STEP_SAMPLE, nullptr, nullptr, -1};
    EXPECT_EQ(nc_step(model, cache, &in, 1), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("outside the vocabulary"), std::string::npos) << nc_last_error();
    EXPECT_EQ(nc_seq_length(s), 2);
    const std::vector<int32_t> ok = {3};
    nc_step_input twice[2] = {{s, ok.data(), 1, nullptr, nullptr, 0, nullptr, nullptr, -1},
                              {s, ok.data(), 1, nullptr, nullptr, 0, nullptr, nullptr, -1}};
    EXPECT_EQ(nc_step(model, cache, twice, 2), NC_ERR_INVALID_ARGUMENT);
    nc_step_input no_buf{s, ok.data(), 1, nullptr, nullptr, NC_STEP_LOGITS, nullptr, nullptr, -1};
    EXPECT_EQ(nc_step(model, cache, &no_buf, 1), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_step(model, cache, nullptr, 1), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_seq_length(s), 2);
    nc_seq_free(s);
}

TEST_F(Step, FullCacheIsAnErrorAndLosesNothing) {
    nc_cache_params small{sizeof(nc_cache_params), 4, 2, NC_DTYPE_F32};
    nc_cache* tiny = nullptr;
    ASSERT_EQ(nc_cache_create(model, &small, &tiny), NC_OK);
    nc_sampling sp{sizeof(nc_sampling), 0.0f, 0, 1.0f, 1.0f, 0};
    nc_seq* s = nullptr;
    ASSERT_EQ(nc_seq_create(tiny, &sp, &s), NC_OK);
    const std::vector<int32_t> nine(9, 3);
    nc_step_input in{s, nine.data(), 9, nullptr, nullptr, 0, nullptr, nullptr, -1};
    EXPECT_EQ(nc_step(model, tiny, &in, 1), NC_ERR_OUT_OF_MEMORY);
    EXPECT_EQ(nc_seq_length(s), 0);
    nc_step_input fits{s, nine.data(), 8, nullptr, nullptr, NC_STEP_SAMPLE, nullptr, nullptr, -1};
    EXPECT_EQ(nc_step(model, tiny, &fits, 1), NC_OK) << nc_last_error();
    EXPECT_GE(fits.token, 0);
    nc_step_input wrong_cache{s, nine.data(), 1, nullptr, nullptr, 0, nullptr, nullptr, -1};
    EXPECT_EQ(nc_step(model, cache, &wrong_cache, 1), NC_ERR_INVALID_ARGUMENT);
    nc_cache_free(tiny);  // the sequence keeps the cache alive
    EXPECT_EQ(nc_seq_length(s), 8);
    nc_seq_free(s);
}

}  // namespace

// The reference ops: the obviously-right version of each op, accumulating in double. The oracle that the
// optimized CPU ops and the CUDA kernels are tested against; never used for speed.
#include <cmath>
#include <vector>

#include "ops/ops.h"

namespace nc::ops {

namespace {

class ReferenceOps final : public Ops {
  public:
    const char* name() const override { return "reference"; }

    void embedding(const Weight& table, const int32_t* ids, int64_t n, float* y) override {
        for (int64_t r = 0; r < n; ++r) {
            for (int64_t c = 0; c < table.cols; ++c) y[r * table.cols + c] = weight_at(table, ids[r] * table.cols + c);
        }
    }

    void rms_norm(const float* x, int64_t rows, const Weight& w, float eps, float* y) override {
        const int64_t dim = w.cols;
        for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t c = 0; c < dim; ++c) ss += double(x[r * dim + c]) * x[r * dim + c];
            const double inv = 1.0 / std::sqrt(ss / double(dim) + eps);
            for (int64_t c = 0; c < dim; ++c) y[r * dim + c] = float(x[r * dim + c] * inv * weight_at(w, c));
        }
    }

    void linear(const float* x, int64_t rows, const Weight& w, const Weight* bias, float* y) override {
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t o = 0; o < w.rows; ++o) {
                double acc = bias ? weight_at(*bias, o) : 0.0;
                for (int64_t k = 0; k < w.cols; ++k) acc += double(x[r * w.cols + k]) * weight_at(w, o * w.cols + k);
                y[r * w.rows + o] = float(acc);
            }
        }
    }

    void rope(float* x, int64_t rows, int32_t heads, int32_t head_dim, const int32_t* positions,
              float theta) override {
        const int32_t half = head_dim / 2;
        for (int64_t r = 0; r < rows; ++r) {
            for (int32_t h = 0; h < heads; ++h) {
                float* v = x + (r * heads + h) * head_dim;
                for (int32_t i = 0; i < half; ++i) {
                    const double angle = double(positions[r]) * std::pow(double(theta), -2.0 * i / head_dim);
                    const double c = std::cos(angle), s = std::sin(angle);
                    const double a = v[i], b = v[i + half];
                    v[i] = float(a * c - b * s);
                    v[i + half] = float(b * c + a * s);
                }
            }
        }
    }

    void kv_write(const KVSeqView& kv, int64_t start, int64_t rows, const float* k, const float* v) override {
        for (int64_t r = 0; r < rows; ++r) {
            for (int32_t h = 0; h < kv.kv_heads; ++h) {
                kv.store(kv.row(0, start + r, h), k + (r * kv.kv_heads + h) * kv.head_dim);
                kv.store(kv.row(1, start + r, h), v + (r * kv.kv_heads + h) * kv.head_dim);
            }
        }
    }

    void attention(const float* q, int64_t rows, int32_t heads, int64_t start, const KVSeqView& kv,
                   float* out) override {
        const int32_t d = kv.head_dim;
        const int32_t group = heads / kv.kv_heads;
        const double scale = 1.0 / std::sqrt(double(d));
        std::vector<float> row(size_t(d), 0.0f);
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t n = start + r + 1;  // causal: positions 0..start+r
            for (int32_t h = 0; h < heads; ++h) {
                const float* qv = q + (r * heads + h) * d;
                std::vector<double> scores(static_cast<size_t>(n));
                double mx = -INFINITY;
                for (int64_t p = 0; p < n; ++p) {
                    kv.load(kv.row(0, p, h / group), row.data());
                    double dot = 0;
                    for (int32_t i = 0; i < d; ++i) dot += double(qv[i]) * row[size_t(i)];
                    scores[size_t(p)] = dot * scale;
                    mx = std::max(mx, scores[size_t(p)]);
                }
                double sum = 0;
                for (double& s : scores) sum += (s = std::exp(s - mx));
                std::vector<double> acc(size_t(d), 0.0);
                for (int64_t p = 0; p < n; ++p) {
                    kv.load(kv.row(1, p, h / group), row.data());
                    for (int32_t i = 0; i < d; ++i) acc[size_t(i)] += scores[size_t(p)] * row[size_t(i)];
                }
                float* o = out + (r * heads + h) * d;
                for (int32_t i = 0; i < d; ++i) o[i] = float(acc[size_t(i)] / sum);
            }
        }
    }

    void silu_mul(float* gate, const float* up, int64_t n) override {
        for (int64_t i = 0; i < n; ++i) {
            const double g = gate[i];
            gate[i] = float(g / (1.0 + std::exp(-g)) * up[i]);
        }
    }

    void add(float* x, const float* y, int64_t n) override {
        for (int64_t i = 0; i < n; ++i) x[i] += y[i];
    }

    void relu(float* x, int64_t n) override {
        for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }
};

}  // namespace

std::unique_ptr<Ops> make_reference_ops() { return std::make_unique<ReferenceOps>(); }

}  // namespace nc::ops

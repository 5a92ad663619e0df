// The reference ops: the obviously-right version of each op, accumulating in double. The oracle that the
// optimized CPU ops and the CUDA kernels are tested against; never used for speed.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/ops.h"
#include "ops/reference_sam.h"

namespace nc::ops {

namespace {

class ReferenceOps final : public Ops {
  public:
    const char* name() const override { return "reference"; }

    void parallel(int64_t n, LoopBody body) override { body(0, n); }

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

    void linears(const float* x, int64_t rows, const LinearOut* outs, int32_t n) override {
        for (int32_t i = 0; i < n; ++i) linear(x, rows, *outs[i].w, outs[i].bias, outs[i].y);
    }

    void rope(float* x, int64_t rows, int32_t heads, int32_t head_dim, const float* cos, const float* sin) override {
        const int32_t half = head_dim / 2;
        for (int64_t r = 0; r < rows; ++r) {
            for (int32_t h = 0; h < heads; ++h) {
                float* v = x + (r * heads + h) * head_dim;
                for (int32_t i = 0; i < half; ++i) {
                    const double c = cos[r * half + i], s = sin[r * half + i];
                    const double a = v[i], b = v[i + half];
                    v[i] = float(a * c - b * s);
                    v[i + half] = float(b * c + a * s);
                }
            }
        }
    }

    void kv_write(const KVSeqView& kv, int64_t start, int64_t rows, const float* k, const float* v) override {
        kv.write(start, rows, k, v);
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

    void add_rows(const float* x, const float* y, int64_t rows, int64_t y_rows, int64_t width, float* out) override {
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < width; ++c) out[r * width + c] = x[r * width + c] + y[(r % y_rows) * width + c];
        }
    }

    void relu(float* x, int64_t n) override {
        for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }

    void layer_norm(const float* x, int64_t rows, const Weight& w, const Weight& b, float eps, float* y) override {
        const int64_t dim = w.cols;
        for (int64_t r = 0; r < rows; ++r) {
            const float* xr = x + r * dim;
            double mean = 0, var = 0;
            for (int64_t c = 0; c < dim; ++c) mean += xr[c];
            mean /= double(dim);
            for (int64_t c = 0; c < dim; ++c) var += (xr[c] - mean) * (xr[c] - mean);
            const double inv = 1.0 / std::sqrt(var / double(dim) + eps);
            for (int64_t c = 0; c < dim; ++c) {
                y[r * dim + c] = float((xr[c] - mean) * inv * weight_at(w, c) + weight_at(b, c));
            }
        }
    }

    void gelu(float* x, int64_t n) override {
        for (int64_t i = 0; i < n; ++i) {
            const double v = x[i];
            x[i] = float(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
        }
    }

    void quick_gelu(float* x, int64_t n) override {
        for (int64_t i = 0; i < n; ++i) {
            const double v = x[i];
            x[i] = float(v / (1.0 + std::exp(-1.702 * v)));
        }
    }

    void patches(const float* x, int64_t n, int32_t channels, int32_t height, int32_t width, int32_t patch,
                 float* y) override {
        const int64_t gh = height / patch, gw = width / patch;
        for (int64_t img = 0; img < n; ++img) {
            for (int64_t py = 0; py < gh; ++py) {
                for (int64_t px = 0; px < gw; ++px) {
                    float* row = y + ((img * gh + py) * gw + px) * channels * patch * patch;
                    for (int64_t c = 0; c < channels; ++c) {
                        for (int64_t i = 0; i < patch; ++i) {
                            for (int64_t j = 0; j < patch; ++j) {
                                const int64_t y0 = py * patch + i, x0 = px * patch + j;
                                row[(c * patch + i) * patch + j] = x[((img * channels + c) * height + y0) * width + x0];
                            }
                        }
                    }
                }
            }
        }
    }

    void attention(const float* q, const float* k, const float* v, int64_t batch, int64_t q_rows, int64_t kv_rows,
                   int32_t heads, int32_t head_dim, float scale, const ScoreBias* bias, float* out) override {
        const int64_t d = head_dim, stride = int64_t(heads) * d;
        std::vector<double> scores(size_t(kv_rows), 0.0);
        std::vector<float> extra(size_t(kv_rows), 0.0f);
        for (int64_t b = 0; b < batch; ++b) {
            const float* kb = k + b * kv_rows * stride;
            const float* vb = v + b * kv_rows * stride;
            for (int32_t h = 0; h < heads; ++h) {
                for (int64_t i = 0; i < q_rows; ++i) {
                    const float* qv = q + (b * q_rows + i) * stride + h * d;
                    std::fill(extra.begin(), extra.end(), 0.0f);
                    if (bias) bias->add(b, h, i, extra.data(), kv_rows);
                    double mx = -INFINITY;
                    for (int64_t j = 0; j < kv_rows; ++j) {
                        double dot = 0;
                        for (int64_t c = 0; c < d; ++c) dot += double(qv[c]) * kb[j * stride + h * d + c];
                        scores[size_t(j)] = dot * scale + extra[size_t(j)];
                        mx = std::max(mx, scores[size_t(j)]);
                    }
                    double sum = 0;
                    for (double& s : scores) sum += (s = std::exp(s - mx));
                    float* o = out + (b * q_rows + i) * stride + h * d;
                    for (int64_t c = 0; c < d; ++c) {
                        double acc = 0;
                        for (int64_t j = 0; j < kv_rows; ++j) acc += scores[size_t(j)] * vb[j * stride + h * d + c];
                        o[c] = float(acc / sum);
                    }
                }
            }
        }
    }

    // SAM (ops/reference_sam.cpp).
    std::unique_ptr<ScoreBias> rel_pos_bias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h,
                                            int64_t grid_w, const Weight& rel_h, const Weight& rel_w) override {
        return reference_sam::rel_pos_bias(q, heads, head_dim, grid_h, grid_w, rel_h, rel_w);
    }
    void window_partition(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                          const float* fill, float* y) override {
        reference_sam::window_partition(x, height, width, channels, window, fill, y);
    }
    void window_merge(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                      float* y) override {
        reference_sam::window_merge(x, height, width, channels, window, y);
    }
    void conv2d(const float* x, int64_t n, int64_t height, int64_t width, const Weight& w, const Weight* bias,
                int32_t kernel, float* y) override {
        reference_sam::conv2d(x, n, height, width, w, bias, kernel, y);
    }
    void resize_bilinear(const float* x, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                         int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* y) override {
        reference_sam::resize_bilinear(x, planes, in_h, in_w, out_h, out_w, row0, rows, col0, cols, y);
    }
    void transpose(const float* x, int64_t batch, int64_t rows, int64_t cols, float* y) override {
        reference_sam::transpose(x, batch, rows, cols, y);
    }
    void softmax(float* x, int64_t rows, int64_t cols) override { reference_sam::softmax(x, rows, cols); }
};

}  // namespace

std::unique_ptr<Ops> make_reference_ops() { return std::make_unique<ReferenceOps>(); }

}  // namespace nc::ops

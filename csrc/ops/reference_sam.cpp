#include "ops/reference_sam.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace nc::ops::reference_sam {

namespace {

class RelPosBias final : public ScoreBias {
  public:
    RelPosBias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h, int64_t grid_w, const Weight& rel_h,
               const Weight& rel_w)
        : q_(q), heads_(heads), d_(head_dim), gh_(grid_h), gw_(grid_w), rel_h_(rel_h), rel_w_(rel_w) {}

    void add(int64_t batch, int32_t head, int64_t query, float* scores, int64_t kv_rows) const override {
        const float* q = q_ + ((batch * gh_ * gw_ + query) * heads_ + head) * d_;
        const int64_t qh = query / gw_, qw = query % gw_;
        for (int64_t j = 0; j < kv_rows; ++j) {
            const int64_t kh = j / gw_, kw = j % gw_;
            double dh = 0, dw = 0;
            for (int32_t c = 0; c < d_; ++c) {
                dh += double(q[c]) * weight_at(rel_h_, (qh - kh + gh_ - 1) * d_ + c);
                dw += double(q[c]) * weight_at(rel_w_, (qw - kw + gw_ - 1) * d_ + c);
            }
            scores[j] = float(double(scores[j]) + dh + dw);
        }
    }

  private:
    const float* q_;
    int32_t heads_, d_;
    int64_t gh_, gw_;
    Weight rel_h_, rel_w_;
};

int64_t windows_along(int64_t size, int32_t window) { return (size + window - 1) / window; }

}  // namespace

std::unique_ptr<ScoreBias> rel_pos_bias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h,
                                        int64_t grid_w, const Weight& rel_h, const Weight& rel_w) {
    return std::make_unique<RelPosBias>(q, heads, head_dim, grid_h, grid_w, rel_h, rel_w);
}

void window_partition(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                      const float* fill, float* y) {
    const int64_t nw = windows_along(width, window), nh = windows_along(height, window);
    for (int64_t wy = 0; wy < nh; ++wy) {
        for (int64_t wx = 0; wx < nw; ++wx) {
            for (int64_t i = 0; i < window; ++i) {
                for (int64_t j = 0; j < window; ++j) {
                    const int64_t py = wy * window + i, px = wx * window + j;
                    float* dst = y + (((wy * nw + wx) * window + i) * window + j) * channels;
                    for (int64_t c = 0; c < channels; ++c) {
                        if (py < height && px < width) {
                            dst[c] = x[(py * width + px) * channels + c];
                        } else {
                            dst[c] = fill ? fill[c] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}

void window_merge(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window, float* y) {
    const int64_t nw = windows_along(width, window);
    for (int64_t py = 0; py < height; ++py) {
        for (int64_t px = 0; px < width; ++px) {
            const int64_t win = (py / window) * nw + px / window, token = (py % window) * window + px % window;
            for (int64_t c = 0; c < channels; ++c) {
                y[(py * width + px) * channels + c] = x[(win * window * window + token) * channels + c];
            }
        }
    }
}

void conv2d(const float* x, int64_t n, int64_t height, int64_t width, const Weight& w, const Weight* bias,
            int32_t kernel, float* y) {
    const int64_t out = w.rows, in = w.cols / (int64_t(kernel) * kernel), pad = (kernel - 1) / 2;
    for (int64_t img = 0; img < n; ++img) {
        for (int64_t py = 0; py < height; ++py) {
            for (int64_t px = 0; px < width; ++px) {
                for (int64_t o = 0; o < out; ++o) {
                    double acc = bias ? weight_at(*bias, o) : 0.0;
                    for (int64_t c = 0; c < in; ++c) {
                        for (int64_t i = 0; i < kernel; ++i) {
                            for (int64_t j = 0; j < kernel; ++j) {
                                const int64_t sy = py + i - pad, sx = px + j - pad;
                                if (sy < 0 || sy >= height || sx < 0 || sx >= width) continue;
                                acc += double(x[((img * height + sy) * width + sx) * in + c]) *
                                       weight_at(w, ((o * in + c) * kernel + i) * kernel + j);
                            }
                        }
                    }
                    y[((img * height + py) * width + px) * out + o] = float(acc);
                }
            }
        }
    }
}

void resize_bilinear(const float* x, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                     int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* y) {
    // Source coordinate, lower neighbour, upper neighbour and the upper one's weight, along one axis.
    struct Tap {
        int64_t lo, hi;
        double t;
    };
    auto tap = [](int64_t dst, int64_t in, int64_t out) {
        const double src = std::max(double(in) / double(out) * (double(dst) + 0.5) - 0.5, 0.0);
        const int64_t lo = std::min(int64_t(src), in - 1);
        return Tap{lo, std::min(lo + 1, in - 1), src - double(lo)};
    };
    for (int64_t p = 0; p < planes; ++p) {
        const float* plane = x + p * in_h * in_w;
        for (int64_t r = 0; r < rows; ++r) {
            const Tap ty = tap(row0 + r, in_h, out_h);
            for (int64_t c = 0; c < cols; ++c) {
                const Tap tx = tap(col0 + c, in_w, out_w);
                const double top = (1 - tx.t) * plane[ty.lo * in_w + tx.lo] + tx.t * plane[ty.lo * in_w + tx.hi];
                const double bottom = (1 - tx.t) * plane[ty.hi * in_w + tx.lo] + tx.t * plane[ty.hi * in_w + tx.hi];
                y[(p * rows + r) * cols + c] = float((1 - ty.t) * top + ty.t * bottom);
            }
        }
    }
}

void transpose(const float* x, int64_t batch, int64_t rows, int64_t cols, float* y) {
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) y[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
        }
    }
}

void softmax(float* x, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
        float* row = x + r * cols;
        const double mx = *std::max_element(row, row + cols);
        double sum = 0;
        for (int64_t c = 0; c < cols; ++c) sum += std::exp(double(row[c]) - mx);
        for (int64_t c = 0; c < cols; ++c) row[c] = float(std::exp(double(row[c]) - mx) / sum);
    }
}

}  // namespace nc::ops::reference_sam

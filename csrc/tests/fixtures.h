// Shared test fixtures: small configs and a weight file written from the spec through the C ABI.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nextchat.h"
#include "ops/convert.h"

namespace nc_test {

// Every dimension small and some of them odd, so no size is confused with another.
inline nc_config small_config() {
    nc_config c{};
    EXPECT_EQ(nc_config_default_7b(&c), NC_OK);
    c.vocab_size = 37;
    c.at_token_id = 35;
    c.boxes_token_id = 36;
    c.hidden_size = 24;
    c.intermediate_size = 40;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 3;
    c.num_key_value_heads = 3;
    c.vision_hidden_size = 12;
    c.vision_intermediate_size = 20;
    c.vision_num_hidden_layers = 3;
    c.vision_num_attention_heads = 2;
    c.vision_image_size = 28;
    c.vision_patch_size = 14;
    c.loc_hidden_size = 10;
    c.sam_image_size = 64;
    c.sam_patch_size = 16;
    c.sam_encoder_embed_dim = 16;
    c.sam_encoder_depth = 3;
    c.sam_encoder_num_heads = 2;
    c.sam_encoder_mlp_dim = 24;
    c.sam_window_size = 2;
    c.sam_num_global_attn = 1;
    c.sam_global_attn_indexes[0] = 1;
    c.sam_prompt_embed_dim = 32;
    c.sam_decoder_mlp_dim = 48;
    c.sam_decoder_num_heads = 2;
    c.sam_iou_head_hidden_dim = 16;
    return c;
}

struct SpecEntry {
    std::string name;
    std::vector<int64_t> shape;
    nc_component component;
    nc_tensor_role role;
    nc_tensor_kind kind;
    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
};

inline std::vector<SpecEntry> read_spec(const nc_config& config) {
    nc_spec* spec = nullptr;
    EXPECT_EQ(nc_spec_create(&config, &spec), NC_OK) << nc_last_error();
    std::vector<SpecEntry> out;
    for (int64_t i = 0; i < nc_spec_count(spec); ++i) {
        nc_tensor_spec t{};
        EXPECT_EQ(nc_spec_get(spec, i, &t), NC_OK);
        out.push_back({t.name, std::vector<int64_t>(t.shape, t.shape + t.ndim), nc_component(t.component),
                       nc_tensor_role(t.role), nc_tensor_kind(t.kind)});
    }
    nc_spec_free(spec);
    return out;
}

// A temporary weight file holding every spec tensor as F32 random values, and refs pointing into it.
class WeightFile {
  public:
    // Every tensor random in [-1, 1), stored as F32 or BF16.
    WeightFile(const nc_config& config, const std::string& tag, nc_dtype dtype = NC_DTYPE_F32) {
        path_ = (std::filesystem::temp_directory_path() /
                 ("nextchat_test_" + tag + "_" + std::to_string(::getpid()) + ".bin"))
                    .string();
        std::ofstream out(path_, std::ios::binary);
        const std::string header = "some header bytes";  // tensors need not start at offset 0
        out.write(header.data(), std::streamsize(header.size()));
        uint64_t offset = header.size();
        std::mt19937 rng(1234);
        std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
        entries_ = read_spec(config);
        for (const SpecEntry& e : entries_) {
            std::vector<float> values(size_t(e.numel()));
            for (float& v : values) v = dist(rng);
            const uint64_t esize = dtype == NC_DTYPE_BF16 ? 2 : 4;
            if (dtype == NC_DTYPE_BF16) {
                std::vector<uint16_t> bits(values.size());
                for (size_t i = 0; i < values.size(); ++i) bits[i] = nc::ops::f32_to_bf16(values[i]);
                out.write(reinterpret_cast<const char*>(bits.data()), std::streamsize(bits.size() * 2));
            } else {
                out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * sizeof(float)));
            }
            nc_tensor_ref ref{};
            ref.dtype = dtype;
            ref.ndim = int32_t(e.shape.size());
            for (size_t d = 0; d < e.shape.size(); ++d) ref.shape[d] = e.shape[d];
            ref.file_index = 0;
            ref.offset = offset;
            ref.nbytes = uint64_t(e.numel()) * esize;
            offset += ref.nbytes;
            refs_.push_back(ref);
        }
        size_ = offset;
        relink_names();
    }
    ~WeightFile() { std::remove(path_.c_str()); }
    WeightFile(const WeightFile&) = delete;
    WeightFile& operator=(const WeightFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t size() const { return size_; }
    std::vector<nc_tensor_ref>& refs() { return refs_; }
    const std::vector<SpecEntry>& entries() const { return entries_; }

    // Index of the tensor named `name`; fails the test when absent.
    size_t index_of(const std::string& name) const {
        for (size_t i = 0; i < entries_.size(); ++i) {
            if (entries_[i].name == name) return i;
        }
        ADD_FAILURE() << "no tensor " << name;
        return 0;
    }

    void erase(const std::string& name) {
        const size_t i = index_of(name);
        refs_.erase(refs_.begin() + std::ptrdiff_t(i));
        entries_.erase(entries_.begin() + std::ptrdiff_t(i));
        relink_names();
    }

  private:
    void relink_names() {
        for (size_t i = 0; i < refs_.size(); ++i) refs_[i].name = entries_[i].name.c_str();
    }

    std::string path_;
    uint64_t size_ = 0;
    std::vector<SpecEntry> entries_;
    std::vector<nc_tensor_ref> refs_;
};

inline nc_model_params cpu_params(const nc_config& config, const char* const* files, int32_t n_files,
                                  const std::vector<nc_tensor_ref>& refs) {
    nc_model_params p{};
    p.struct_size = sizeof(p);
    p.config = &config;
    p.files = files;
    p.n_files = n_files;
    p.tensors = refs.data();
    p.n_tensors = int64_t(refs.size());
    p.backend = NC_BACKEND_CPU;
    return p;
}

}  // namespace nc_test

#include "model/weights.h"

#include <optional>
#include <string>
#include <unordered_set>

#include "core/dtype.h"
#include "core/error.h"
#include "model/spec.h"

namespace nc {

namespace {

// Collects every problem of a load so a user fixes a broken checkpoint in one round, not one tensor at a time.
class Problems {
  public:
    void add(nc_status status, std::string message) {
        if (count_ == 0) first_ = status;
        if (count_ < kShown) text_ += "\n  " + message;
        ++count_;
    }
    void throw_if_any() const {
        if (count_ == 0) return;
        std::string head = std::to_string(count_) + (count_ == 1 ? " problem" : " problems") + " in model weights:";
        std::string tail = count_ > kShown ? "\n  ... and " + std::to_string(count_ - kShown) + " more" : "";
        fail(first_, head + text_ + tail);
    }

  private:
    static constexpr int kShown = 20;
    int count_ = 0;
    nc_status first_ = NC_OK;
    std::string text_;
};

// A tensor reference from the caller, checked for internal consistency and against its file.
std::optional<WeightView> check_ref(const nc_tensor_ref& ref, const std::vector<MappedFile>& files,
                                    Problems& problems) {
    const std::string name = ref.name;
    if (!dtype_valid(ref.dtype)) {
        problems.add(NC_ERR_DTYPE, name + ": unsupported dtype code " + std::to_string(ref.dtype) +
                                       " (supported: F32, F16, BF16)");
        return std::nullopt;
    }
    if (ref.ndim < 0 || ref.ndim > NC_MAX_DIMS) {
        problems.add(NC_ERR_FORMAT, name + ": " + std::to_string(ref.ndim) + " dimensions (at most " +
                                        std::to_string(NC_MAX_DIMS) + " supported)");
        return std::nullopt;
    }
    const auto dtype = nc_dtype(ref.dtype);
    Shape shape(ref.shape, ref.shape + ref.ndim);
    const auto numel = checked_numel(shape);
    const uint64_t elem = dtype_size(dtype);
    if (!numel || uint64_t(*numel) > UINT64_MAX / elem || uint64_t(*numel) * elem != ref.nbytes) {
        problems.add(NC_ERR_FORMAT, name + ": shape " + format_shape(shape) + " of " + dtype_name(dtype) +
                                        " does not match its byte size " + std::to_string(ref.nbytes));
        return std::nullopt;
    }
    if (ref.file_index < 0 || std::size_t(ref.file_index) >= files.size()) {
        problems.add(NC_ERR_FORMAT, name + ": file index " + std::to_string(ref.file_index) + " out of range");
        return std::nullopt;
    }
    const MappedFile& file = files[std::size_t(ref.file_index)];
    if (ref.offset > file.size() || ref.nbytes > file.size() - ref.offset) {
        problems.add(NC_ERR_FORMAT, name + ": bytes [" + std::to_string(ref.offset) + ", +" +
                                        std::to_string(ref.nbytes) + ") lie outside " + file.path() + " (" +
                                        std::to_string(file.size()) + " bytes; truncated file?)");
        return std::nullopt;
    }
    return WeightView{dtype, std::move(shape), file.data() + ref.offset, ref.nbytes, NC_COMPONENT_LLM,
                      NC_TENSOR_REQUIRED};
}

}  // namespace

WeightStore::WeightStore(const nc_config& config, const std::vector<std::string>& files,
                         const nc_tensor_ref* tensors, int64_t n_tensors) {
    files_.reserve(files.size());
    for (const std::string& path : files) files_.emplace_back(path);

    Problems problems;
    std::unordered_map<std::string, WeightView> present;
    std::unordered_set<std::string> given;  // malformed ones included: they are reported once, not also as missing
    for (int64_t i = 0; i < n_tensors; ++i) {
        const nc_tensor_ref& ref = tensors[i];
        if (ref.name == nullptr) {
            problems.add(NC_ERR_INVALID_ARGUMENT, "tensor #" + std::to_string(i) + " has no name");
            continue;
        }
        given.insert(ref.name);
        auto view = check_ref(ref, files_, problems);
        if (view && !present.emplace(ref.name, std::move(*view)).second) {
            problems.add(NC_ERR_FORMAT, std::string(ref.name) + ": given more than once");
        }
    }

    for (const TensorSpec& spec : build_spec(config)) {
        auto it = present.find(spec.name);
        if (it == present.end()) {
            if (spec.role == NC_TENSOR_REQUIRED && given.count(spec.name) == 0) {
                problems.add(NC_ERR_MISSING, spec.name + ": missing (expected shape " + format_shape(spec.shape) + ")");
            }
            continue;
        }
        WeightView& view = it->second;
        if (view.shape != spec.shape) {
            // An unused tensor of another shape still means the checkpoint is not the model the config describes.
            problems.add(NC_ERR_SHAPE, spec.name + ": shape " + format_shape(view.shape) + ", config implies " +
                                           format_shape(spec.shape));
            continue;
        }
        view.component = spec.component;
        view.role = spec.role;
        weights_.emplace(spec.name, std::move(view));
    }
    problems.throw_if_any();
}

const WeightView& WeightStore::get(std::string_view name) const {
    auto it = weights_.find(std::string(name));
    if (it == weights_.end() || it->second.role != NC_TENSOR_REQUIRED) {
        fail(NC_ERR_MISSING, "no required tensor named " + std::string(name));
    }
    return it->second;
}

void WeightStore::byte_counts(std::array<uint64_t, NC_COMPONENT_COUNT>& required, uint64_t& unused) const {
    required.fill(0);
    unused = 0;
    for (const auto& [name, view] : weights_) {
        if (view.role == NC_TENSOR_REQUIRED) {
            required[view.component] += view.nbytes;
        } else {
            unused += view.nbytes;
        }
    }
}

uint64_t WeightStore::mapped_bytes() const {
    uint64_t total = 0;
    for (const MappedFile& f : files_) total += f.size();
    return total;
}

}  // namespace nc

// Storage dtypes of weights and caches (nc_dtype) and their properties.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nextchat.h"

namespace nc {

inline bool dtype_valid(int32_t dtype) {
    return dtype == NC_DTYPE_F32 || dtype == NC_DTYPE_F16 || dtype == NC_DTYPE_BF16;
}

inline std::size_t dtype_size(nc_dtype dtype) { return dtype == NC_DTYPE_F32 ? 4 : 2; }

inline const char* dtype_name(nc_dtype dtype) {
    switch (dtype) {
        case NC_DTYPE_F32: return "F32";
        case NC_DTYPE_F16: return "F16";
        case NC_DTYPE_BF16: return "BF16";
    }
    return "?";
}

}  // namespace nc

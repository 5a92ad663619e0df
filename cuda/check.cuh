// Error checks after every CUDA runtime call and kernel launch: failures become nc::Error, never an abort.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace nc::cuda {

inline void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        fail(NC_ERR_INTERNAL, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
    }
}

// After a kernel launch: reports launch-configuration errors at once.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

}  // namespace nc::cuda

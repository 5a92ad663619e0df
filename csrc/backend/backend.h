// Which compute backends this build has and how many devices each can use now.
#pragma once

#include <cstdint>

#include "nextchat.h"

namespace nc {

bool backend_compiled(int32_t backend);  // an nc_backend value; false for unknown codes

// Devices usable now: 1 for CPU, the CUDA runtime's count for CUDA (0 without a driver).
// Throws NC_ERR_UNSUPPORTED for a backend not compiled in.
int backend_device_count(int32_t backend);

}  // namespace nc

// CUDA devices as the runtime sees them. Host-side API: callable from C++ translation units.
#pragma once

namespace nc::cuda {

// Devices visible to the CUDA runtime; 0 when there is no driver or no device (not an error: a CPU-only
// machine with a CUDA build is normal). Throws nc::Error(NC_ERR_INTERNAL) for any other runtime failure.
int device_count();

}  // namespace nc::cuda

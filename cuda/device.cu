#include "device.cuh"

#include "check.cuh"

namespace nc::cuda {

int device_count() {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
        cudaGetLastError();  // clear the sticky-free error so later calls start clean
        return 0;
    }
    check(err, "cudaGetDeviceCount");
    return count;
}

}  // namespace nc::cuda

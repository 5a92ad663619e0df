#include "backend/backend.h"

#include "core/error.h"

#ifdef NEXTCHAT_HAVE_CUDA
#include "device.cuh"
#endif

namespace nc {

bool backend_compiled(int32_t backend) {
    switch (backend) {
        case NC_BACKEND_CPU: return true;
        case NC_BACKEND_CUDA:
#ifdef NEXTCHAT_HAVE_CUDA
            return true;
#else
            return false;
#endif
    }
    return false;
}

int backend_device_count(int32_t backend) {
    if (!backend_compiled(backend)) {
        fail(NC_ERR_UNSUPPORTED, backend == NC_BACKEND_CUDA
                                     ? "this library was built without CUDA (configure with -DNEXTCHAT_CUDA=ON)"
                                     : "unknown backend code " + std::to_string(backend));
    }
#ifdef NEXTCHAT_HAVE_CUDA
    if (backend == NC_BACKEND_CUDA) return cuda::device_count();
#endif
    return 1;
}

}  // namespace nc

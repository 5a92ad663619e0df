#include "core/huge_array.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"

namespace nc {

void* huge_zeroed(std::size_t bytes, const char* what) {
    constexpr std::size_t kHuge = std::size_t(1) << 21, kLine = 64;
    const std::size_t align = bytes >= kHuge ? kHuge : kLine;
    void* p = nullptr;
    if (posix_memalign(&p, align, std::max<std::size_t>(bytes, 1)) != 0) {
        fail(NC_ERR_OUT_OF_MEMORY, std::string("cannot allocate ") + std::to_string(bytes) + " bytes for " + what);
    }
    // Advised before the first touch, so that the zeroing below faults the range in as huge pages.
    if (align == kHuge) madvise(p, bytes, MADV_HUGEPAGE);
    std::memset(p, 0, bytes);
    return p;
}

}  // namespace nc

// Model-owned working memory (docs/ARCHITECTURE.md "Memory plan"). Every component states the elements of each
// of its buffers for given dimensions in one function (its Workspace struct); its forward takes the sizes from
// there, the plan adds them up, and reserve allocates them once, so no size is computed twice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace nc {

// buf holding at least n elements. Grows only when the model has no plan (reserve allocated the planned size,
// and validation refuses over-plan work before compute), so growth under a plan is an internal error.
template <class T>
T* grown(std::vector<T>& buf, int64_t n, bool planned = false) {
    if (buf.size() < size_t(n)) {
        if (planned) fail(NC_ERR_INTERNAL, "a workspace buffer would grow past its plan (" + std::to_string(n) + " elements)");
        buf.resize(size_t(n));
    }
    return buf.data();
}

// Exactly n elements, allocated once from empty (so the capacity is n, not a growth step's).
template <class T>
void reserve_exact(std::vector<T>& buf, int64_t n) {
    std::vector<T>().swap(buf);
    buf.resize(size_t(n));
}

template <class T>
uint64_t held_bytes(const std::vector<T>& buf) {
    return uint64_t(buf.capacity()) * sizeof(T);
}

}  // namespace nc

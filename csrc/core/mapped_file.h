// A read-only memory mapping of a whole file, released on destruction (weights are never copied: §7).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace nc {

// Drops the resident pages wholly inside [p, p + n) of a read-only file mapping: memory the process no longer reads
// (a re-coded copy replaced it) stops counting against it; a later read would fault them in again from the file.
void release_file_pages(const void* p, uint64_t n) noexcept;

class MappedFile {
  public:
    // Maps `path` read-only; throws nc::Error(NC_ERR_IO) naming the path and the OS error.
    explicit MappedFile(const std::string& path);
    ~MappedFile();
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::byte* data() const { return data_; }
    uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }

  private:
    void release() noexcept;

    std::string path_;
    const std::byte* data_ = nullptr;
    uint64_t size_ = 0;
};

}  // namespace nc

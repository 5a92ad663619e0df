// Errors inside the core: thrown as nc::Error, turned into an nc_status at the C ABI (api/c_api.cpp).
#pragma once

#include <stdexcept>
#include <string>

#include "nextchat.h"

namespace nc {

class Error : public std::runtime_error {
  public:
    Error(nc_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    nc_status status() const noexcept { return status_; }

  private:
    nc_status status_;
};

[[noreturn]] inline void fail(nc_status status, const std::string& message) { throw Error(status, message); }

}  // namespace nc

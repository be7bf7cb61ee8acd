#pragma once

// A temporary directory removed at scope exit, and byte surgery on real files (flip a bit, cut,
// append): what a test of damaged files needs. Throws std::runtime_error when the OS refuses
// (tests only).

#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "statefold/file_system.hpp"

namespace statefold::testing {

class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view name) const { return path_join(path_, name); }

 private:
  std::string path_;
};

std::string read_bytes(const std::string& path);
void write_bytes(const std::string& path, std::string_view bytes);
void flip_bit(const std::string& path, uint64_t offset, int bit = 0);
void truncate_file(const std::string& path, uint64_t size);
void append_bytes(const std::string& path, std::string_view bytes);
std::vector<std::string> files_in(const std::string& dir);  // sorted names

}  // namespace statefold::testing

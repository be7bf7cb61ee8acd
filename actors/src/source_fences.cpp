#include "statefold/detail/source_fences.hpp"

#include <algorithm>

namespace statefold::detail {

void source_fences::fail(std::string_view source, uint64_t pos) {
  std::lock_guard lock(mu_);
  auto it = fences_.find(source);
  if (it == fences_.end()) fences_.emplace(std::string(source), pos);
  else it->second = std::min(it->second, pos);
  any_.store(true, std::memory_order_release);
}

std::optional<uint64_t> source_fences::admit(std::string_view source, uint64_t pos) {
  if (empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = fences_.find(source);
  if (it == fences_.end()) return std::nullopt;
  if (pos > it->second) return it->second;
  fences_.erase(it);  // the consumer came back to (or before) the first lost position
  any_.store(!fences_.empty(), std::memory_order_release);
  return std::nullopt;
}

std::optional<uint64_t> source_fences::fence_of(std::string_view source) const {
  if (empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = fences_.find(source);
  if (it == fences_.end()) return std::nullopt;
  return it->second;
}

}  // namespace statefold::detail

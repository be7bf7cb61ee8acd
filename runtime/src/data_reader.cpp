#include "statefold/data_reader.hpp"

#include <chrono>
#include <thread>

#include "statefold/live_progress.hpp"

namespace statefold::detail {
namespace {

// What an attempt may read now: a live writer's published durable LSN (nullopt while it has
// not published one for its epoch yet: it is still recovering).
result<std::optional<read_bound>> bound_now(file_system& fs, const std::string& dir, uint32_t lane) {
  read_bound b;
  SF_ASSIGN_OR_RETURN(b.live, fs.is_locked(path_join(dir, layout::lock)));
  SF_ASSIGN_OR_RETURN(manifest m, read_manifest(fs, dir));
  b.epoch = m.epoch;
  if (!b.live) return std::optional<read_bound>(b);
  const std::string path = path_join(lane_dir(dir, lane), progress_file_name);
  auto bytes = fs.read_file(path);
  if (!bytes) {
    if (bytes.error().code() == errc::not_found) return std::optional<read_bound>();
    return bytes.error();
  }
  auto pub = decode_published_progress(*bytes, path);
  if (!pub || pub->epoch != m.epoch) return std::optional<read_bound>();  // mid-write, or stale
  b.max_lsn = pub->durable_lsn;
  return std::optional<read_bound>(b);
}

}  // namespace

status read_with_retries(file_system& fs, const std::string& dir, uint32_t lane, int attempts,
                         const std::function<status(const read_bound&)>& attempt) {
  status last;
  // A writer that is recovering has not published its position yet: wait for it (it is
  // reading its log), without spending attempts, up to this long.
  const auto recovering_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int i = 0; i < std::max(attempts, 1);) {
    SF_ASSIGN_OR_RETURN(auto b, bound_now(fs, dir, lane));
    if (!b) {
      if (std::chrono::steady_clock::now() > recovering_deadline)
        return {errc::failed, "the running writer has not published its durable position for 60 s "
                              "(still recovering?); try again later"};
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    last = attempt(*b);
    if (last.is_ok()) return last;
    // An I/O error is the disk's, whoever writes.
    if (last.code() == errc::io_error) return last;
    SF_ASSIGN_OR_RETURN(bool live_now, fs.is_locked(path_join(dir, layout::lock)));
    if (!b->live && !live_now) return last;  // nobody wrote meanwhile: the damage is real
    ++i;
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * i));
  }
  return last.with_context("a writer is running, and the data changed under every one of " +
                           std::to_string(std::max(attempts, 1)) + " attempts to read it");
}

}  // namespace statefold::detail

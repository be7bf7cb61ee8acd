#include "statefold/journal_lane.hpp"

#include <algorithm>
#include <cstdlib>

namespace statefold {

namespace {
std::size_t partitions_in(const lane_membership& m) {
  return m.partitions > m.lane ? (m.partitions - m.lane + m.lanes - 1) / m.lanes : 0;
}
}  // namespace

journal_lane::journal_lane(options o, log_scan scan)
    : o_(std::move(o)), scan_(std::move(scan)), need_(partitions_in(o_.membership), 0) {}

result<std::shared_ptr<journal_lane>> journal_lane::open(file_system& fs, std::string log_dir, options o) {
  log_scan_options so;
  o.membership.apply_to(so);
  so.max_epoch = o.epoch;
  so.mode = o.mode;
  SF_ASSIGN_OR_RETURN(auto scan, scan_log(fs, log_dir, so, nullptr));
  SF_RETURN_IF_ERROR(repair_log(fs, log_dir, scan));
  return open_scanned(fs, std::move(log_dir), std::move(o), std::move(scan));
}

result<std::shared_ptr<journal_lane>> journal_lane::open_scanned(file_system& fs, std::string log_dir,
                                                                 options o, log_scan scan) {
  if (o.membership.lanes == 0 || o.membership.lane >= o.membership.lanes ||
      o.membership.partitions < o.membership.lanes)
    return status{errc::invalid_argument, "journal lane " + std::to_string(o.membership.lane) + " of " +
                                              std::to_string(o.membership.lanes) + " lanes for " +
                                              std::to_string(o.membership.partitions) + " partitions"};
  std::shared_ptr<journal_lane> lane(new journal_lane(std::move(o), std::move(scan)));
  SF_ASSIGN_OR_RETURN(lane->writer_, log_writer::open(fs, std::move(log_dir), lane->o_.membership.lane,
                                                      lane->o_.epoch, lane->scan_, lane->o_.log));
  // A new lane's first segment is created now, so that a crash before the first commit still
  // leaves a lane that starts where its partitions' states do.
  SF_RETURN_IF_ERROR(lane->writer_->sync().to_status());
  lane->released_before_ = lane->scan_.first_lsn;
  return lane;
}

result<uint64_t> journal_lane::commit(lane_chunk& chunk, persist_mode mode) {
  std::vector<status> each;
  auto r = commit_all({&chunk}, mode, each);
  if (!r) return r;
  if (!each.front().is_ok()) return each.front();
  return r;
}

result<uint64_t> journal_lane::commit_all(const std::vector<lane_chunk*>& chunks, persist_mode mode,
                                          std::vector<status>& each) {
  each.assign(chunks.size(), status::ok());
  std::vector<waiter> mine(chunks.size());
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    mine[i] = waiter{chunks[i], mode};
    if (!chunks[i]->empty() && !o_.membership.holds(chunks[i]->partition))
      mine[i].st = status{errc::invalid_argument, "partition " + std::to_string(chunks[i]->partition) +
                                                      " does not belong to journal lane " +
                                                      std::to_string(o_.membership.lane)};
  }
  auto all_done = [&] {
    return std::all_of(mine.begin(), mine.end(), [](const waiter& w) { return w.done; });
  };
  std::unique_lock lock(mu_);
  for (auto& w : mine) {
    if (w.st.is_ok()) queue_.push_back(&w);
    else w.done = true;  // refused before it reached the lane
  }
  for (;;) {
    cv_.wait(lock, [&] { return all_done() || !leading_; });
    if (all_done()) break;
    // Lead a round: everyone queued so far, ours included.
    leading_ = true;
    std::vector<waiter*> round;
    round.swap(queue_);
    lock.unlock();
    run_round(round);
    lock.lock();
    for (waiter* x : round) x->done = true;
    leading_ = false;
    cv_.notify_all();
  }
  lock.unlock();
  status round_error;
  for (std::size_t i = 0; i < mine.size(); ++i) {
    each[i] = mine[i].st;
    // A write or sync error is the lane's (it has failed); a refused chunk is its own.
    if (!mine[i].st.is_ok() && writer_->failed() && round_error.is_ok()) round_error = mine[i].st;
  }
  if (!round_error.is_ok()) return round_error;
  return writer_->durable_lsn();
}

void journal_lane::run_round(std::vector<waiter*>& round) {
  persist_mode mode = persist_mode::write_only;
  std::vector<std::pair<uint32_t, uint64_t>> firsts;  // (partition, LSN of its first record)
  for (waiter* w : round) {
    if (w->mode == persist_mode::fdatasync) mode = persist_mode::fdatasync;
    if (w->chunk->empty()) continue;
    const uint64_t first = writer_->next_lsn();
    auto r = writer_->append_encoded(w->chunk->bytes);
    if (!r) {
      w->st = r.error();  // this chunk alone, unless the writer has failed (below)
      continue;
    }
    firsts.emplace_back(w->chunk->partition, first);
  }
  if (!firsts.empty()) {
    // A partition that needed nothing needs its new records: pinned before any release.
    std::lock_guard lock(mu_);
    for (const auto& [p, first] : firsts) {
      uint64_t& n = need_[p / o_.membership.lanes];
      if (n == UINT64_MAX) n = first;
    }
  }
  log_batch b = writer_->take_batch();
  auto r = writer_->persist(b, mode);
  if (!r) {
    for (waiter* w : round) w->st = r.error();
    return;
  }
  rounds_.fetch_add(1, std::memory_order_relaxed);
  if (status st = release_unneeded(); !st.is_ok())
    for (waiter* w : round) w->st = st;
}

uint64_t journal_lane::min_need() const {
  uint64_t m = UINT64_MAX;
  for (uint64_t n : need_) m = std::min(m, n);
  return m;
}

status journal_lane::release_unneeded() {
  uint64_t before;
  {
    std::lock_guard lock(mu_);
    before = min_need();
  }
  // Only what is durable may be released past (log_writer::release_before).
  before = std::min(before, writer_->durable_lsn() + 1);
  if (before <= released_before_) return status::ok();
  SF_RETURN_IF_ERROR(writer_->release_before(before));
  released_before_ = before;
  return status::ok();
}

status journal_lane::need_from(uint32_t partition, uint64_t lsn) {
  if (!o_.membership.holds(partition))
    return status{errc::invalid_argument, "partition " + std::to_string(partition) +
                                              " does not belong to journal lane " +
                                              std::to_string(o_.membership.lane)};
  std::unique_lock lock(mu_);
  need_[partition / o_.membership.lanes] = lsn;
  if (std::min(min_need(), writer_->durable_lsn() + 1) <= released_before_) return status::ok();
  cv_.wait(lock, [&] { return !leading_; });
  leading_ = true;
  lock.unlock();
  status st = writer_->failed() ? writer_->failure() : release_unneeded();
  lock.lock();
  leading_ = false;
  cv_.notify_all();
  return st;
}

bool journal_lane::holds_back(uint32_t partition) {
  if (o_.max_bytes == 0 || bytes_held() <= o_.max_bytes || !o_.membership.holds(partition)) return false;
  const uint64_t oldest_ends = writer_->second_segment_base();
  std::lock_guard lock(mu_);
  return need_[partition / o_.membership.lanes] < oldest_ends;
}

void partition_journal::unappend_last() {
  if (!can_unappend_) std::abort();  // a bug in the caller: nothing to withdraw
  buf_.resize(last_at_);
  --next_pseq_;
  can_unappend_ = false;
}

}  // namespace statefold

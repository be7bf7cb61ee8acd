#pragma once

// hooked_store: a state_store that forwards every call to another one and runs a hook before
// each commit. A test scripts an interleaving with it — another consumer's whole batch
// between this consumer's read and its commit — deterministically, with no race left to
// chance (tests/stores/).

#include <functional>
#include <utility>

#include "statefold/state_store.hpp"

namespace statefold::testing {

class hooked_store final : public state_store {
 public:
  explicit hooked_store(state_store& inner) : inner_(inner) {}
  /// Runs before commit number `n` (0-based) is forwarded.
  std::function<void(int n)> before_commit;
  int commits() const noexcept { return commits_; }

  const std::string& name() const noexcept override { return inner_.name(); }
  status check_model(std::string_view m, uint32_t v, bool record) override { return inner_.check_model(m, v, record); }
  result<stored_state> get_state(std::string_view k) override { return inner_.get_state(k); }
  status save_state(std::string_view k, std::string_view b) override { return inner_.save_state(k, b); }
  result<std::optional<uint64_t>> is_processed(std::string_view k, std::string_view id) override {
    return inner_.is_processed(k, id);
  }
  status mark_processed(std::string_view k, std::string_view id, uint64_t d) override {
    return inner_.mark_processed(k, id, d);
  }
  status read(const store_read& w, store_read_reply& out) override { return inner_.read(w, out); }
  using state_store::commit;
  result<commit_reply> commit(std::span<const key_commit> k, const source_advance* s) override {
    if (before_commit) before_commit(commits_);
    ++commits_;
    return inner_.commit(k, s);
  }
  result<source_progress> progress(std::string_view s) override { return inner_.progress(s); }
  status for_each_state(const std::function<status(std::string_view, const stored_state&)>& f) override {
    return inner_.for_each_state(f);
  }

 private:
  state_store& inner_;
  int commits_ = 0;
};

}  // namespace statefold::testing

#include "statefold/testing/deterministic_engine.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

namespace statefold::testing::detail {

deterministic_scheduler::deterministic_scheduler(uint64_t seed)
    : cfg_(std::make_unique<caf::actor_system_config>()), rng_(seed) {
  cfg_->set("scheduler.policy", caf::atom("testing"));
  cfg_->set("logger.verbosity", caf::atom("quiet"));
  sys_ = std::make_unique<caf::actor_system>(*cfg_);
  sched_ = &dynamic_cast<caf::scheduler::test_coordinator&>(sys_->scheduler());
}

deterministic_scheduler::~deterministic_scheduler() {
  // Whatever is still queued runs to completion (exits, dropped messages) before the system goes.
  sched_->run();
  sys_.reset();
}

caf::actor_system& deterministic_scheduler::system() { return *sys_; }

bool deterministic_scheduler::idle() { return !sched_->has_job(); }

const caf::abstract_actor* deterministic_scheduler::step() {
  if (!sched_->has_job()) return nullptr;
  auto& jobs = sched_->jobs;
  const std::size_t i = jobs.size() == 1 ? 0 : static_cast<std::size_t>(rng_() % jobs.size());
  caf::resumable* job = jobs[i];
  std::rotate(jobs.begin(), jobs.begin() + static_cast<std::ptrdiff_t>(i), jobs.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  const auto* actor = dynamic_cast<const caf::abstract_actor*>(job);
  sched_->run_once();
  return actor;
}

void deterministic_scheduler::advance_time(std::chrono::milliseconds d) {
  sched_->advance_time(std::chrono::duration_cast<caf::timespan>(d));
}

}  // namespace statefold::testing::detail

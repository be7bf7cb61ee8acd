#pragma once

// The CAF messages of the engine. Every payload travels as one type-erased `work_ptr` (a
// shared_ptr to a work_item subclass), tagged by an atom; the receiving actor knows the
// concrete type. One registered message type keeps CAF's (0.17) type system out of the
// Model templates, and shared ownership gives a useful guarantee: a payload destroyed
// without being handled (its actor died) runs its destructor, which answers its submitters.

#include <memory>

#include <caf/all.hpp>

namespace statefold::detail {

struct work_item {
  virtual ~work_item() = default;
};
using work_ptr = std::shared_ptr<work_item>;

template <class T>
std::shared_ptr<T> work_cast(const work_ptr& p) {
  return std::static_pointer_cast<T>(p);
}

using submit_atom = caf::atom_constant<caf::atom("sf_submit")>;
using mark_atom = caf::atom_constant<caf::atom("sf_mark")>;
using answer_atom = caf::atom_constant<caf::atom("sf_answer")>;
using persist_atom = caf::atom_constant<caf::atom("sf_persis")>;
using flushed_atom = caf::atom_constant<caf::atom("sf_flushd")>;
using commit_atom = caf::atom_constant<caf::atom("sf_commit")>;
using tick_atom = caf::atom_constant<caf::atom("sf_tick")>;
using query_atom = caf::atom_constant<caf::atom("sf_query")>;
using close_atom = caf::atom_constant<caf::atom("sf_close")>;
using restart_atom = caf::atom_constant<caf::atom("sf_restrt")>;
using activate_atom = caf::atom_constant<caf::atom("sf_activ")>;
using ckpt_step_atom = caf::atom_constant<caf::atom("sf_ckstep")>;
using ckpt_write_atom = caf::atom_constant<caf::atom("sf_ckwrite")>;
using ckpt_done_atom = caf::atom_constant<caf::atom("sf_ckdone")>;

/// Errors at the actor boundary.
enum class actor_errc : uint8_t {
  partition_failed = 1,  ///< log I/O failed; the supervisor restarts the partition
};

inline caf::error make_error(actor_errc code) {
  return caf::error{static_cast<uint8_t>(code), caf::atom("statefold")};
}

}  // namespace statefold::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(statefold::detail::work_ptr)

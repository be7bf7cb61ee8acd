#pragma once

// The lane flusher: the writer of one journal lane, shared by the lane's partitions, and the
// checkpoint pipeline's second half (a checkpoint image written in slices between commits).
// See partition_actor.hpp for the path of one event through it.

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include <caf/all.hpp>

#include "statefold/detail/messages.hpp"
#include "statefold/detail/work.hpp"
#include "statefold/partition_state.hpp"

namespace statefold::detail {

// -- flusher -----------------------------------------------------------------------------------

template <class Model>
struct flusher_state {
  static inline const char* name = "statefold.lane_flusher";
  struct pending {
    std::shared_ptr<flush_work<Model>> job;
    caf::response_promise rp;
    caf::actor reply_to;
  };
  std::vector<pending> queue;  // flushes received since the last commit round
  bool commit_due = false;     // a commit_atom is in the mailbox, behind them
};

template <class Model>
void start_checkpoint_write(caf::stateful_actor<flusher_state<Model>>* self,
                            const std::shared_ptr<flush_work<Model>>& job, const caf::actor& reply_to);

/// The flusher of one journal lane, shared by the lane's partitions. Runs detached (its own
/// thread): blocking writes, fdatasync and checkpoint files never stall the CAF scheduler.
/// A flush request is queued, and the first one since the last round sends the flusher a
/// commit message, which the mailbox delivers after every request that came in before it:
/// that round commits all of them with one write and one fdatasync (journal_lane::commit_all).
/// A checkpoint is written 512 KiB per message (~1.5 ms of device time here), so a round waits
/// for at most one slice, not for the whole image (~100 ms at a million entities).
template <class Model>
caf::behavior flusher_actor(caf::stateful_actor<flusher_state<Model>>* self) {
  constexpr std::size_t checkpoint_slice = 512u << 10;
  return {
      [self](persist_atom, work_ptr w) {
        auto& st = self->state;
        // The sender first: make_response_promise() takes it over from the message.
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        auto rp = self->make_response_promise();
        st.queue.push_back({work_cast<flush_work<Model>>(w), std::move(rp), std::move(sender)});
        if (!st.commit_due) {
          st.commit_due = true;
          self->send(self, commit_atom::value);
        }
      },
      [self](commit_atom) {
        auto& st = self->state;
        st.commit_due = false;
        auto round = std::move(st.queue);
        st.queue.clear();
        // One commit per lane (a flusher serves one; a partition recovered onto a newer lane
        // while an old request was queued would be another).
        std::vector<std::size_t> order(round.size());
        for (std::size_t i = 0; i < round.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
          return &round[a].job->ps->lane() < &round[b].job->ps->lane();
        });
        for (std::size_t at = 0; at < order.size();) {
          journal_lane& lane = round[order[at]].job->ps->lane();
          std::size_t end = at;
          std::vector<lane_chunk*> chunks;
          persist_mode mode = persist_mode::write_only;
          for (; end < order.size() && &round[order[end]].job->ps->lane() == &lane; ++end) {
            auto& job = *round[order[end]].job;
            chunks.push_back(&job.batch);
            if (job.mode == persist_mode::fdatasync) mode = persist_mode::fdatasync;
          }
          const auto t0 = std::chrono::steady_clock::now();
          std::vector<status> each;
          auto r = lane.commit_all(chunks, mode, each);
          const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          for (std::size_t i = at; i < end; ++i) {
            auto& p = round[order[i]];
            auto& job = *p.job;
            job.persist_seconds = seconds;
            job.st = r ? each[i - at] : r.error();
            if (job.st.is_ok()) {
              job.durable = job.ps->committed(job.batch);
              if (job.checkpoint) start_checkpoint_write(self, p.job, p.reply_to);
            }
            job.checkpoint.reset();
            p.rp.deliver(flushed_atom::value, work_ptr(p.job));
            job.ticket.done();
          }
          at = end;
        }
      },
      [self](ckpt_write_atom, work_ptr w) {
        auto cw = work_cast<checkpoint_write_work<Model>>(w);
        if (!cw->ticket.alive->load()) {  // its partition is gone: abandon the image
          cw->ticket.done();
          return;
        }
        auto r = cw->ps->continue_checkpoint_write(checkpoint_slice);
        if (r && !*r) {
          self->send(self, ckpt_write_atom::value, std::move(w));  // behind queued flushes
          return;
        }
        cw->st = r ? status::ok() : r.error();
        self->send(cw->reply_to, ckpt_done_atom::value, w);
        cw->ticket.done();
      },
  };
}

/// After the flush that covers its LSN: the checkpoint image goes to disk in slices.
template <class Model>
void start_checkpoint_write(caf::stateful_actor<flusher_state<Model>>* self,
                            const std::shared_ptr<flush_work<Model>>& job, const caf::actor& reply_to) {
  auto cw = std::make_shared<checkpoint_write_work<Model>>();
  cw->ps = job->ps;
  cw->reply_to = reply_to;
  cw->ticket = job->ticket;
  cw->ticket.take();
  cw->lsn = job->checkpoint->lsn;
  cw->bytes = job->checkpoint->image.size();
  cw->started = std::chrono::steady_clock::now();
  cw->st = job->ps->begin_checkpoint_write(std::move(*job->checkpoint));
  if (cw->st.is_ok()) {
    self->send(self, ckpt_write_atom::value, work_ptr(cw));
  } else {
    self->send(cw->reply_to, ckpt_done_atom::value, work_ptr(cw));
    cw->ticket.done();
  }
}
}  // namespace statefold::detail

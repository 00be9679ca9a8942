// gradient_reducer.cpp — see gradient_reducer.h.
#include "train/gradient_reducer.h"

#include <algorithm>

#include "autograd/engine.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

namespace lory::train {

namespace {

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

GradientReducer::GradientReducer(FlatParameters& flat, Communicator& comm, int zero_stage, Tensor reduced,
                                 int64_t bucket_bytes, bool overlap)
    : flat_(flat), comm_(comm), stage_(zero_stage), overlap_(overlap), reduced_(std::move(reduced)) {
  LORY_CHECK(zero_stage >= 0 && zero_stage <= 2, "GradientReducer: ZeRO stage must be 0, 1 or 2, got ", zero_stage);
  LORY_CHECK(flat.world() == comm.world(), "GradientReducer: the flat buffers are cut for ", flat.world(),
             " ranks, the communicator has ", comm.world());
  LORY_CHECK(reduced_.dtype() == DType::f32 && reduced_.numel() == flat.shard_size(),
             "GradientReducer: reduced must be f32 [", flat.shard_size(), "], got ", reduced_.describe());
  // Without a whole-buffer accumulator (ZeRO 2; ZeRO 1 with one micro-batch
  // a step, bf16) every micro-batch is reduced on its own.
  each_micro_batch_ = stage_ == 2 || !flat.master_grads.defined();
  LORY_CHECK(!(each_micro_batch_ && stage_ == 0), "GradientReducer: ZeRO stage 0 needs flat.master_grads");
  const auto& slots = flat.slots();
  const int64_t S = flat.shard_size(), world = comm.world();
  const int64_t target = std::max<int64_t>(1, bucket_bytes / 4 / FlatParameters::kAlign) * FlatParameters::kAlign;

  // Groups of whole parameters of at least `target` elements, from the last
  // parameter back (backward finishes those first); then each group cut into
  // buckets of at most `target` (one expert stack can be far larger), which
  // bounds what is in flight and the staging buffers.
  std::vector<std::pair<int64_t, int64_t>> groups;
  int64_t end = flat.size();
  for (size_t k = slots.size(); k-- > 0;)
    if (end - slots[k].offset >= target || k == 0) {
      groups.emplace_back(k == 0 ? 0 : slots[k].offset, end);
      end = slots[k].offset;
    }
  for (const auto& [lo, hi] : groups)
    for (int64_t top = hi; top > lo; top -= target) {
      Bucket b;
      b.begin = std::max(lo, top - target);
      b.end = top;
      buckets_.push_back(b);
    }
  // The parameters each bucket waits for: those it meets.
  buckets_of_slot_.assign(slots.size(), {});
  for (size_t i = 0; i < buckets_.size(); ++i) {
    Bucket& b = buckets_[i];
    for (size_t k = 0; k < slots.size(); ++k)
      if (slots[k].offset < b.end && slots[k].offset + slots[k].numel > b.begin) {
        b.slots += 1;
        buckets_of_slot_[k].push_back(i);
      }
    for (int64_t r = 0; r < world; ++r)
      b.counts.push_back(std::max<int64_t>(0, std::min(b.end, (r + 1) * S) - std::max(b.begin, r * S)));
    b.recv_begin = std::clamp(b.begin - flat.shard_begin(comm.rank()), int64_t{0}, S);
  }
  for (size_t k = 0; k < slots.size(); ++k) slot_of_leaf_[slots[k].slot->impl()] = k;
  slot_ready_.assign(slots.size(), 0);

  const TensorOptions f32{DType::f32, flat.params.device(), false};
  if (each_micro_batch_) {
    incoming_ = zeros({S}, f32);
    if (flat.compute_dtype() != DType::f32) {
      int64_t largest = 0;
      for (const Bucket& b : buckets_) largest = std::max(largest, b.end - b.begin);
      for (int i = 0; i < 2; ++i) staging_.push_back(zeros({largest}, f32));
      staging_busy_.assign(2, false);
    }
  }
}

GradientReducer::~GradientReducer() {
  set_leaf_grad_hook(nullptr);
  for (InFlight& f : in_flight_)
    if (!f.done) f.work->wait();
}

void GradientReducer::begin_step() {
  NoGradGuard no_grad;
  if (each_micro_batch_) reduced_.zero_();
  intervals_.clear();
  backward_periods_.clear();
}

void GradientReducer::before_backward(bool last) {
  reducing_ = each_micro_batch_ || last;
  if (!reducing_) return;
  backward_periods_.emplace_back(Clock::now(), Clock::now());
  for (Bucket& b : buckets_) b.ready = 0, b.started = false;
  std::fill(slot_ready_.begin(), slot_ready_.end(), 0);
  if (overlap_) set_leaf_grad_hook([this](const TensorImpl& leaf) { on_leaf_ready(leaf); });
}

void GradientReducer::on_leaf_ready(const TensorImpl& leaf) {
  const auto it = slot_of_leaf_.find(&leaf);
  if (it == slot_of_leaf_.end()) return;  // not one of the flat parameters
  profiler::Region timed("reduce_scatter_start", profiler::Phase::communication);
  const size_t k = it->second;
  // A parameter whose gradient arrives in two parts (used by two separate
  // backward sweeps) would be sent before its second part: refuse it.
  LORY_CHECK(!slot_ready_[k], "gradient overlap: parameter ", flat_.slots()[k].name,
             " received its gradient twice in one backward; set train.overlap_comm = false");
  slot_ready_[k] = 1;
  for (size_t i : buckets_of_slot_[k])
    if (++buckets_[i].ready == buckets_[i].slots) start(i);
  poll();
}

void GradientReducer::start(size_t index) {
  NoGradGuard no_grad;
  Bucket& b = buckets_[index];
  b.started = true;
  const int64_t n = b.end - b.begin;
  const int64_t mine = b.counts[static_cast<size_t>(comm_.rank())];
  InFlight f{index, nullptr, Clock::now(), {}, -1, false};
  Tensor send, recv;
  if (each_micro_batch_) {
    if (flat_.compute_dtype() == DType::f32) {
      send = flat_.grads.narrow(0, b.begin, n);
    } else {
      f.staging = acquire_staging();
      send = staging_[static_cast<size_t>(f.staging)].narrow(0, 0, n);
      send.copy_(flat_.grads.narrow(0, b.begin, n));  // bf16 -> f32, then summed in f32
    }
    recv = incoming_.narrow(0, b.recv_begin, mine);
  } else {
    if (flat_.has_separate_accumulator()) {  // bf16: add the last micro-batch into the f32 sum
      flat_.master_grads.narrow(0, b.begin, n).add_(flat_.grads.narrow(0, b.begin, n));
      flat_.grads.narrow(0, b.begin, n).zero_();
    }
    send = flat_.master_grads.narrow(0, b.begin, n);
    recv = reduced_.narrow(0, b.recv_begin, mine);
  }
  f.work = comm_.start_reduce_scatter(send, recv, b.counts);
  in_flight_.push_back(std::move(f));
  stats_.buckets += 1;
}

void GradientReducer::poll() {
  for (InFlight& f : in_flight_)
    if (!f.done && f.work->test()) complete(f);
}

void GradientReducer::complete(InFlight& f) {
  NoGradGuard no_grad;
  f.done = true;
  f.end = Clock::now();
  intervals_.emplace_back(f.start, f.end);
  const Bucket& b = buckets_[f.bucket];
  if (each_micro_batch_) {
    const int64_t mine = b.counts[static_cast<size_t>(comm_.rank())];
    if (mine > 0) reduced_.narrow(0, b.recv_begin, mine).add_(incoming_.narrow(0, b.recv_begin, mine));
    if (f.staging >= 0) staging_busy_[static_cast<size_t>(f.staging)] = false;
  }
}

int GradientReducer::acquire_staging() {
  for (;;) {
    for (size_t i = 0; i < staging_busy_.size(); ++i)
      if (!staging_busy_[i]) {
        staging_busy_[i] = true;
        return static_cast<int>(i);
      }
    // Both staging buckets are on the wire: wait for the older one.
    const auto t = Clock::now();
    for (InFlight& f : in_flight_)
      if (!f.done && f.staging >= 0) {
        f.work->wait();
        complete(f);
        break;
      }
    stats_.exposed_s += seconds(Clock::now() - t);
  }
}

void GradientReducer::wait_all() {
  const auto t = Clock::now();
  for (InFlight& f : in_flight_)
    if (!f.done) {
      f.work->wait();
      complete(f);
    }
  in_flight_.clear();
  stats_.exposed_s += seconds(Clock::now() - t);
}

void GradientReducer::after_backward() {
  set_leaf_grad_hook(nullptr);
  if (!reducing_) {
    flat_.accumulate_micro_batch();  // bf16: into the f32 sum; f32: autograd summed in place already
    return;
  }
  backward_periods_.back().second = Clock::now();
  // Buckets the hook did not start (overlap off, or parameters that got no gradient), in index order: every
  // rank starts the same collectives in the same order.
  for (size_t i = 0; i < buckets_.size(); ++i)
    if (!buckets_[i].started) start(i);
  if (each_micro_batch_) {
    // The next micro-batch's backward writes into grads: this one's reductions must be done with them.
    wait_all();
    NoGradGuard no_grad;
    flat_.grads.zero_();
  }
  reducing_ = false;
}

void GradientReducer::finish() { wait_all(); }

int64_t GradientReducer::held_bytes() const {
  int64_t n = incoming_.defined() ? static_cast<int64_t>(incoming_.nbytes()) : 0;
  for (const Tensor& t : staging_) n += static_cast<int64_t>(t.nbytes());
  return n;
}

CommStats GradientReducer::take_stats() {
  // Union of the reductions' intervals, and how much of it fell before each
  // backward ended (when the host can see them: Communicator::host_timed).
  if (!comm_.host_timed()) intervals_.clear(), stats_.timed = false;
  std::sort(intervals_.begin(), intervals_.end());
  std::vector<std::pair<Clock::time_point, Clock::time_point>> merged;
  for (const auto& iv : intervals_) {
    if (!merged.empty() && iv.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, iv.second);
    else
      merged.push_back(iv);
  }
  for (const auto& [a, z] : merged) {
    stats_.reduce_s += seconds(z - a);
    for (const auto& [s, e] : backward_periods_)  // hidden: in flight while a backward ran
      if (a < e && s < z) stats_.reduce_hidden_s += seconds(std::min(z, e) - std::max(a, s));
  }
  CommStats out = stats_;
  stats_ = CommStats{};
  intervals_.clear();
  backward_periods_.clear();
  return out;
}

}  // namespace lory::train

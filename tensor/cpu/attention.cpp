// attention.cpp — scaled dot-product attention, forward and backward, fused.
//
// For one (batch, head): q: [L, Dh], k, v: [S, Dh] (with grouped-query
// attention, query head h reads key/value head h / (H / Hkv)).
//   scores = scale * q k^T            [L, S]; causal: query i sees keys j <= i + S - L
//   P      = softmax(scores) by row;  lse_i = log sum_j exp(scores_ij)
//   out    = P v                      [L, Dh]
// Backward (dO given; P recomputed from q, k and the saved lse, as FlashAttention does):
//   dV = P^T dO,  dP = dO v^T,  D_i = dO_i . out_i,  dS = P * (dP - D),
//   dQ = scale * dS k,  dK = scale * dS^T q
//
// Queries go in blocks of kQueryBlock rows, so only a [kQueryBlock, S] score
// block exists at a time (not the [L, S] matrix), and each block only scores
// the keys its last row can see: causal attention costs about half of full.
// The products are Eigen GEMMs in f32 (f64 for f64); bf16/f16 heads are
// widened to f32 once per head. Threads take whole (batch, head) pairs in
// forward and whole (batch, key/value head) pairs in backward, which loops
// over the group's query heads and sums their dK, dV in a fixed order: every
// output element is written by one thread (deterministic). With a single
// head, Eigen threads the GEMMs instead.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/dispatch.h"
#include "tensor/cpu/parallel.h"
#include "tensor/kernel_args.h"

namespace lory {

using namespace cpu;

namespace {

constexpr int64_t kQueryBlock = 64;

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct AttnDims {
  int64_t B, H, Hkv, L, S, Dh;
  bool causal;
  int64_t group() const { return H / Hkv; }  // query heads per key/value head
  // The key/value head (an index into [B * Hkv]) that query head bh of [B * H] reads.
  int64_t kv_of(int64_t bh) const { return (bh / H) * Hkv + (bh % H) / group(); }
  // Keys visible to query row i: [0, visible(i)).
  int64_t visible(int64_t i) const { return causal ? std::clamp<int64_t>(i + S - L + 1, 0, S) : S; }
};

template <typename T>
using HeadMap = Eigen::Map<const RowMat<compute_t<T>>>;

// One head's [rows, Dh] matrix in the compute type: a map over the tensor for
// f32/f64; for bf16/f16 a widened copy, kept in `storage`.
template <typename T>
HeadMap<T> head(const T* base, int64_t bh, int64_t rows, int64_t Dh, RowMat<compute_t<T>>& storage) {
  const T* p = base + bh * rows * Dh;
  if constexpr (std::is_same_v<T, compute_t<T>>) {
    return HeadMap<T>(p, rows, Dh);
  } else {
    storage = Eigen::Map<const RowMat<T>>(p, rows, Dh).template cast<compute_t<T>>();
    return HeadMap<T>(storage.data(), rows, Dh);
  }
}

AttnDims dims_of(const Tensor& q, const Tensor& k, bool causal) {
  return AttnDims{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), causal};
}

template <typename T>
void forward_typed(const Tensor& q, const Tensor& k, const Tensor& v, double scale, const AttnDims& d, Tensor& out,
                   Tensor& lse) {
  using C = compute_t<T>;
  const T* qp = ptr<T>(q);
  const T* kp = ptr<T>(k);
  const T* vp = ptr<T>(v);
  T* op = ptr<T>(out);
  float* lp = ptr<float>(lse);
  const C sc = static_cast<C>(scale);
  parallel_for(0, d.B * d.H, 1, [&](int64_t b, int64_t e) {
    RowMat<C> scores(std::min(kQueryBlock, d.L), d.S);
    RowMat<C> o_blk, q_buf, k_buf, v_buf;
    for (int64_t bh = b; bh < e; ++bh) {
      const HeadMap<T> Q = head<T>(qp, bh, d.L, d.Dh, q_buf);
      const HeadMap<T> K = head<T>(kp, d.kv_of(bh), d.S, d.Dh, k_buf);
      const HeadMap<T> V = head<T>(vp, d.kv_of(bh), d.S, d.Dh, v_buf);
      Eigen::Map<RowMat<T>> O(op + bh * d.L * d.Dh, d.L, d.Dh);
      float* lse_bh = lp + bh * d.L;
      for (int64_t q0 = 0; q0 < d.L; q0 += kQueryBlock) {
        const int64_t nq = std::min(kQueryBlock, d.L - q0);
        const int64_t nk = d.visible(q0 + nq - 1);  // keys the block's last row sees
        auto P = scores.topLeftCorner(nq, nk);
        if (nk > 0) P.noalias() = sc * Q.middleRows(q0, nq) * K.topRows(nk).transpose();
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t valid = d.visible(q0 + r);
          auto row = P.row(r).array();
          if (valid == 0) {  // sees no key: output 0, lse -inf
            row.setZero();
            lse_bh[q0 + r] = -std::numeric_limits<float>::infinity();
            continue;
          }
          const C m = row.head(valid).maxCoeff();
          row.head(valid) = (row.head(valid) - m).exp();
          row.tail(nk - valid).setZero();
          const C l = row.head(valid).sum();
          row.head(valid) /= l;
          lse_bh[q0 + r] = static_cast<float>(m + std::log(l));
        }
        if (nk > 0) {
          o_blk.noalias() = P * V.topRows(nk);
          O.middleRows(q0, nq) = o_blk.template cast<T>();
        } else {
          O.middleRows(q0, nq).setZero();
        }
      }
    }
  });
}

template <typename T>
void backward_typed(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                    const Tensor& lse, double scale, const AttnDims& d, Tensor& dq, Tensor& dk, Tensor& dv) {
  using C = compute_t<T>;
  const T* gp = ptr<T>(dout);
  const T* qp = ptr<T>(q);
  const T* kp = ptr<T>(k);
  const T* vp = ptr<T>(v);
  const T* op = ptr<T>(out);
  const float* lp = ptr<float>(lse);
  const C sc = static_cast<C>(scale);
  parallel_for(0, d.B * d.Hkv, 1, [&](int64_t b, int64_t e) {
    RowMat<C> probs(std::min(kQueryBlock, d.L), d.S), dprobs(std::min(kQueryBlock, d.L), d.S);
    RowMat<C> dQ(d.L, d.Dh), dK(d.S, d.Dh), dV(d.S, d.Dh);
    RowMat<C> q_buf, k_buf, v_buf, do_buf, o_buf;
    for (int64_t bkv = b; bkv < e; ++bkv) {  // one key/value head of [B * Hkv]
      const HeadMap<T> K = head<T>(kp, bkv, d.S, d.Dh, k_buf);
      const HeadMap<T> V = head<T>(vp, bkv, d.S, d.Dh, v_buf);
      dK.setZero();
      dV.setZero();
      // The query heads that read it: group() consecutive heads of batch bkv / Hkv.
      const int64_t first_q = (bkv / d.Hkv) * d.H + (bkv % d.Hkv) * d.group();
      for (int64_t bh = first_q; bh < first_q + d.group(); ++bh) {
        const HeadMap<T> Q = head<T>(qp, bh, d.L, d.Dh, q_buf);
        const HeadMap<T> dO = head<T>(gp, bh, d.L, d.Dh, do_buf);
        const HeadMap<T> O = head<T>(op, bh, d.L, d.Dh, o_buf);
        const float* lse_bh = lp + bh * d.L;
        // D_i = dO_i . O_i: the softmax Jacobian's correction term per query.
        const Eigen::Array<C, Eigen::Dynamic, 1> D = (dO.array() * O.array()).rowwise().sum();
        for (int64_t q0 = 0; q0 < d.L; q0 += kQueryBlock) {
          const int64_t nq = std::min(kQueryBlock, d.L - q0);
          const int64_t nk = d.visible(q0 + nq - 1);
          if (nk == 0) {
            dQ.middleRows(q0, nq).setZero();
            continue;
          }
          auto P = probs.topLeftCorner(nq, nk);
          auto dS = dprobs.topLeftCorner(nq, nk);
          const auto Qb = Q.middleRows(q0, nq);
          const auto dOb = dO.middleRows(q0, nq);
          const auto Kk = K.topRows(nk);
          const auto Vk = V.topRows(nk);
          P.noalias() = sc * Qb * Kk.transpose();
          for (int64_t r = 0; r < nq; ++r) {
            const int64_t valid = d.visible(q0 + r);
            auto row = P.row(r).array();
            if (valid == 0) {
              row.setZero();
              continue;
            }
            C l;
            if constexpr (std::is_same_v<C, double>) {  // f64 (gradcheck): lse again in f64, not the f32 copy
              const C m = row.head(valid).maxCoeff();
              l = m + std::log((row.head(valid) - m).exp().sum());
            } else {
              l = static_cast<C>(lse_bh[q0 + r]);
            }
            row.head(valid) = (row.head(valid) - l).exp();
            row.tail(nk - valid).setZero();
          }
          dV.topRows(nk).noalias() += P.transpose() * dOb;
          dS.noalias() = dOb * Vk.transpose();  // dP
          dS = (P.array() * (dS.array().colwise() - D.segment(q0, nq))).matrix();
          dQ.middleRows(q0, nq).noalias() = sc * dS * Kk;
          dK.topRows(nk).noalias() += sc * dS.transpose() * Qb;
        }
        Eigen::Map<RowMat<T>>(ptr<T>(dq) + bh * d.L * d.Dh, d.L, d.Dh) = dQ.template cast<T>();
      }
      Eigen::Map<RowMat<T>>(ptr<T>(dk) + bkv * d.S * d.Dh, d.S, d.Dh) = dK.template cast<T>();
      Eigen::Map<RowMat<T>>(ptr<T>(dv) + bkv * d.S * d.Dh, d.S, d.Dh) = dV.template cast<T>();
    }
  });
}

}  // namespace

void CpuBackend::attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                                   Tensor& out, Tensor& lse) {
  const char* kernel = "scaled_dot_product_attention";
  check_attention_args(q, k, v, out, lse, causal, kernel);
  const AttnDims d = dims_of(q, k, causal);
  if (d.B * d.H * d.L == 0) return;
  dispatch_floating(q, kernel, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_typed<T>(q, k, v, scale, d, out, lse);
  });
}

void CpuBackend::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& out, const Tensor& lse, double scale, bool causal, Tensor& dq,
                                    Tensor& dk, Tensor& dv) {
  const char* kernel = "scaled_dot_product_attention_backward";
  check_attention_backward_args(dout, q, k, v, out, lse, causal, dq, dk, dv);
  const AttnDims d = dims_of(q, k, causal);
  if (d.B * d.Hkv == 0) return;
  dispatch_floating(q, kernel, [&](auto tag) {
    using T = typename decltype(tag)::type;
    backward_typed<T>(dout, q, k, v, out, lse, scale, d, dq, dk, dv);
  });
}

}  // namespace lory

// The Bosun engine's decode step on CPUs, for decoders of the Llama family with int8
// weights (engine/quant.py): one call computes every layer of a step in which each
// sequence decodes one token, and the logits.
//
// Decode on a CPU reads every weight once per token: the step is bound by memory
// bandwidth, but only when nothing else costs. Through ATen each layer is some 25 small
// operators (dispatch, allocation, a thread team woken for each); here a layer is five
// parallel loops over its weights and the attention, with nothing in between.
//
// Weights are int8 with one float scale per output row; activations, the KV cache and all
// sums are float32 (closer to float32 than ATen's int8 kernel, whose activations are
// bfloat16). Rows of q and k come in adjacent rotary pairs (model._interleave_rotary).
//
// Built on first use with the machine's own instruction set (native.py); where no compiler
// is at hand, the engine runs the same step through ATen.

#include <torch/extension.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

struct Linear {
  const int8_t* w;
  const float* scale;
  const float* bias;  // nullptr: none
  int64_t out, in;
};

Linear linear(const torch::Tensor& w, const torch::Tensor& s, const torch::Tensor& b) {
  TORCH_CHECK(w.dtype() == torch::kInt8 && w.is_contiguous() && w.dim() == 2, "int8 weight");
  TORCH_CHECK(s.dtype() == torch::kFloat32 && s.is_contiguous() && s.numel() == w.size(0),
              "float32 scales, one per row");
  const float* bias = nullptr;
  if (b.defined() && b.numel() > 0) {
    TORCH_CHECK(b.dtype() == torch::kFloat32 && b.numel() == w.size(0), "float32 bias");
    bias = b.data_ptr<float>();
  }
  return {w.data_ptr<int8_t>(), s.data_ptr<float>(), bias, w.size(0), w.size(1)};
}

// Rows of weights dotted at once: each x vector loaded serves four rows.
constexpr int64_t kRows = 4;
// Sequences dotted at once: each converted weight vector serves up to this many.
constexpr int64_t kSeqs = 4;
// Row blocks ahead that the weight stream prefetches.
constexpr int64_t kAhead = 8;

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int64_t kLanes = 16;
inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec widen(const int8_t* p) {  // 16 int8 -> 16 float
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float sum(Vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
using Vec = __m256;
constexpr int64_t kLanes = 8;
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec widen(const int8_t* p) {  // 8 int8 -> 8 float
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float sum(Vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(_mm_hadd_ps(s, s));
}
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
inline Vec weights(const int8_t* p) { return widen(p); }
inline Vec weights(const float* p) { return load(p); }
#endif

// Prefetches row block `o0` + kAhead of `l`, at column j: the streams the hardware
// prefetcher loses at every 4 KiB page stay fed.
inline void prefetch_ahead(const Linear& l, int64_t o0, int64_t j) {
  const int8_t* ahead = l.w + (o0 + kAhead * kRows) * l.in + j;
  const int8_t* end = l.w + l.out * l.in;
  for (int64_t r = 0; r < kRows; ++r)
    if (ahead + r * l.in < end) _mm_prefetch(reinterpret_cast<const char*>(ahead + r * l.in), _MM_HINT_T0);
}

// One block of up to kRows weight rows [o0, o0 + rows) against S sequences (S <= kSeqs, a
// constant: the accumulators then live in registers). The rows come from `w` (kRows rows
// of l.in): int8 straight from the weight (widened to float in registers, the stream
// prefetched), or float rows widened before (wide batches).
template <int64_t S, typename W>
void dot_block(const Linear& l, const W* w, const float* x, int64_t o0, int64_t rows, float* y) {
  float acc[S][kRows] = {};
  int64_t j = 0;
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  if (rows == kRows) {
    Vec a[S][kRows];
    for (int64_t s = 0; s < S; ++s)
      for (int64_t r = 0; r < kRows; ++r) a[s][r] = zero();
    for (; j + kLanes <= l.in; j += kLanes) {
      if (sizeof(W) == 1 && j % 64 == 0) prefetch_ahead(l, o0, j);
      Vec wv[kRows];
      for (int64_t r = 0; r < kRows; ++r) wv[r] = weights(w + r * l.in + j);
      for (int64_t s = 0; s < S; ++s) {
        const Vec xv = load(x + s * l.in + j);
        for (int64_t r = 0; r < kRows; ++r) a[s][r] = fma(xv, wv[r], a[s][r]);
      }
    }
    for (int64_t s = 0; s < S; ++s)
      for (int64_t r = 0; r < kRows; ++r) acc[s][r] = sum(a[s][r]);
  }
#endif
  for (int64_t r = 0; r < rows; ++r) {  // what the vectors left: a tail, or a short block
    const W* row = w + r * l.in;
    for (int64_t s = 0; s < S; ++s) {
      const float* xs = x + s * l.in;
      float t = 0.f;
      for (int64_t k = j; k < l.in; ++k) t += xs[k] * static_cast<float>(row[k]);
      acc[s][r] += t;
    }
  }
  for (int64_t s = 0; s < S; ++s)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t o = o0 + r;
      y[s * l.out + o] = acc[s][r] * l.scale[o] + (l.bias ? l.bias[o] : 0.f);
    }
}

template <typename W>
void dot_block(const Linear& l, const W* w, const float* x, int64_t seqs, int64_t o0, int64_t rows, float* y) {
  static_assert(kSeqs == 4, "one case per sequence count");
  switch (seqs) {
    case 1: return dot_block<1>(l, w, x, o0, rows, y);
    case 2: return dot_block<2>(l, w, x, o0, rows, y);
    case 3: return dot_block<3>(l, w, x, o0, rows, y);
    default: return dot_block<4>(l, w, x, o0, rows, y);
  }
}

// Rows [o0, o0 + rows) of the weight widened to float into `out` (rows x l.in).
void widen_rows(const Linear& l, int64_t o0, int64_t rows, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* row = l.w + (o0 + r) * l.in;
    int64_t j = 0;
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
    for (; j + kLanes <= l.in; j += kLanes) {
      if (r == 0 && j % 64 == 0) prefetch_ahead(l, o0, j);
      store(out + r * l.in + j, widen(row + j));
    }
#endif
    for (; j < l.in; ++j) out[r * l.in + j] = static_cast<float>(row[j]);
  }
}

// y[b, o] = scale[o] * sum_j w[o, j] x[b, j] + bias[o] for the B rows of x: each thread
// streams its share of the weight rows once per step, whatever B. Up to kSeqs sequences
// widen each weight vector in registers; more widen each block of rows once, into a
// buffer that stays in L1, and every group of kSeqs reads it from there.
void gemv(const Linear& l, const float* x, int64_t batch, float* y, int threads) {
  const int64_t blocks = (l.out + kRows - 1) / kRows;
  if (batch <= kSeqs) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t o0 = blk * kRows, rows = std::min(kRows, l.out - o0);
      dot_block(l, l.w + o0 * l.in, x, batch, o0, rows, y);
    }
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> rows_f(kRows * l.in);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t o0 = blk * kRows, rows = std::min(kRows, l.out - o0);
      widen_rows(l, o0, rows, rows_f.data());
      for (int64_t s0 = 0; s0 < batch; s0 += kSeqs)
        dot_block(l, rows_f.data(), x + s0 * l.in, std::min(kSeqs, batch - s0), o0, rows, y + s0 * l.out);
    }
  }
}

void rms_norm(const float* x, const float* w, int64_t n, double eps, float* y) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += x[j] * x[j];
  const float inv = 1.f / std::sqrt(sum / static_cast<float>(n) + static_cast<float>(eps));
  for (int64_t j = 0; j < n; ++j) y[j] = x[j] * inv * w[j];
}

float activate(float g, int64_t act) {
  if (act == 0) return g / (1.f + std::exp(-g));  // silu
  const float c = 0.7978845608028654f;            // gelu, tanh approximation
  return 0.5f * g * (1.f + std::tanh(c * (g + 0.044715f * g * g * g)));
}

// One query head's attention over n context positions, softmax in float32: the keys of
// position t start at kv + off[t] + g * d, its values at kv + off[t] + (kv_heads + g) * d.
// softcap > 0: scores soft-capped (Gemma 2). score: room for n floats.
void attend(const float* q, const float* kv, const int64_t* off, int64_t n, int64_t g,
            int64_t kv_heads, int64_t d, float scale, float softcap, float* score, float* out) {
  float best = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    const float* k = kv + off[t] + g * d;
    float dot = 0.f;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < d; ++i) dot += q[i] * k[i];
    float s = dot * scale;
    if (softcap > 0.f) s = softcap * std::tanh(s / softcap);
    score[t] = s;
    best = std::max(best, s);
  }
  float total = 0.f;
  for (int64_t t = 0; t < n; ++t) total += (score[t] = std::exp(score[t] - best));
  std::fill(out, out + d, 0.f);
  const float norm = 1.f / total;
  for (int64_t t = 0; t < n; ++t) {
    const float* v = kv + off[t] + (kv_heads + g) * d;
    const float w = score[t] * norm;
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) out[i] += w * v[i];
  }
}

}  // namespace

// Every layer of one decode step and the logits. x: [B, hidden] float32, the new tokens'
// embeddings (overwritten). layers: 11 tensors per layer (input norm, qkv weight, scale,
// bias (empty: none), o weight, scale, post-attention norm, gate_up weight, scale, down
// weight, scale). kv: [layers, blocks, block_size, 2K, D] float32, written at each token's
// slot. tables: [B, blocks] int64, each sequence's blocks. positions: [B] int64, the new
// tokens' positions (each attends to positions 0..p, or the last `window` of them).
torch::Tensor decode(torch::Tensor x, std::vector<torch::Tensor> layers, torch::Tensor kv,
                     torch::Tensor tables, torch::Tensor positions, torch::Tensor inv_freq,
                     torch::Tensor local_inv_freq, std::vector<int64_t> windows,
                     torch::Tensor final_norm, torch::Tensor head_w, torch::Tensor head_s,
                     int64_t heads, int64_t kv_heads, int64_t head_dim, double eps, double scale,
                     int64_t act) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.is_contiguous() && x.dim() == 2, "x");
  TORCH_CHECK(kv.dtype() == torch::kFloat32 && kv.is_contiguous() && kv.dim() == 5, "kv cache");
  TORCH_CHECK(tables.dtype() == torch::kInt64 && tables.is_contiguous(), "block tables");
  TORCH_CHECK(positions.dtype() == torch::kInt64 && positions.numel() == x.size(0), "positions");
  const int64_t n_layers = kv.size(0);
  TORCH_CHECK(static_cast<int64_t>(layers.size()) == 11 * n_layers, "11 tensors per layer");
  TORCH_CHECK(static_cast<int64_t>(windows.size()) == n_layers, "a window per layer");
  const int64_t batch = x.size(0), hidden = x.size(1), d = head_dim, half = d / 2;
  const int64_t block_size = kv.size(2), rows = 2 * kv_heads;
  const int64_t layer_stride = kv.stride(0);
  const int64_t group = heads / kv_heads, q_width = heads * d, qkv_width = (heads + rows) * d;
  const int threads = std::max(1, at::get_num_threads());
  float* xs = x.data_ptr<float>();
  float* cache = kv.data_ptr<float>();
  const int64_t* table = tables.data_ptr<int64_t>();
  const int64_t* pos = positions.data_ptr<int64_t>();
  const int64_t table_width = tables.size(1);

  auto slot = [&](int64_t b, int64_t t) {
    return table[b * table_width + t / block_size] * block_size + t % block_size;
  };
  // Rotary angles of each token, for the global layers' base and the local layers'.
  std::vector<float> cos_g(batch * half), sin_g(batch * half), cos_l, sin_l;
  auto angles = [&](const torch::Tensor& freq, std::vector<float>& c, std::vector<float>& s) {
    const float* f = freq.data_ptr<float>();
    c.resize(batch * half);
    s.resize(batch * half);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < half; ++i) {
        const float a = static_cast<float>(pos[b]) * f[i];
        c[b * half + i] = std::cos(a);
        s[b * half + i] = std::sin(a);
      }
  };
  angles(inv_freq, cos_g, sin_g);
  const bool local = local_inv_freq.defined() && local_inv_freq.numel() > 0;
  if (local) angles(local_inv_freq, cos_l, sin_l);

  std::vector<float> h(batch * hidden), qkv(batch * qkv_width), attn(batch * q_width);
  std::vector<float> o(batch * hidden), down(batch * hidden);
  int64_t inter = 0;
  for (int64_t l = 0; l < n_layers; ++l) inter = std::max(inter, layers[11 * l + 7].size(0) / 2);
  std::vector<float> gate_up(batch * 2 * inter), mlp(batch * inter), scores;
  std::vector<std::vector<int64_t>> offsets(batch);
  std::vector<int64_t> first(batch);

  for (int64_t l = 0; l < n_layers; ++l) {
    const torch::Tensor* p = &layers[11 * l];
    const Linear qkv_l = linear(p[1], p[2], p[3]), o_l = linear(p[4], p[5], torch::Tensor());
    const Linear gu_l = linear(p[7], p[8], torch::Tensor()), down_l = linear(p[9], p[10], torch::Tensor());
    const float* norm1 = p[0].data_ptr<float>();
    const float* norm2 = p[6].data_ptr<float>();
    const int64_t window = windows[l];
    const float* cs = (window && local) ? cos_l.data() : cos_g.data();
    const float* sn = (window && local) ? sin_l.data() : sin_g.data();
    float* layer_cache = cache + l * layer_stride;

    for (int64_t b = 0; b < batch; ++b) rms_norm(xs + b * hidden, norm1, hidden, eps, &h[b * hidden]);
    gemv(qkv_l, h.data(), batch, qkv.data(), threads);
    // Rotary on q and k, then k and v into the cache at each token's slot.
    for (int64_t b = 0; b < batch; ++b) {
      float* row = &qkv[b * qkv_width];
      for (int64_t head = 0; head < heads + kv_heads; ++head) {
        float* v = row + head * d;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[2 * i], c = v[2 * i + 1], co = cs[b * half + i], si = sn[b * half + i];
          v[2 * i] = a * co - c * si;
          v[2 * i + 1] = a * si + c * co;
        }
      }
      std::copy(row + q_width, row + qkv_width, layer_cache + slot(b, pos[b]) * rows * d);
    }
    // Attention: each (sequence, head) over its context, softmax in float32. Where each
    // context position's keys and values lie is worked out once per sequence.
    int64_t longest = 0;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t length = pos[b] + 1;
      first[b] = window ? std::max<int64_t>(0, length - window) : 0;
      const int64_t n = length - first[b];
      longest = std::max(longest, n);
      offsets[b].resize(n);
      for (int64_t t = 0; t < n; ++t) offsets[b][t] = slot(b, first[b] + t) * rows * d;
    }
    scores.resize(batch * heads * longest);
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t head = 0; head < heads; ++head)
        attend(&qkv[b * qkv_width + head * d], layer_cache, offsets[b].data(),
               static_cast<int64_t>(offsets[b].size()), head / group, kv_heads, d,
               static_cast<float>(scale), 0.f, &scores[(b * heads + head) * longest],
               &attn[b * q_width + head * d]);
    gemv(o_l, attn.data(), batch, o.data(), threads);
    for (int64_t i = 0; i < batch * hidden; ++i) xs[i] += o[i];
    for (int64_t b = 0; b < batch; ++b) rms_norm(xs + b * hidden, norm2, hidden, eps, &h[b * hidden]);
    gemv(gu_l, h.data(), batch, gate_up.data(), threads);
    const int64_t width = gu_l.out / 2;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t k = 0; k < batch * width; ++k) {
      const int64_t b = k / width, i = k % width;
      mlp[k] = activate(gate_up[b * 2 * width + i], act) * gate_up[b * 2 * width + width + i];
    }
    gemv(down_l, mlp.data(), batch, down.data(), threads);
    for (int64_t i = 0; i < batch * hidden; ++i) xs[i] += down[i];
  }
  const float* fnorm = final_norm.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) rms_norm(xs + b * hidden, fnorm, hidden, eps, &h[b * hidden]);
  const Linear head = linear(head_w, head_s, torch::Tensor());
  auto logits = torch::empty({batch, head.out}, x.options());
  gemv(head, h.data(), batch, logits.data_ptr<float>(), threads);
  return logits;
}

// Attention of one new token per sequence over its context in the paged cache, for ATen's
// steps (engine/model.py), in place of gathering each context into a padded copy. q: [B,
// H, D] float32; cache: [blocks, block_size, 2K, D] float32 (one layer: keys in the first
// K heads, values in the last K); tables: [B, blocks] int32; lengths: [B] int32, each
// context's length (its new token included). window > 0: only the last `window`
// positions. Returns [B, H, D], as paged_attention.paged_decode (the Triton kernel); a
// row of length 0 (padding) gets zeros.
torch::Tensor paged_decode(torch::Tensor q, torch::Tensor cache, torch::Tensor tables,
                           torch::Tensor lengths, double scale, double softcap, int64_t window) {
  TORCH_CHECK(q.dtype() == torch::kFloat32 && q.dim() == 3, "q: float32 [B, H, D]");
  TORCH_CHECK(cache.dtype() == torch::kFloat32 && cache.is_contiguous() && cache.dim() == 4,
              "cache: float32 [blocks, block_size, 2K, D]");
  TORCH_CHECK(tables.dtype() == torch::kInt32 && tables.is_contiguous() && tables.dim() == 2, "tables");
  TORCH_CHECK(lengths.dtype() == torch::kInt32 && lengths.numel() == q.size(0), "lengths");
  q = q.contiguous();
  const int64_t batch = q.size(0), heads = q.size(1), d = q.size(2);
  const int64_t block_size = cache.size(1), rows = cache.size(2), kv_heads = rows / 2;
  TORCH_CHECK(cache.size(3) == d && heads % kv_heads == 0, "q and cache disagree");
  const int64_t group = heads / kv_heads, width = tables.size(1);
  const int32_t* table = tables.data_ptr<int32_t>();
  const int32_t* length = lengths.data_ptr<int32_t>();
  std::vector<std::vector<int64_t>> offsets(batch);
  int64_t longest = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n_all = length[b], first = window > 0 ? std::max<int64_t>(0, n_all - window) : 0;
    TORCH_CHECK(n_all >= 0 && (n_all + block_size - 1) / block_size <= width, "a length beyond its table");
    offsets[b].resize(n_all - first);
    for (int64_t t = first; t < n_all; ++t)
      offsets[b][t - first] = (table[b * width + t / block_size] * block_size + t % block_size) * rows * d;
    longest = std::max(longest, n_all - first);
  }
  auto out = torch::empty_like(q);
  std::vector<float> scores(batch * heads * longest);
  const float* kv = cache.data_ptr<float>();
  const float* qs = q.data_ptr<float>();
  float* os = out.data_ptr<float>();
  const int threads = std::max(1, at::get_num_threads());
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t head = 0; head < heads; ++head)
      attend(qs + (b * heads + head) * d, kv, offsets[b].data(), static_cast<int64_t>(offsets[b].size()),
             head / group, kv_heads, d, static_cast<float>(scale), static_cast<float>(softcap),
             &scores[(b * heads + head) * longest], os + (b * heads + head) * d);
  return out;
}

// Floats per vector of the instruction set this build uses (16: AVX-512, 8: AVX2, 1: none).
int64_t lanes() {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  return kLanes;
#else
  return 1;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("decode", &decode, "Every layer of a decode step and the logits (int8 weights)");
  m.def("paged_decode", &paged_decode, "Decode attention over the paged cache (ATen's steps)");
  m.def("lanes", &lanes, "Floats per vector of the instruction set this build uses");
}

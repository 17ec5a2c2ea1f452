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
#include <sys/syscall.h>
#include <unistd.h>

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

#if defined(__AMX_INT8__) && defined(__AMX_TILE__) && defined(__AVX512F__)
#define BOSUN_AMX 1
// Wide batches on AMX: int8 weights times int8 activations in tiles, int32 sums. Each
// sequence's activations are quantized per block of 64 (one tile row of int8), with their
// own scale: one outlier spoils only its block (benchmarks/quality.py measured the cost of
// per-64 blocks on decoded text at 0.7%; one scale per token: 3.2%). A tile product covers
// 16 weight rows, 16 sequences and one block; its int32 sums are scaled into float32 and
// accumulated, so the float32 sums differ from the float32 path only by the activations'
// rounding.
constexpr int64_t kBlock = 64;  // activations per scale: int8 products per tile row
constexpr int64_t kTile = 16;   // weight rows per tile, and sequences

// Linux hands out AMX tile state to a process that asks for it (once; oneDNN asks too).
bool amx_permitted() {
  static const bool granted = [] {
    constexpr long kRequestPermission = 0x1023, kTileData = 18;  // ARCH_REQ_XCOMP_PERM, XTILEDATA
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  }();
  return granted;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-7: 16 rows of 64 bytes each. The configuration is per thread, and oneDNN may have
// set another one on the same thread: each parallel region sets its own.
void configure_tiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kTile;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
}

// A batch's activations, quantized: per group of 16 sequences and block of 64 columns,
// the int8 tile (row r: each sequence's four values 4r..4r+3, the layout the tile product
// takes its second operand in) and the 16 scales.
struct Quantized {
  std::vector<int8_t> tiles;
  std::vector<float> scales;
  int64_t groups = 0, blocks = 0;
  const int8_t* tile(int64_t g, int64_t kb) const { return &tiles[(g * blocks + kb) * kTile * kBlock]; }
  const float* scale(int64_t g, int64_t kb) const { return &scales[(g * blocks + kb) * kTile]; }
};

void quantize(const float* x, int64_t batch, int64_t in, int threads, Quantized& out) {
  out.groups = (batch + kTile - 1) / kTile;
  out.blocks = in / kBlock;
  out.tiles.assign(out.groups * out.blocks * kTile * kBlock, 0);  // padding sequences: zeros
  out.scales.assign(out.groups * out.blocks * kTile, 0.f);
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t s = 0; s < batch; ++s)
    for (int64_t kb = 0; kb < out.blocks; ++kb) {
      const float* v = x + s * in + kb * kBlock;
      __m512 part[4], top = _mm512_setzero_ps();
      for (int i = 0; i < 4; ++i) {
        part[i] = _mm512_loadu_ps(v + 16 * i);
        top = _mm512_max_ps(top, _mm512_abs_ps(part[i]));
      }
      const float most = _mm512_reduce_max_ps(top);
      const __m512 inv = _mm512_set1_ps(most > 0.f ? 127.f / most : 0.f);
      alignas(64) int8_t q[kBlock];
      for (int i = 0; i < 4; ++i)  // round to nearest (even): |q| <= 127
        _mm_store_si128(reinterpret_cast<__m128i*>(q + 16 * i),
                        _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(part[i], inv))));
      const int64_t g = s / kTile, n = s % kTile;
      int32_t* tile = reinterpret_cast<int32_t*>(out.tiles.data() + (g * out.blocks + kb) * kTile * kBlock);
      const int32_t* quads = reinterpret_cast<const int32_t*>(q);
      for (int64_t r = 0; r < kTile; ++r) tile[r * kTile + n] = quads[r];
      out.scales[(g * out.blocks + kb) * kTile + n] = most / 127.f;
    }
}

// y = x w^T as gemv, for the first (out / 16) * 16 rows of the weight; the caller takes
// the rest. Each thread streams its share of the weight once: a block of 16 rows meets
// every group of 16 sequences while it is in L1.
void gemm_amx(const Linear& l, const Quantized& x, int64_t batch, float* y, int threads) {
  const int64_t row_tiles = l.out / kTile;
#pragma omp parallel num_threads(threads)
  {
    configure_tiles();
    alignas(64) int32_t sums[kTile][kTile];
    alignas(64) float out[kTile][kTile];
#pragma omp for schedule(static)
    for (int64_t rt = 0; rt < row_tiles; ++rt) {
      const int8_t* w = l.w + rt * kTile * l.in;
      for (int64_t g = 0; g < x.groups; ++g) {
        __m512 acc[kTile];
        for (auto& a : acc) a = _mm512_setzero_ps();
        for (int64_t kb = 0; kb < x.blocks; ++kb) {
          if (g == 0 && rt + 1 < row_tiles)  // the next rows' block, while these multiply
            for (int64_t r = 0; r < kTile; ++r)
              _mm_prefetch(reinterpret_cast<const char*>(w + (kTile + r) * l.in + kb * kBlock), _MM_HINT_T0);
          _tile_loadd(0, w + kb * kBlock, l.in);
          _tile_loadd(1, x.tile(g, kb), 64);
          _tile_zero(2);
          _tile_dpbssd(2, 0, 1);
          _tile_stored(2, sums, 64);
          const __m512 scale = _mm512_loadu_ps(x.scale(g, kb));
          for (int64_t r = 0; r < kTile; ++r)
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(sums[r])), scale, acc[r]);
        }
        for (int64_t r = 0; r < kTile; ++r) _mm512_store_ps(out[r], acc[r]);
        const int64_t seqs = std::min(kTile, batch - g * kTile);
        for (int64_t s = 0; s < seqs; ++s)
          for (int64_t r = 0; r < kTile; ++r) {
            const int64_t o = rt * kTile + r;
            y[(g * kTile + s) * l.out + o] = out[r][s] * l.scale[o] + (l.bias ? l.bias[o] : 0.f);
          }
      }
    }
    _tile_release();
  }
}
#endif

// y[b, o] = scale[o] * sum_j w[o, j] x[b, j] + bias[o] for the B rows of x: each thread
// streams its share of the weight rows once per step, whatever B. Up to kSeqs sequences
// widen each weight vector in registers; more widen each block of rows once, into a
// buffer that stays in L1, and every group of kSeqs reads it from there. From int8_batch
// sequences on (0: never), where the build has AMX, the products are int8 in tiles.
void gemv(const Linear& l, const float* x, int64_t batch, float* y, int threads, int64_t int8_batch) {
  const int64_t blocks = (l.out + kRows - 1) / kRows;
#ifdef BOSUN_AMX
  if (int8_batch > 0 && batch >= int8_batch && l.in % kBlock == 0 && amx_permitted()) {
    thread_local Quantized quantized;
    quantize(x, batch, l.in, threads, quantized);
    gemm_amx(l, quantized, batch, y, threads);
    for (int64_t o0 = l.out / kTile * kTile; o0 < l.out; o0 += kRows)  // rows past the tiles
      for (int64_t s0 = 0; s0 < batch; s0 += kSeqs)
        dot_block(l, l.w + o0 * l.in, x + s0 * l.in, std::min(kSeqs, batch - s0), o0,
                  std::min(kRows, l.out - o0), y + s0 * l.out);
    return;
  }
#endif
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

#if defined(__AVX512F__)
// exp(x) of 16 floats at once: 2^n times 2^f, f in [-1/2, 1/2], by its Taylor series in
// f ln 2 to the 7th power (relative error below 1e-8 before rounding). Below -104 it gives
// about 0, above 88 infinity.
inline __m512 exp16(__m512 x) {
  const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.f)), _mm512_set1_ps(1.4426950408889634f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  constexpr float kCoefficients[] = {1.5252734e-5f, 1.5403530e-4f, 1.3333558e-3f, 9.6181291e-3f,
                                     5.5504109e-2f, 2.4022651e-1f, 6.9314718e-1f, 1.f};
  __m512 p = _mm512_set1_ps(kCoefficients[0]);
  for (int i = 1; i < 8; ++i) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kCoefficients[i]));
  return _mm512_scalef_ps(p, n);
}

inline void prefetch_row(const float* p, int64_t d) {
  for (int64_t i = 0; i < d; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
}

// The query heads of one group (those sharing key/value head g) over n positions, as
// attend() for each: each position's key and value are read once for the whole group, in
// chunks of 16 positions that stay in L1 while every head of the group uses them. d = 16
// VD (a constant, so that a row's vectors stay in registers). score: room for group * n
// floats.
template <int64_t VD>
void attend_group(const float* q, const float* kv, const int64_t* off, int64_t n, int64_t g,
                  int64_t group, int64_t kv_heads, float scale, float softcap, float* score,
                  float* out) {
  constexpr int64_t d = 16 * VD, vd = VD;
  constexpr int64_t kChunk = 16, kAheadPositions = 16;
  for (int64_t t = 0; t < std::min(n, kAheadPositions); ++t) prefetch_row(kv + off[t] + g * d, d);
  for (int64_t t = 0; t < n; ++t) {  // scores
    if (t + kAheadPositions < n) prefetch_row(kv + off[t + kAheadPositions] + g * d, d);
    const float* k = kv + off[t] + g * d;
    __m512 kv_row[VD];
    for (int64_t i = 0; i < vd; ++i) kv_row[i] = _mm512_loadu_ps(k + 16 * i);
    for (int64_t j = 0; j < group; ++j) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t i = 0; i < vd; ++i) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + j * d + 16 * i), kv_row[i], acc);
      score[j * n + t] = _mm512_reduce_add_ps(acc) * scale;
    }
  }
  for (int64_t j = 0; j < group; ++j) {  // softmax of each head's scores, in place
    float* s = score + j * n;
    if (softcap > 0.f)
      for (int64_t t = 0; t < n; ++t) s[t] = softcap * std::tanh(s[t] / softcap);
    __m512 top = _mm512_set1_ps(-INFINITY);
    for (int64_t t = 0; t < n; t += 16) {
      const __mmask16 m = t + 16 <= n ? 0xffff : static_cast<__mmask16>((1u << (n - t)) - 1);
      top = _mm512_mask_max_ps(top, m, top, _mm512_maskz_loadu_ps(m, s + t));
    }
    const __m512 best = _mm512_set1_ps(_mm512_reduce_max_ps(top));
    __m512 total = _mm512_setzero_ps();
    for (int64_t t = 0; t < n; t += 16) {
      const __mmask16 m = t + 16 <= n ? 0xffff : static_cast<__mmask16>((1u << (n - t)) - 1);
      const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + t), best));
      total = _mm512_mask_add_ps(total, m, total, e);
      _mm512_mask_storeu_ps(s + t, m, e);
    }
    const __m512 norm = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(total));
    for (int64_t t = 0; t < n; t += 16) {
      const __mmask16 m = t + 16 <= n ? 0xffff : static_cast<__mmask16>((1u << (n - t)) - 1);
      _mm512_mask_storeu_ps(s + t, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + t), norm));
    }
  }
  for (int64_t t = 0; t < std::min(n, kAheadPositions); ++t) prefetch_row(kv + off[t] + (kv_heads + g) * d, d);
  std::fill(out, out + group * d, 0.f);
  for (int64_t t0 = 0; t0 < n; t0 += kChunk) {  // values, a chunk of positions at a time
    const int64_t t1 = std::min(n, t0 + kChunk);
    for (int64_t t = t1; t < std::min(n, t1 + kAheadPositions); ++t)
      prefetch_row(kv + off[t] + (kv_heads + g) * d, d);
    for (int64_t j = 0; j < group; ++j) {
      __m512 acc[VD];
      for (int64_t i = 0; i < vd; ++i) acc[i] = _mm512_loadu_ps(out + j * d + 16 * i);
      for (int64_t t = t0; t < t1; ++t) {
        const float* v = kv + off[t] + (kv_heads + g) * d;
        const __m512 w = _mm512_set1_ps(score[j * n + t]);
        for (int64_t i = 0; i < vd; ++i) acc[i] = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 16 * i), acc[i]);
      }
      for (int64_t i = 0; i < vd; ++i) _mm512_storeu_ps(out + j * d + 16 * i, acc[i]);
    }
  }
}

// attend_group for this head size, if it is one with a kernel; false: use attend().
bool attend_group(int64_t d, const float* q, const float* kv, const int64_t* off, int64_t n,
                  int64_t g, int64_t group, int64_t kv_heads, float scale, float softcap,
                  float* score, float* out) {
  switch (d) {
    case 64: attend_group<4>(q, kv, off, n, g, group, kv_heads, scale, softcap, score, out); return true;
    case 128: attend_group<8>(q, kv, off, n, g, group, kv_heads, scale, softcap, score, out); return true;
    case 256: attend_group<16>(q, kv, off, n, g, group, kv_heads, scale, softcap, score, out); return true;
    case 16: attend_group<1>(q, kv, off, n, g, group, kv_heads, scale, softcap, score, out); return true;
    case 32: attend_group<2>(q, kv, off, n, g, group, kv_heads, scale, softcap, score, out); return true;
    default: return false;
  }
}
#endif

// The gated MLP's activation of one sequence: out = act(gate) * up, gate_up = [gate, up]
// (act: 0 SiLU, 1 tanh-GELU).
void gated(const float* gate_up, int64_t width, int64_t act, float* out) {
  int64_t i = 0;
#if defined(__AVX512F__)
  if (act == 0)
    for (; i + 16 <= width; i += 16) {  // g / (1 + exp(-g)): exp(-g) overflows to inf for g < -88, giving -0
      const __m512 g = _mm512_loadu_ps(gate_up + i);
      const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
      const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.f), e));
      _mm512_storeu_ps(out + i, _mm512_mul_ps(silu, _mm512_loadu_ps(gate_up + width + i)));
    }
#endif
  for (; i < width; ++i) out[i] = activate(gate_up[i], act) * gate_up[width + i];
}

// Whether this build attends a group of heads at once at head size d (attend_group).
bool grouped(int64_t d) {
#if defined(__AVX512F__)
  return d == 16 || d == 32 || d == 64 || d == 128 || d == 256;
#else
  (void)d;
  return false;
#endif
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
                     int64_t act, int64_t int8_batch) {
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

    // The loops over sequences run on the team where there are enough of them to share
    // (the cache's lines a token's keys and values go to are cold: their misses overlap).
    const bool share = batch >= 4;
#pragma omp parallel for num_threads(threads) schedule(static) if (share)
    for (int64_t b = 0; b < batch; ++b) rms_norm(xs + b * hidden, norm1, hidden, eps, &h[b * hidden]);
    gemv(qkv_l, h.data(), batch, qkv.data(), threads, int8_batch);
    // Rotary on q and k, then k and v into the cache at each token's slot.
#pragma omp parallel for num_threads(threads) schedule(static) if (share)
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
#if defined(__AVX512F__)
    if (grouped(d)) {
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t g = 0; g < kv_heads; ++g)
          attend_group(d, &qkv[b * qkv_width + g * group * d], layer_cache, offsets[b].data(),
                       static_cast<int64_t>(offsets[b].size()), g, group, kv_heads,
                       static_cast<float>(scale), 0.f, &scores[(b * heads + g * group) * longest],
                       &attn[b * q_width + g * group * d]);
    } else
#endif
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t head = 0; head < heads; ++head)
        attend(&qkv[b * qkv_width + head * d], layer_cache, offsets[b].data(),
               static_cast<int64_t>(offsets[b].size()), head / group, kv_heads, d,
               static_cast<float>(scale), 0.f, &scores[(b * heads + head) * longest],
               &attn[b * q_width + head * d]);
    gemv(o_l, attn.data(), batch, o.data(), threads, int8_batch);
#pragma omp parallel for num_threads(threads) schedule(static) if (share)
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = b * hidden; i < (b + 1) * hidden; ++i) xs[i] += o[i];
      rms_norm(xs + b * hidden, norm2, hidden, eps, &h[b * hidden]);
    }
    gemv(gu_l, h.data(), batch, gate_up.data(), threads, int8_batch);
    const int64_t width = gu_l.out / 2;
#pragma omp parallel for num_threads(threads) schedule(static) if (share)
    for (int64_t b = 0; b < batch; ++b) gated(&gate_up[b * 2 * width], width, act, &mlp[b * width]);
    gemv(down_l, mlp.data(), batch, down.data(), threads, int8_batch);
#pragma omp parallel for num_threads(threads) schedule(static) if (share)
    for (int64_t i = 0; i < batch * hidden; ++i) xs[i] += down[i];
  }
  const float* fnorm = final_norm.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) rms_norm(xs + b * hidden, fnorm, hidden, eps, &h[b * hidden]);
  const Linear head = linear(head_w, head_s, torch::Tensor());
  auto logits = torch::empty({batch, head.out}, x.options());
  gemv(head, h.data(), batch, logits.data_ptr<float>(), threads, int8_batch);
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
#if defined(__AVX512F__)
  if (grouped(d)) {
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t g = 0; g < kv_heads; ++g)
        attend_group(d, qs + (b * heads + g * group) * d, kv, offsets[b].data(),
                     static_cast<int64_t>(offsets[b].size()), g, group, kv_heads,
                     static_cast<float>(scale), static_cast<float>(softcap),
                     &scores[(b * heads + g * group) * longest], os + (b * heads + g * group) * d);
    return out;
  }
#endif
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t head = 0; head < heads; ++head)
      attend(qs + (b * heads + head) * d, kv, offsets[b].data(), static_cast<int64_t>(offsets[b].size()),
             head / group, kv_heads, d, static_cast<float>(scale), static_cast<float>(softcap),
             &scores[(b * heads + head) * longest], os + (b * heads + head) * d);
  return out;
}

// y = x w^T * scale + bias through the decode step's products (x: [B, in] float32; w:
// [out, in] int8; scale: [out] float32; bias: [out] float32 or empty): the same code the
// step runs, for tests and benchmarks; int8_batch as the step's.
torch::Tensor linear_int8(torch::Tensor x, torch::Tensor w, torch::Tensor scale, torch::Tensor bias,
                          int64_t int8_batch) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.is_contiguous() && x.dim() == 2, "x: float32 [B, in]");
  const Linear l = linear(w, scale, bias);
  TORCH_CHECK(x.size(1) == l.in, "x and w disagree");
  auto y = torch::empty({x.size(0), l.out}, x.options());
  gemv(l, x.data_ptr<float>(), x.size(0), y.data_ptr<float>(), std::max(1, at::get_num_threads()), int8_batch);
  return y;
}

// Whether wide batches can multiply in int8 on AMX tiles: built with AMX, and the kernel
// lets this process use them.
bool int8_tiles() {
#ifdef BOSUN_AMX
  return amx_permitted();
#else
  return false;
#endif
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
  m.def("linear_int8", &linear_int8, "The step's int8 products, on their own");
  m.def("int8_tiles", &int8_tiles, "Whether wide batches multiply in int8 on AMX tiles");
}

// pianoscribe_native: the synthesizer's hot loop (issue 4).
//
// Holds sample banks and a flattened note corpus in memory and, on a pool of threads with the GIL
// released, renders segments (runs of consecutive 1024-sample buffers) straight into preallocated numpy
// arrays: the FFT magnitude of each buffer, per-key energy, and the per-key active/onset flags. The same
// mixing code renders whole pieces to audio (`render`) and the same analysis code turns any audio into FFT
// magnitudes (`analyze`), so training data, rendered test audio and inference all see one definition.
//
// No Python logic and no file I/O here: planning (which piece, bank, position, augmentation draws) is
// vectorized numpy in builder/synth.py; this file only mixes, measures and transforms.
//
// Why the FFT lives here and not in one batched scipy.fft.rfft call (measured, see docs/dataset.md):
// pocketfft's C++ plan executed on 8/16 buffers at once in SIMD lanes costs ~1 us per buffer, while the
// numpy route costs a float32 round trip through memory, a magnitude pass and a float16 astype (seconds per
// million rows) on top of scipy's own FFT. Doing window, FFT, magnitude, tilt and the float16 conversion
// while the buffer is still in cache is what makes the engine several times faster than numpy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#define POCKETFFT_NO_MULTITHREADING
#include "pocketfft_hdronly.hpp"

namespace py = pybind11;

namespace {

constexpr int kKeys = 88;
constexpr int kLowestKey = 21;           // MIDI number of key index 0
constexpr int kBuffer = 1024;            // samples per buffer (hop = buffer: frames do not overlap)
constexpr int kBins = kBuffer / 2;       // bins 0..511 are kept, Nyquist is dropped
constexpr double kSampleRate = 44100.0;
constexpr int kMinRowsPerTask = 64;      // a task renders at least this many rows (segments are never split)
constexpr int kLaneSum = 16;             // sums of squares run in this many independent partial sums
constexpr int kPrefetchLines = 32;       // cache lines fetched ahead at the start of each voice
constexpr int kPrefetchRun = 256;        // samples mixed between software prefetches of the recording ahead
constexpr int kDetuneRun = 1024;         // longest run a detuned voice is resampled in without re-anchoring
// The long window (`fft_long_magnitude`): 4096 samples, buffers f-3 .. f of row f (causal: it ends with its
// row's buffer, so a streaming caller has it as soon as that buffer arrives), for the frequency resolution of
// the bass: 10.8 Hz bins instead of 43 Hz. Always a periodic Hann window; magnitudes / 4, so a steady sinusoid
// reads about as in the 1024-sample FFT.
constexpr int kLongWindow = 4096;
constexpr int kLongBefore = 3;           // whole buffers the long window reaches before its row's buffer
constexpr int kLongAfter = 0;            // ... and after it
constexpr int kLongMaxBins = kLongWindow / 2;

using Vec = pocketfft::detail::vtype_t<float>;  // the SIMD type pocketfft uses internally
constexpr int kLanes = int(sizeof(Vec) / sizeof(float));

// ---------------------------------------------------------------------------------------------- data

// A bank held as float32 (the caller's array, kept alive, no copy) or as int16 (a packed copy, one scale per
// recording: half the memory and half the memory traffic, which is what bounds the mixing loop; the
// quantization noise is ~100 dB below each recording's peak).
struct BankData {
  py::array_t<float, py::array::c_style> audio;
  const float *samples = nullptr;         // float32 mode
  std::unique_ptr<int16_t[]> pcm;         // int16 mode (every element written before use: no zeroing)
  int64_t total = 0;
  int layers = 0;
  std::vector<int64_t> offsets;   // [88 * layers] into samples or pcm
  std::vector<int64_t> lengths;   // [88 * layers]
  std::vector<float> scales;      // [88 * layers] amplitude of one int16 step (1 in float32 mode)
  std::vector<float> layer_velocities;
  int64_t longest = 0;            // longest recording, bounds how far back a sounding note can start
  bool int16() const { return pcm != nullptr; }
};

struct NoteTable {
  std::vector<int64_t> onset, offset;  // samples, sorted by onset within a piece
  std::vector<uint8_t> key, velocity;  // MIDI key 21..108, velocity 1..127
  std::vector<int64_t> piece_start;    // CSR: notes of piece p are [piece_start[p], piece_start[p+1])
  std::vector<int64_t> piece_longest;  // longest note (offset - onset) in each piece
  int64_t pieces() const { return piece_start.empty() ? 0 : int64_t(piece_start.size()) - 1; }
};

// Per-segment inputs (all arrays of length segments), drawn by the Python planner.
struct SegmentPlan {
  const int64_t *piece;
  const int32_t *bank;
  const int64_t *start_sample;
  const float *gain;             // linear, multiplies every note of the segment
  const double *detune_ratio;    // playback-rate ratio (1 = no resampling)
  const float *noise_amplitude;  // std of the added white noise
  const int64_t *noise_offset;   // where in the noise table the segment's noise starts
  const float *tilt_db;          // spectral tilt in dB per octave around tilt_pivot_hz
};

struct Options {
  int frames = 16;               // buffers per segment
  int64_t release_samples = 0;
  float velocity_exponent = 1.f;
  bool hann = true;
  std::vector<float> octaves;    // [512] octaves of each bin above the tilt pivot (bin 0 counts as bin 1)
  std::vector<float> long_octaves;  // [long bins] the same for the long window's bins
};

struct Outputs {
  void *fft = nullptr;           // [rows, 512] float16 or float32
  bool fft_half = true;
  float *energy = nullptr;       // [rows, 88]
  uint8_t *active = nullptr;     // [rows, 88]
  uint8_t *onset = nullptr;      // [rows, 88]
  void *fft_long = nullptr;      // [rows, long_bins] float16 or float32, or none
  bool fft_long_half = true;
  int long_bins = 0;
};

// One sounding note inside a span, resolved against a bank.
struct Voice {
  int key_index;
  const float *sample;           // float32 recording, or
  const int16_t *pcm;            // int16 recording (gain then includes its scale)
  int64_t length;
  int64_t onset, offset;         // samples (absolute)
  float gain;
};

// ---------------------------------------------------------------------------------------------- helpers

inline int layer_for_velocity(int velocity, int layers) {
  // min(floor(velocity / 127 * L), L - 1) in exact integer arithmetic (the banks.layer_for_velocity rule)
  int layer = (velocity * layers) / 127;
  return std::min(std::max(layer, 0), layers - 1);
}

inline uint16_t float_to_half_bits(float value) {
  // Round-to-nearest-even, like numpy's astype(float16): used only where F16C is missing.
  uint32_t x;
  std::memcpy(&x, &value, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t magnitude = x & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0u));
  if (magnitude >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: infinity
  if (magnitude < 0x38800000u) {                                   // below the smallest normal half
    if (magnitude < 0x33000000u) return uint16_t(sign);            // rounds to zero
    uint32_t exponent = magnitude >> 23;
    uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exponent;                              // 14..24
    uint32_t half = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = ((magnitude - 0x38000000u) >> 13);
  uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return uint16_t(sign | half);
}

inline void store_row_half(const float *values, uint16_t *out, int count) {
  int i = 0;
#if defined(__F16C__)
  for (; i + 8 <= count; i += 8) {
    __m128i packed = _mm256_cvtps_ph(_mm256_loadu_ps(values + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i *>(out + i), packed);
  }
#endif
  for (; i < count; ++i) out[i] = float_to_half_bits(values[i]);
}

// Ask for the recording's next samples early: the hardware prefetcher alone leaves the mixing loop waiting
// on memory (measured: +10-15% on banks of hundreds of MB).
template <typename Sample>
inline void prefetch_ahead(const Sample *next) {
  const char *begin = reinterpret_cast<const char *>(next) + 4096;
  for (size_t k = 0; k < kPrefetchRun * sizeof(Sample); k += 64) __builtin_prefetch(begin + k);
}

template <bool kStore>
inline void accumulate(float &target, float value) {
  if constexpr (kStore) target = value; else target += value;
}

// mix += signal over `count` samples (a multiple of kLaneSum); returns the sum of squares of signal.
// kLaneSum independent partial sums (added in a fixed order) let the compiler vectorize without -ffast-math.
inline float add_and_square(const float *signal, float *mix, int64_t count) {
  float partial[kLaneSum] = {};
  for (int64_t t = 0; t < count; t += kLaneSum)
    for (int j = 0; j < kLaneSum; ++j) {
      const float value = signal[t + j];
      mix[t + j] += value;
      partial[j] += value * value;
    }
  for (int width = kLaneSum / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) partial[j] += partial[j + width];
  return partial[0];
}

// max |x| over `count` samples, in kLaneSum independent lanes (vectorizes without -ffast-math).
inline float peak_magnitude(const float *x, int64_t count) {
  float lanes[kLaneSum] = {};
  int64_t t = 0;
  for (; t + kLaneSum <= count; t += kLaneSum)
    for (int j = 0; j < kLaneSum; ++j) lanes[j] = std::max(lanes[j], std::fabs(x[t + j]));
  float peak = 0.f;
  for (; t < count; ++t) peak = std::max(peak, std::fabs(x[t]));
  for (float lane : lanes) peak = std::max(peak, lane);
  return peak;
}

// Run `work(task)` for task in [0, tasks) on `threads` threads (the caller's thread is one of them).
// Tasks write disjoint outputs, so results do not depend on which thread ran what.
template <typename Work>
void parallel_for(int threads, int64_t tasks, Work work) {
  if (tasks <= 0) return;
  int workers = int(std::max<int64_t>(1, std::min<int64_t>(threads, tasks)));
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto loop = [&]() {
    try {
      for (int64_t task = next++; task < tasks; task = next++) work(task);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = tasks;
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(size_t(workers - 1));
  for (int w = 1; w < workers; ++w) pool.emplace_back(loop);
  loop();
  for (auto &thread : pool) thread.join();
  if (failure) std::rethrow_exception(failure);
}

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : int(cores);
}

// ---------------------------------------------------------------------------------------------- engine

class Engine {
 public:
  explicit Engine(int threads) : threads_(resolve_threads(threads)), plan_(kBuffer), long_plan_(kLongWindow) {
    hann_.resize(kBuffer);
    for (int i = 0; i < kBuffer; ++i)  // periodic Hann (scipy.signal.get_window("hann", 1024))
      hann_[i] = float(0.5 - 0.5 * std::cos(2.0 * M_PI * i / kBuffer));
    long_hann_.resize(kLongWindow);
    for (int i = 0; i < kLongWindow; ++i)  // periodic Hann of 4096, scaled by 1/4 (see kLongWindow)
      long_hann_[i] = float(0.25 * (0.5 - 0.5 * std::cos(2.0 * M_PI * i / kLongWindow)));
  }

  int threads() const { return threads_; }

  int add_bank(py::array_t<float, py::array::c_style | py::array::forcecast> audio,
               py::array_t<int64_t, py::array::c_style | py::array::forcecast> offsets,
               py::array_t<int64_t, py::array::c_style | py::array::forcecast> lengths,
               py::array_t<float, py::array::c_style | py::array::forcecast> layer_velocities,
               const std::string &precision) {
    if (audio.ndim() != 1) throw std::invalid_argument("bank audio must be 1-D");
    if (precision != "float32" && precision != "int16")
      throw std::invalid_argument("bank precision must be 'float32' or 'int16'");
    if (layer_velocities.ndim() != 1 || layer_velocities.shape(0) < 1)
      throw std::invalid_argument("bank layer_velocities must be 1-D and non-empty");
    const int layers = int(layer_velocities.shape(0));
    for (auto *table : {&offsets, &lengths})
      if (table->ndim() != 2 || table->shape(0) != kKeys || table->shape(1) != layers)
        throw std::invalid_argument("bank offsets/lengths must be [88, layers]");
    BankData bank;
    bank.total = audio.shape(0);
    bank.layers = layers;
    const int cells = kKeys * layers;
    bank.offsets.assign(offsets.data(), offsets.data() + cells);
    bank.lengths.assign(lengths.data(), lengths.data() + cells);
    bank.scales.assign(size_t(cells), 1.f);
    bank.layer_velocities.assign(layer_velocities.data(), layer_velocities.data() + layers);
    for (int i = 0; i < cells; ++i) {
      if (bank.lengths[i] < 0 || bank.offsets[i] < 0 || bank.offsets[i] + bank.lengths[i] > bank.total)
        throw std::invalid_argument("bank offsets/lengths point outside the audio");
      bank.longest = std::max(bank.longest, bank.lengths[i]);
    }
    for (float velocity : bank.layer_velocities)
      if (!(velocity > 0.f)) throw std::invalid_argument("bank layer_velocities must be > 0");
    if (precision == "float32") {
      bank.audio = audio;
      bank.samples = audio.data();
    } else {
      // pack every recording anew (recordings may share audio, each gets its own scale)
      std::vector<int64_t> packed(size_t(cells) + 1, 0);
      for (int i = 0; i < cells; ++i) packed[size_t(i) + 1] = packed[size_t(i)] + bank.lengths[size_t(i)];
      bank.pcm.reset(new int16_t[size_t(std::max<int64_t>(packed[size_t(cells)], 1))]);
      const float *source = audio.data();
      py::gil_scoped_release release;
      parallel_for(threads_, cells, [&](int64_t cell) {
        const float *x = source + bank.offsets[size_t(cell)];
        const int64_t length = bank.lengths[size_t(cell)];
        const float peak = peak_magnitude(x, length);
        const float scale = peak > 0.f ? peak / 32767.f : 1.f;
        const float inverse = 1.f / scale;
        int16_t *y = bank.pcm.get() + packed[size_t(cell)];
        for (int64_t t = 0; t < length; ++t) {  // round half away from zero; |x * inverse| <= 32767
          const float value = x[t] * inverse;
          y[t] = int16_t(int32_t(value + (value < 0.f ? -0.5f : 0.5f)));
        }
        bank.scales[size_t(cell)] = scale;
      });
      for (int i = 0; i < cells; ++i) bank.offsets[size_t(i)] = packed[size_t(i)];
    }
    banks_.push_back(std::move(bank));
    return int(banks_.size()) - 1;
  }

  int64_t set_notes(py::array_t<int64_t, py::array::c_style | py::array::forcecast> onset,
                    py::array_t<int64_t, py::array::c_style | py::array::forcecast> offset,
                    py::array_t<uint8_t, py::array::c_style | py::array::forcecast> key,
                    py::array_t<uint8_t, py::array::c_style | py::array::forcecast> velocity,
                    py::array_t<int64_t, py::array::c_style | py::array::forcecast> piece_start) {
    const int64_t count = onset.shape(0);
    if (offset.shape(0) != count || key.shape(0) != count || velocity.shape(0) != count)
      throw std::invalid_argument("note arrays must have equal lengths");
    if (piece_start.ndim() != 1 || piece_start.shape(0) < 1 || piece_start.data()[0] != 0 ||
        piece_start.data()[piece_start.shape(0) - 1] != count)
      throw std::invalid_argument("piece_start must run from 0 to the note count");
    NoteTable table;
    table.onset.assign(onset.data(), onset.data() + count);
    table.offset.assign(offset.data(), offset.data() + count);
    table.key.assign(key.data(), key.data() + count);
    table.velocity.assign(velocity.data(), velocity.data() + count);
    table.piece_start.assign(piece_start.data(), piece_start.data() + piece_start.shape(0));
    for (int64_t i = 0; i < count; ++i) {
      if (table.key[i] < kLowestKey || table.key[i] >= kLowestKey + kKeys)
        throw std::invalid_argument("note key outside 21..108");
      if (table.velocity[i] < 1 || table.velocity[i] > 127)
        throw std::invalid_argument("note velocity outside 1..127");
    }
    for (int64_t p = 0; p < table.pieces(); ++p) {
      int64_t longest = 0;
      if (table.piece_start[p + 1] < table.piece_start[p]) throw std::invalid_argument("piece_start decreases");
      for (int64_t i = table.piece_start[p]; i < table.piece_start[p + 1]; ++i) {
        if (i > table.piece_start[p] && table.onset[i] < table.onset[i - 1])
          throw std::invalid_argument("notes must be sorted by onset within each piece");
        longest = std::max(longest, table.offset[i] - table.onset[i]);
      }
      table.piece_longest.push_back(longest);
    }
    notes_ = std::move(table);
    return notes_.pieces();
  }

  // Segments -> FFT magnitude, key energy and flags, rows = segments * frames.
  void synthesize(py::array_t<int64_t, py::array::c_style | py::array::forcecast> piece,
                  py::array_t<int32_t, py::array::c_style | py::array::forcecast> bank,
                  py::array_t<int64_t, py::array::c_style | py::array::forcecast> start_sample,
                  py::array_t<float, py::array::c_style | py::array::forcecast> gain,
                  py::array_t<double, py::array::c_style | py::array::forcecast> detune_ratio,
                  py::array_t<float, py::array::c_style | py::array::forcecast> noise_amplitude,
                  py::array_t<int64_t, py::array::c_style | py::array::forcecast> noise_offset,
                  py::array_t<float, py::array::c_style | py::array::forcecast> tilt_db,
                  py::array fft_magnitude, py::array_t<float, py::array::c_style> key_energy,
                  py::array_t<uint8_t, py::array::c_style> key_active,
                  py::array_t<uint8_t, py::array::c_style> key_onset, int frames_per_segment,
                  int64_t release_samples, float velocity_exponent, const std::string &window,
                  double tilt_pivot_hz, py::object fft_long) {
    const int64_t segments = piece.shape(0);
    for (auto length : {bank.shape(0), start_sample.shape(0), gain.shape(0), detune_ratio.shape(0),
                        noise_amplitude.shape(0), noise_offset.shape(0), tilt_db.shape(0)})
      if (length != segments) throw std::invalid_argument("segment arrays must have equal lengths");
    if (frames_per_segment < 1) throw std::invalid_argument("frames_per_segment must be >= 1");
    const int64_t rows = segments * frames_per_segment;
    Outputs out = check_outputs(fft_magnitude, key_energy, key_active, key_onset, rows);
    py::array fft_long_array;
    if (!fft_long.is_none()) {
      fft_long_array = py::array::ensure(fft_long);
      check_fft_long(fft_long_array, rows, &out);
    }
    Options options = make_options(frames_per_segment, release_samples, velocity_exponent, window, tilt_pivot_hz,
                                   out.long_bins);
    SegmentPlan plan{piece.data(), bank.data(), start_sample.data(), gain.data(), detune_ratio.data(),
                     noise_amplitude.data(), noise_offset.data(), tilt_db.data()};
    const int64_t span = int64_t(frames_per_segment) * kBuffer;
    for (int64_t s = 0; s < segments; ++s) {
      if (plan.piece[s] < 0 || plan.piece[s] >= notes_.pieces()) throw std::invalid_argument("piece index out of range");
      if (plan.bank[s] < 0 || plan.bank[s] >= int32_t(banks_.size())) throw std::invalid_argument("bank index out of range");
      if (!(plan.detune_ratio[s] > 0.0)) throw std::invalid_argument("detune_ratio must be > 0");
      if (plan.noise_amplitude[s] != 0.f &&
          (plan.noise_offset[s] < 0 || plan.noise_offset[s] + span > int64_t(noise_.size())))
        throw std::invalid_argument("noise_offset + segment length must lie inside the noise table");
      if (out.fft_long && plan.noise_amplitude[s] != 0.f &&
          int64_t(noise_.size()) < span + int64_t(kLongBefore + kLongAfter) * kBuffer)
        throw std::invalid_argument("the noise table is shorter than a segment with the long window's buffers");
    }
    const int64_t per_task = std::max<int64_t>(1, (kMinRowsPerTask + frames_per_segment - 1) / frames_per_segment);
    const int64_t tasks = (segments + per_task - 1) / per_task;
    py::gil_scoped_release release;
    parallel_for(threads_, tasks, [&](int64_t task) {
      thread_local Scratch scratch;
      const int64_t first = task * per_task, last = std::min(segments, first + per_task);
      scratch.ensure(size_t((last - first) * span), size_t(span));
      for (int64_t s = first; s < last; ++s)
        mix_segment(plan, s, frames_per_segment, options, scratch, scratch.mix.data() + (s - first) * span, &out);
      analyze_rows(scratch.mix.data(), (last - first) * frames_per_segment, first * frames_per_segment, options,
                   &plan, first, out, scratch);
      if (out.fft_long)
        for (int64_t s = first; s < last; ++s) long_rows_of_segment(plan, s, options, scratch, first, out);
    });
  }

  // Whole piece -> audio (no augmentation): the mix of consecutive buffers from sample 0.
  void render(int64_t piece, int32_t bank, py::array_t<float, py::array::c_style> audio, int64_t release_samples,
              float velocity_exponent) {
    if (piece < 0 || piece >= notes_.pieces()) throw std::invalid_argument("piece index out of range");
    if (bank < 0 || bank >= int32_t(banks_.size())) throw std::invalid_argument("bank index out of range");
    if (audio.ndim() != 1) throw std::invalid_argument("audio must be 1-D");
    Options options = make_options(16, release_samples, velocity_exponent, "none", 1000.0);
    const int64_t total = audio.shape(0);
    const int64_t span = int64_t(options.frames) * kBuffer;
    float *destination = audio.mutable_data();
    const int64_t tasks = (total + span - 1) / span;
    const float unit_gain = 1.f, no_noise = 0.f, no_tilt = 0.f;
    const double unit_ratio = 1.0;
    const int64_t zero_offset = 0;
    py::gil_scoped_release release;
    parallel_for(threads_, tasks, [&](int64_t task) {
      thread_local Scratch scratch;
      scratch.ensure(size_t(span), size_t(span));
      const int64_t start = task * span;
      SegmentPlan plan{&piece, &bank, &start, &unit_gain, &unit_ratio, &no_noise, &zero_offset, &no_tilt};
      mix_segment(plan, 0, options.frames, options, scratch, scratch.mix.data(), nullptr);
      std::memcpy(destination + start, scratch.mix.data(), size_t(std::min(span, total - start)) * sizeof(float));
    });
  }

  // Audio buffers [rows, 1024] -> FFT magnitude [rows, 512], exactly as synthesize computes it.
  void analyze(py::array_t<float, py::array::c_style | py::array::forcecast> buffers, py::array fft_magnitude,
               const std::string &window) {
    if (buffers.ndim() != 2 || buffers.shape(1) != kBuffer) throw std::invalid_argument("buffers must be [rows, 1024]");
    const int64_t rows = buffers.shape(0);
    Outputs out;
    check_fft(fft_magnitude, rows, &out);
    Options options = make_options(1, 0, 1.f, window, 1000.0);
    const float *source = buffers.data();
    const int64_t per_task = 256;
    const int64_t tasks = (rows + per_task - 1) / per_task;
    py::gil_scoped_release release;
    parallel_for(threads_, tasks, [&](int64_t task) {
      thread_local Scratch scratch;
      const int64_t first = task * per_task, count = std::min(rows - first, per_task);
      analyze_rows(source + first * kBuffer, count, first, options, nullptr, 0, out, scratch);
    });
  }

  // Audio -> long-window magnitudes [rows, bins], exactly as synthesize computes fft_long_magnitude: row f reads
  // audio[f * 1024, f * 1024 + 4096), so the caller passes audio with kLongBefore buffers of silence before
  // sample 0 (fft_long_magnitude_of_audio in builder/engine.py).
  void analyze_long(py::array_t<float, py::array::c_style | py::array::forcecast> audio, py::array fft_long) {
    if (audio.ndim() != 1) throw std::invalid_argument("audio must be 1-D");
    if (fft_long.ndim() != 2) throw std::invalid_argument("fft_long must be [rows, bins]");
    const int64_t rows = fft_long.shape(0);
    if (rows > 0 && audio.shape(0) < (rows - 1) * kBuffer + kLongWindow)
      throw std::invalid_argument("audio must hold (rows - 1) * 1024 + 4096 samples");
    Outputs out;
    check_fft_long(fft_long, rows, &out);
    Options options = make_options(1, 0, 1.f, "hann", 1000.0, out.long_bins);
    const float *source = audio.data();
    const int64_t per_task = 256;
    const int64_t tasks = (rows + per_task - 1) / per_task;
    py::gil_scoped_release release;
    parallel_for(threads_, tasks, [&](int64_t task) {
      thread_local Scratch scratch;
      const int64_t first = task * per_task, count = std::min(rows - first, per_task);
      analyze_long_rows(source + first * kBuffer, count, first, options, nullptr, 0, out, scratch);
    });
  }

  void set_noise(py::array_t<float, py::array::c_style | py::array::forcecast> table) {
    noise_.assign(table.data(), table.data() + table.size());
  }

  py::dict describe() const {
    py::dict info;
    info["threads"] = threads_;
    info["simd_lanes"] = kLanes;
    info["banks"] = int(banks_.size());
    info["pieces"] = notes_.pieces();
    info["notes"] = int64_t(notes_.onset.size());
    return info;
  }

 private:
  // row *= 10^(tilt * octaves(k) / 20): a smooth EQ tilt applied to a spectrum, the curve computed once per tilt
  struct TiltCurve {
    std::vector<float> gain;  // per bin, for `tilt`
    float tilt = 0.f;
    void apply(float *row, int bins, float new_tilt, const std::vector<float> &octaves) {
      if (gain.size() != size_t(bins) || tilt != new_tilt) {
        gain.resize(size_t(bins));
        const float scale = new_tilt * float(M_LN10 / 20.0);
        for (int k = 0; k < bins; ++k) gain[size_t(k)] = std::exp(scale * octaves[size_t(k)]);
        tilt = new_tilt;
      }
      for (int k = 0; k < bins; ++k) row[k] *= gain[size_t(k)];
    }
  };

  struct Scratch {
    std::vector<float> mix;                   // the rendered audio of the task's segments
    std::vector<float> key_signal;            // one key's own contribution (for its energy)
    std::vector<Voice> voices;
    std::vector<float> magnitudes;            // [lanes, 512] one FFT batch, row-major
    TiltCurve tilt;                           // of the 512 bins
    pocketfft::detail::arr<Vec> lanes{size_t(kBuffer)};
    std::vector<float> context;               // one segment's audio with the long window's buffers around it
    std::vector<float> long_magnitudes;       // [lanes, long bins]
    TiltCurve long_tilt;                      // of the long window's bins
    std::unique_ptr<pocketfft::detail::arr<Vec>> long_lanes;  // [4096] allocated on first use
    void ensure(size_t mix_samples, size_t span) {
      if (mix.size() < mix_samples) mix.resize(mix_samples);
      if (key_signal.size() < span) key_signal.resize(span);
      if (magnitudes.size() < size_t(kLanes) * kBins) magnitudes.resize(size_t(kLanes) * kBins);
    }
  };

  Options make_options(int frames, int64_t release_samples, float velocity_exponent, const std::string &window,
                       double tilt_pivot_hz, int long_bins = 0) {
    if (window != "hann" && window != "none") throw std::invalid_argument("window must be 'hann' or 'none'");
    if (release_samples < 0) throw std::invalid_argument("release_samples must be >= 0");
    if (!(tilt_pivot_hz > 0.0)) throw std::invalid_argument("tilt_pivot_hz must be > 0");
    Options options;
    options.frames = frames;
    options.release_samples = release_samples;
    options.velocity_exponent = velocity_exponent;
    options.hann = window == "hann";
    options.octaves.resize(kBins);
    for (int k = 0; k < kBins; ++k)
      options.octaves[size_t(k)] = float(std::log2(std::max(k, 1) * kSampleRate / kBuffer / tilt_pivot_hz));
    options.long_octaves.resize(size_t(long_bins));
    for (int k = 0; k < long_bins; ++k)
      options.long_octaves[size_t(k)] =
          float(std::log2(std::max(k, 1) * kSampleRate / kLongWindow / tilt_pivot_hz));
    return options;
  }

  static void check_fft(py::array &fft_magnitude, int64_t rows, Outputs *out) {
    if (fft_magnitude.ndim() != 2 || fft_magnitude.shape(0) != rows || fft_magnitude.shape(1) != kBins)
      throw std::invalid_argument("fft_magnitude must be [rows, 512]");
    if (!(fft_magnitude.flags() & py::array::c_style) || !fft_magnitude.writeable())
      throw std::invalid_argument("fft_magnitude must be C-contiguous and writeable");
    const auto dtype = fft_magnitude.dtype();
    if (dtype.kind() != 'f' || (dtype.itemsize() != 2 && dtype.itemsize() != 4))
      throw std::invalid_argument("fft_magnitude must be float16 or float32");
    out->fft = fft_magnitude.mutable_data();
    out->fft_half = dtype.itemsize() == 2;
  }

  static void check_fft_long(py::array &fft_long, int64_t rows, Outputs *out) {
    if (fft_long.ndim() != 2 || fft_long.shape(0) != rows || fft_long.shape(1) < 1 ||
        fft_long.shape(1) > kLongMaxBins)
      throw std::invalid_argument("fft_long must be [rows, bins] with 1 <= bins <= 2048");
    if (!(fft_long.flags() & py::array::c_style) || !fft_long.writeable())
      throw std::invalid_argument("fft_long must be C-contiguous and writeable");
    const auto dtype = fft_long.dtype();
    if (dtype.kind() != 'f' || (dtype.itemsize() != 2 && dtype.itemsize() != 4))
      throw std::invalid_argument("fft_long must be float16 or float32");
    out->fft_long = fft_long.mutable_data();
    out->fft_long_half = dtype.itemsize() == 2;
    out->long_bins = int(fft_long.shape(1));
  }

  static Outputs check_outputs(py::array &fft_magnitude, py::array_t<float, py::array::c_style> &key_energy,
                               py::array_t<uint8_t, py::array::c_style> &key_active,
                               py::array_t<uint8_t, py::array::c_style> &key_onset, int64_t rows) {
    Outputs out;
    check_fft(fft_magnitude, rows, &out);
    for (py::array *table : {static_cast<py::array *>(&key_energy), static_cast<py::array *>(&key_active),
                             static_cast<py::array *>(&key_onset)})
      if (table->ndim() != 2 || table->shape(0) != rows || table->shape(1) != kKeys || !table->writeable())
        throw std::invalid_argument("key_energy/key_active/key_onset must be writeable [rows, 88]");
    out.energy = key_energy.mutable_data();
    out.active = key_active.mutable_data();
    out.onset = key_onset.mutable_data();
    return out;
  }

  // Render segment s of `plan` into `mix` (frames * 1024 samples); with `out`, also fill its label rows.
  void mix_segment(const SegmentPlan &plan, int64_t s, int frames, const Options &options, Scratch &scratch,
                   float *mix, const Outputs *out) const {
    const int64_t span = int64_t(frames) * kBuffer;
    const int64_t span_start = plan.start_sample[s];
    const int64_t span_end = span_start + span;
    const BankData &bank = banks_[size_t(plan.bank[s])];
    const int64_t p = plan.piece[s];
    const double ratio = plan.detune_ratio[s];
    const int64_t release = options.release_samples;
    std::fill(mix, mix + span, 0.f);
    float *energy = nullptr;
    uint8_t *active = nullptr, *onset_flags = nullptr;
    if (out) {
      const int64_t row = s * frames;
      energy = out->energy + row * kKeys;
      active = out->active + row * kKeys;
      onset_flags = out->onset + row * kKeys;
      std::fill(energy, energy + frames * kKeys, 0.f);
      std::fill(active, active + frames * kKeys, uint8_t(0));
      std::fill(onset_flags, onset_flags + frames * kKeys, uint8_t(0));
    }

    // Notes that can reach the span started at most (longest note + release) before it; the flags use
    // the same scan, so a held note whose sample ran out still counts as active.
    const int64_t begin = notes_.piece_start[size_t(p)], end = notes_.piece_start[size_t(p) + 1];
    const int64_t reach = notes_.piece_longest[size_t(p)] + release;
    const int64_t *onsets = notes_.onset.data();
    int64_t i = std::lower_bound(onsets + begin, onsets + end, span_start - reach) - onsets;
    auto &voices = scratch.voices;
    voices.clear();
    for (; i < end && onsets[i] < span_end; ++i) {
      const int64_t note_on = onsets[i], note_off = notes_.offset[size_t(i)];
      const int key_index = notes_.key[size_t(i)] - kLowestKey;
      if (out) {
        for (int f = 0; f < frames; ++f) {
          const int64_t frame_start = span_start + int64_t(f) * kBuffer;
          const int64_t centre = frame_start + kBuffer / 2;
          if (note_on <= centre && centre < note_off) active[f * kKeys + key_index] = 1;
          if (frame_start <= note_on && note_on < frame_start + kBuffer) onset_flags[f * kKeys + key_index] = 1;
        }
      }
      const int velocity = notes_.velocity[size_t(i)];
      const int layer = layer_for_velocity(velocity, bank.layers);
      const size_t cell = size_t(key_index) * size_t(bank.layers) + size_t(layer);
      const int64_t length = bank.lengths[cell];
      if (length <= 1) continue;
      const int64_t sample_end = note_on + audible_samples(length, ratio);
      const int64_t audible_end = std::min(sample_end, note_off + release);
      if (audible_end <= span_start || audible_end <= note_on) continue;
      const float velocity_gain =
          std::pow(float(velocity) / bank.layer_velocities[size_t(layer)], options.velocity_exponent);
      const bool pcm = bank.int16();
      voices.push_back(Voice{key_index, pcm ? nullptr : bank.samples + bank.offsets[cell],
                             pcm ? bank.pcm.get() + bank.offsets[cell] : nullptr, length, note_on, note_off,
                             velocity_gain * plan.gain[s] * bank.scales[cell]});
    }

    // Start fetching where every voice begins reading, so the misses overlap instead of queueing.
    for (const Voice &voice : voices) {
      const int64_t elapsed = std::max<int64_t>(0, span_start - voice.onset);
      const int64_t first = std::min<int64_t>(int64_t(double(elapsed) * ratio), voice.length - 1);
      const char *begin = voice.pcm ? reinterpret_cast<const char *>(voice.pcm + first)
                                    : reinterpret_cast<const char *>(voice.sample + first);
      for (int k = 0; k < kPrefetchLines; ++k) __builtin_prefetch(begin + 64 * k);
    }

    // Key by key: render the key's own signal, measure its energy per frame, add it to the mix.
    std::stable_sort(voices.begin(), voices.end(),
                     [](const Voice &a, const Voice &b) { return a.key_index < b.key_index; });
    if (!energy) {  // audio only: no per-key bookkeeping
      for (const Voice &voice : voices) add_voice<false>(voice, span_start, span, ratio, release, mix);
    } else {
      float *key_signal = scratch.key_signal.data();
      for (size_t v = 0; v < voices.size();) {
        size_t w = v;
        int64_t lo = span, hi = 0;
        while (w < voices.size() && voices[w].key_index == voices[v].key_index) {
          int64_t a, b;
          voice_range(voices[w], span_start, span, ratio, release, &a, &b);
          lo = std::min(lo, a);
          hi = std::max(hi, b);
          ++w;
        }
        if (lo < hi) {
          // whole blocks of kLaneSum samples (frames are whole blocks too): fixed-shape, vectorizable sums
          const int64_t voice_lo = lo, voice_hi = hi;
          lo = lo / kLaneSum * kLaneSum;
          hi = std::min(span, (hi + kLaneSum - 1) / kLaneSum * kLaneSum);
          if (w - v == 1) {  // the common case, one voice: write it in place instead of clearing and adding
            std::fill(key_signal + lo, key_signal + voice_lo, 0.f);
            std::fill(key_signal + voice_hi, key_signal + hi, 0.f);
            add_voice<true>(voices[v], span_start, span, ratio, release, key_signal);
          } else {
            std::fill(key_signal + lo, key_signal + hi, 0.f);
            for (size_t u = v; u < w; ++u) add_voice<false>(voices[u], span_start, span, ratio, release, key_signal);
          }
          for (int64_t f = lo / kBuffer; f * kBuffer < hi; ++f) {
            const int64_t a = std::max(lo, f * kBuffer), b = std::min(hi, (f + 1) * kBuffer);
            energy[f * kKeys + voices[v].key_index] += add_and_square(key_signal + a, mix + a, b - a);
          }
        }
        v = w;
      }
    }

    const float noise_amplitude = plan.noise_amplitude[s];
    if (noise_amplitude != 0.f) {
      const float *noise = noise_.data() + plan.noise_offset[s];
      for (int64_t t = 0; t < span; ++t) mix[t] += noise_amplitude * noise[t];
    }
  }

  // The part [a, b) of the span (relative sample indices) where a voice is audible.
  static void voice_range(const Voice &voice, int64_t span_start, int64_t span, double ratio, int64_t release,
                          int64_t *a, int64_t *b) {
    const int64_t sample_end = voice.onset + audible_samples(voice.length, ratio);
    const int64_t audible_end = std::min(sample_end, voice.offset + release);
    *a = std::clamp<int64_t>(voice.onset - span_start, 0, span);
    *b = std::clamp<int64_t>(audible_end - span_start, 0, span);
    if (*b < *a) *b = *a;
  }

  // Output samples a recording of `length` lasts when played at `ratio` (interpolation needs i and i+1).
  static int64_t audible_samples(int64_t length, double ratio) {
    if (ratio == 1.0) return length;
    return int64_t(std::ceil(double(length - 1) / ratio));
  }

  // Add one voice's contribution (gain, release fade, detune) to `signal` (indices relative to the span);
  // with kStore, overwrite signal over the voice's audible range instead.
  template <bool kStore>
  static void add_voice(const Voice &voice, int64_t span_start, int64_t span, double ratio, int64_t release,
                        float *signal) {
    if (voice.pcm)
      add_samples<kStore>(voice, voice.pcm, span_start, span, ratio, release, signal);
    else
      add_samples<kStore>(voice, voice.sample, span_start, span, ratio, release, signal);
  }

  template <bool kStore, typename Sample>
  static void add_samples(const Voice &voice, const Sample *sample, int64_t span_start, int64_t span,
                          double ratio, int64_t release, float *signal) {
    int64_t a, b;
    voice_range(voice, span_start, span, ratio, release, &a, &b);
    if (a >= b) return;
    // the sustained part [a, c) at full gain, then the release ramp [c, b)
    const int64_t c = std::clamp<int64_t>(voice.offset - span_start, a, b);
    const float gain = voice.gain;
    const float fade_step = release > 0 ? 1.f / float(release) : 0.f;
    const int64_t first_elapsed = span_start + a - voice.onset;  // samples since the note's onset at t = a
    const int64_t release_origin = voice.offset - span_start;
    if (ratio == 1.0) {
      const Sample *source = sample + first_elapsed - a;  // source[t] is the recording at span sample t
      for (int64_t t0 = a; t0 < b; t0 += kPrefetchRun) {
        prefetch_ahead(source + t0 + kPrefetchRun);
        const int64_t end = std::min(b, t0 + kPrefetchRun), sustain_end = std::min(end, std::max(t0, c));
        for (int64_t t = t0; t < sustain_end; ++t) accumulate<kStore>(signal[t], gain * float(source[t]));
        for (int64_t t = sustain_end; t < end; ++t)
          accumulate<kStore>(signal[t], gain * (1.f - float(t - release_origin) * fade_step) * float(source[t]));
      }
      return;
    }
    // Detuned: read the recording at `ratio` samples per output sample, linear interpolation.
    const double origin = double(first_elapsed - a) * ratio;  // position(t) = origin + t * ratio
    resample<kStore>(sample, voice.length, origin, ratio, a, c, gain, 0.f, 0, signal);
    resample<kStore>(sample, voice.length, origin, ratio, c, b, gain, fade_step, release_origin, signal);
  }

  // signal[t] += gain * envelope(t) * recording(origin + t * ratio) for t in [a, b), with
  // envelope(t) = 1 - (t - fade_origin) * fade_step and linear interpolation between recording samples.
  // Runs of samples over which the integer part of the read position advances exactly one per output
  // sample (about 1 / |ratio - 1| of them: ~115 at 15 cents) read the recording contiguously, so they
  // vectorize like the undetuned copy; each run restarts from the exact double-precision position.
  template <bool kStore, typename Sample>
  static void resample(const Sample *sample, int64_t length, double origin, double ratio, int64_t a, int64_t b,
                       float gain, float fade_step, int64_t fade_origin, float *signal) {
    const double drift = ratio - 1.0;
    const float drift_f = float(drift);
    for (int64_t t0 = a; t0 < b;) {
      const double position = origin + double(t0) * ratio;
      const int64_t base = int64_t(std::floor(position));
      const double fraction0 = position - double(base);
      // the run ends before the fraction leaves [0, 1]
      double run = drift > 0.0 ? (1.0 - fraction0) / drift : fraction0 / -drift;
      const int64_t n = std::min<int64_t>(b - t0, int64_t(std::min(run, double(kDetuneRun))) + 1);
      const float fraction0_f = float(fraction0);
      if (base >= 0 && base + n + 1 <= length) {
        const Sample *s = sample + base;
        prefetch_ahead(s + n);
        for (int64_t j = 0; j < n; ++j) {
          const float fraction = fraction0_f + float(j) * drift_f;
          const float envelope = 1.f - float(t0 + j - fade_origin) * fade_step;
          const float below = float(s[j]), above = float(s[j + 1]);
          accumulate<kStore>(signal[t0 + j], gain * envelope * (below + fraction * (above - below)));
        }
      } else {  // the recording's last samples: exact positions, bounds-checked
        for (int64_t j = 0; j < n; ++j) {
          const double exact = origin + double(t0 + j) * ratio;
          const int64_t index = std::clamp<int64_t>(int64_t(std::floor(exact)), 0, length - 2);
          const float fraction = float(exact - double(index));
          const float envelope = 1.f - float(t0 + j - fade_origin) * fade_step;
          const float below = float(sample[index]), above = float(sample[index + 1]);
          accumulate<kStore>(signal[t0 + j], gain * envelope * (below + fraction * (above - below)));
        }
      }
      t0 += n;
    }
  }

  // The long-window rows of segment s: its audio with kLongBefore buffers before and kLongAfter after, mixed
  // again around the span (audio only: the labels and the span's own samples are untouched), then analyzed.
  void long_rows_of_segment(const SegmentPlan &plan, int64_t s, const Options &options, Scratch &scratch,
                            int64_t first_segment, const Outputs &out) const {
    const int frames = options.frames;
    const int64_t span = int64_t(frames) * kBuffer;
    const int64_t before = int64_t(kLongBefore) * kBuffer, after = int64_t(kLongAfter) * kBuffer;
    if (scratch.context.size() < size_t(before + span + after)) scratch.context.resize(size_t(before + span + after));
    float *context = scratch.context.data();
    std::memcpy(context + before, scratch.mix.data() + (s - first_segment) * span, sizeof(float) * size_t(span));
    // the buffers around: the same piece, bank, gain and detune; the noise table read on from the segment's
    // own stretch (wrapped inside the table), so the noise is as continuous as the table allows
    const int64_t table = int64_t(noise_.size());
    const int64_t start_before = plan.start_sample[s] - before, start_after = plan.start_sample[s] + span;
    const int64_t noise_before = table > before ? ((plan.noise_offset[s] - before) % (table - before) +
                                                   (table - before)) % (table - before) : 0;
    const int64_t noise_after = table > after ? (plan.noise_offset[s] + span) % (table - after) : 0;
    SegmentPlan around_before{plan.piece + s, plan.bank + s, &start_before, plan.gain + s, plan.detune_ratio + s,
                              plan.noise_amplitude + s, &noise_before, plan.tilt_db + s};
    SegmentPlan around_after{plan.piece + s, plan.bank + s, &start_after, plan.gain + s, plan.detune_ratio + s,
                             plan.noise_amplitude + s, &noise_after, plan.tilt_db + s};
    mix_segment(around_before, 0, kLongBefore, options, scratch, context, nullptr);
    if (kLongAfter > 0) mix_segment(around_after, 0, kLongAfter, options, scratch, context + before + span, nullptr);
    analyze_long_rows(context, frames, s * frames, options, &plan, s, out, scratch);
  }

  // Long-window magnitudes of `count` rows: row j reads audio[j * 1024, j * 1024 + 4096), written to rows
  // [row0, row0 + count) of out.fft_long; `plan` (may be null) gives the tilt of segment segment0 + j / frames.
  void analyze_long_rows(const float *audio, int64_t count, int64_t row0, const Options &options,
                         const SegmentPlan *plan, int64_t segment0, const Outputs &out, Scratch &scratch) const {
    const int bins = out.long_bins;
    if (!scratch.long_lanes) scratch.long_lanes.reset(new pocketfft::detail::arr<Vec>(size_t(kLongWindow)));
    if (scratch.long_magnitudes.size() < size_t(kLanes) * size_t(bins))
      scratch.long_magnitudes.resize(size_t(kLanes) * size_t(bins));
    Vec *lanes = scratch.long_lanes->data();
    for (int64_t batch = 0; batch < count; batch += kLanes) {
      const int used = int(std::min<int64_t>(kLanes, count - batch));
      for (int i = 0; i < kLongWindow; ++i) {
        const float weight = long_hann_[size_t(i)];
        Vec value;
        for (int j = 0; j < kLanes; ++j) value[j] = j < used ? audio[(batch + j) * kBuffer + i] * weight : 0.f;
        lanes[i] = value;
      }
      long_plan_.exec(lanes, 1.f, true);
      for (int j = 0; j < used; ++j) {
        float *row = scratch.long_magnitudes.data() + size_t(j) * size_t(bins);
        row[0] = std::fabs(lanes[0][j]);
        for (int k = 1; k < bins; ++k) {
          const float re = lanes[2 * k - 1][j], im = lanes[2 * k][j];
          row[k] = std::sqrt(re * re + im * im);
        }
        if (plan) {
          const float tilt = plan->tilt_db[segment0 + (batch + j) / options.frames];
          if (tilt != 0.f) scratch.long_tilt.apply(row, bins, tilt, options.long_octaves);
        }
        const int64_t out_row = row0 + batch + j;
        if (out.fft_long_half)
          store_row_half(row, static_cast<uint16_t *>(out.fft_long) + out_row * bins, bins);
        else
          std::memcpy(static_cast<float *>(out.fft_long) + out_row * bins, row, sizeof(float) * size_t(bins));
      }
    }
  }

  // FFT magnitude of `count` consecutive buffers at `audio`, written to rows [row0, row0 + count) of out.fft.
  // Buffers go through pocketfft in batches of kLanes (one buffer per SIMD lane; a partial batch is padded
  // with silence, so every buffer takes the same arithmetic path whatever its neighbours: thread-independent).
  void analyze_rows(const float *audio, int64_t count, int64_t row0, const Options &options,
                    const SegmentPlan *plan, int64_t segment0, const Outputs &out, Scratch &scratch) const {
    if (scratch.magnitudes.size() < size_t(kLanes) * kBins) scratch.magnitudes.resize(size_t(kLanes) * kBins);
    Vec *lanes = scratch.lanes.data();
    float *magnitudes = scratch.magnitudes.data();
    for (int64_t batch = 0; batch < count; batch += kLanes) {
      const int used = int(std::min<int64_t>(kLanes, count - batch));
      for (int i = 0; i < kBuffer; ++i) {
        const float weight = options.hann ? hann_[size_t(i)] : 1.f;
        Vec value;
        for (int j = 0; j < kLanes; ++j) value[j] = j < used ? audio[(batch + j) * kBuffer + i] * weight : 0.f;
        lanes[i] = value;
      }
      plan_.exec(lanes, 1.f, true);  // halfcomplex: r0, r1, i1, ..., r511, i511, r512
      for (int j = 0; j < used; ++j) {
        float *row = magnitudes + size_t(j) * kBins;
        row[0] = std::fabs(lanes[0][j]);
        for (int k = 1; k < kBins; ++k) {
          const float re = lanes[2 * k - 1][j], im = lanes[2 * k][j];
          row[k] = std::sqrt(re * re + im * im);
        }
        if (plan) {
          const int64_t segment = segment0 + (batch + j) / options.frames;
          const float tilt = plan->tilt_db[segment];
          if (tilt != 0.f) scratch.tilt.apply(row, kBins, tilt, options.octaves);
        }
        const int64_t out_row = row0 + batch + j;
        if (out.fft_half)
          store_row_half(row, static_cast<uint16_t *>(out.fft) + out_row * kBins, kBins);
        else
          std::memcpy(static_cast<float *>(out.fft) + out_row * kBins, row, sizeof(float) * kBins);
      }
    }
  }

  int threads_;
  pocketfft::detail::pocketfft_r<float> plan_;
  pocketfft::detail::pocketfft_r<float> long_plan_;
  std::vector<float> hann_;
  std::vector<float> long_hann_;
  std::vector<BankData> banks_;
  NoteTable notes_;
  std::vector<float> noise_;
};

// ---------------------------------------------------------------------------------------------- modal tones

// The hot loop of the modal pianos (builder/banks/modal.py): for each hammer blow v,
//   tone[v, n] = sum_p weight[v, p] * sin(w_p n + phase_p) * envelope_p(n) * beating_p(n) * attack(n)
// with envelope_p(n) = (1 - level) exp(-rate_p n / fs) + level exp(-rate_p n / (ratio fs)) (prompt decay and
// aftersound), beating_p(n) = 1 - depth / 2 (1 - cos(b_p n + beat_phase_p)) and attack(n) = min(n / attack, 1).
// Why here and not numpy: the bank must be the same bytes on every machine. A BLAS matrix product sums in an
// order that depends on the CPU's kernel and thread count, and numpy's vectorized sin/exp are picked per CPU
// (AVX-512 versions differ in the last bit); here every value comes from glibc's scalar sin/cos/exp at a
// block's first sample and from +, -, x of per-partial tables inside the block (-ffp-contract=off: no fused
// multiply-add), summed over partials in their order, in double precision. Blocks run on threads; a block's
// samples do not depend on which thread ran it.
constexpr int kModalBlock = 512;

py::array_t<float> modal_tones(py::array_t<double, py::array::c_style | py::array::forcecast> frequency_hz,
                               py::array_t<double, py::array::c_style | py::array::forcecast> phase,
                               py::array_t<double, py::array::c_style | py::array::forcecast> decay_rate,
                               py::array_t<double, py::array::c_style | py::array::forcecast> beat_hz,
                               py::array_t<double, py::array::c_style | py::array::forcecast> beat_phase,
                               py::array_t<double, py::array::c_style | py::array::forcecast> weights,
                               double aftersound_level, double aftersound_ratio, double beating_depth,
                               double attack_seconds, int64_t n_samples, int threads) {
  const int64_t partials = frequency_hz.shape(0);
  for (const auto *array : {&phase, &decay_rate, &beat_hz, &beat_phase})
    if (array->ndim() != 1 || array->shape(0) != partials)
      throw std::invalid_argument("modal_tones: every per-partial array must have the partials' length");
  if (weights.ndim() != 2 || weights.shape(1) != partials)
    throw std::invalid_argument("modal_tones: weights must be [blows, partials]");
  if (n_samples < 0 || aftersound_ratio <= 0.0 || attack_seconds <= 0.0)
    throw std::invalid_argument("modal_tones: n_samples >= 0, aftersound_ratio > 0 and attack_seconds > 0");
  const int64_t blows = weights.shape(0);
  py::array_t<float> tones({blows, n_samples});
  const double *f = frequency_hz.data(), *ph = phase.data(), *rate = decay_rate.data(), *beat = beat_hz.data(),
               *beat_ph = beat_phase.data(), *w = weights.data();
  float *out = tones.mutable_data();
  const double two_pi = 2.0 * M_PI;
  // per partial, the values over one block's offsets j = 0..kModalBlock-1 (shared by all blocks)
  const size_t table = size_t(partials) * kModalBlock;
  std::vector<double> sin_j(table), cos_j(table), prompt_j(table), after_j(table), beat_sin_j(table), beat_cos_j(table);
  for (int64_t p = 0; p < partials; ++p)
    for (int j = 0; j < kModalBlock; ++j) {
      const size_t i = size_t(p) * kModalBlock + size_t(j);
      sin_j[i] = std::sin(two_pi * f[p] / kSampleRate * j);
      cos_j[i] = std::cos(two_pi * f[p] / kSampleRate * j);
      prompt_j[i] = std::exp(-rate[p] * j / kSampleRate);
      after_j[i] = std::exp(-rate[p] / aftersound_ratio * j / kSampleRate);
      beat_sin_j[i] = std::sin(two_pi * beat[p] / kSampleRate * j);
      beat_cos_j[i] = std::cos(two_pi * beat[p] / kSampleRate * j);
    }
  const int64_t blocks = (n_samples + kModalBlock - 1) / kModalBlock;
  {
    py::gil_scoped_release release;
    parallel_for(resolve_threads(threads), blocks, [&](int64_t block) {
      const int64_t n0 = block * kModalBlock;
      const int count = int(std::min<int64_t>(kModalBlock, n_samples - n0));
      std::vector<double> sum(size_t(blows) * kModalBlock, 0.0), wave(kModalBlock);
      for (int64_t p = 0; p < partials; ++p) {
        const double angle = two_pi * f[p] / kSampleRate * double(n0) + ph[p];
        const double sin0 = std::sin(angle), cos0 = std::cos(angle);
        const double prompt0 = (1.0 - aftersound_level) * std::exp(-rate[p] * double(n0) / kSampleRate);
        const double after0 = aftersound_level * std::exp(-rate[p] / aftersound_ratio * double(n0) / kSampleRate);
        const double beat_angle = two_pi * beat[p] / kSampleRate * double(n0) + beat_ph[p];
        const double beat_sin0 = std::sin(beat_angle), beat_cos0 = std::cos(beat_angle);
        const size_t t = size_t(p) * kModalBlock;
        for (int j = 0; j < count; ++j) {
          const double tone = sin0 * cos_j[t + j] + cos0 * sin_j[t + j];          // sin(angle + w j)
          const double envelope = prompt0 * prompt_j[t + j] + after0 * after_j[t + j];
          const double beat_cos = beat_cos0 * beat_cos_j[t + j] - beat_sin0 * beat_sin_j[t + j];
          const double attack = std::min(double(n0 + j) / (attack_seconds * kSampleRate), 1.0);
          wave[size_t(j)] = tone * envelope * (1.0 - beating_depth * 0.5 * (1.0 - beat_cos)) * attack;
        }
        for (int64_t v = 0; v < blows; ++v) {
          const double weight = w[v * partials + p];
          double *row = sum.data() + size_t(v) * kModalBlock;
          for (int j = 0; j < count; ++j) row[j] += weight * wave[size_t(j)];
        }
      }
      for (int64_t v = 0; v < blows; ++v)
        for (int j = 0; j < count; ++j) out[v * n_samples + n0 + j] = float(sum[size_t(v) * kModalBlock + size_t(j)]);
    });
  }
  return tones;
}

}  // namespace

PYBIND11_MODULE(pianoscribe_native, m) {
  m.doc() = "pianoscribe's synthesizer engine: mix notes from sample banks, label and FFT them, in parallel.";
  // Outputs are .noconvert(): a wrong dtype is a TypeError, never a silent write into a converted copy.
  m.attr("__version__") = "3";
  m.attr("BUFFER_SIZE") = kBuffer;
  m.attr("BINS") = kBins;
  m.attr("LONG_WINDOW") = kLongWindow;
  m.attr("LONG_BEFORE") = kLongBefore;
  m.attr("LONG_AFTER") = kLongAfter;
  m.attr("SIMD_LANES") = kLanes;
#if defined(__F16C__)
  m.attr("F16C") = true;
#else
  m.attr("F16C") = false;
#endif
  py::class_<Engine>(m, "Engine")
      .def(py::init<int>(), py::arg("threads") = 0)
      .def_property_readonly("threads", &Engine::threads)
      .def("add_bank", &Engine::add_bank, py::arg("audio"), py::arg("offsets"), py::arg("lengths"),
           py::arg("layer_velocities"), py::arg("precision") = "float32")
      .def("set_notes", &Engine::set_notes, py::arg("onset"), py::arg("offset"), py::arg("key"), py::arg("velocity"),
           py::arg("piece_start"))
      .def("set_noise", &Engine::set_noise, py::arg("table"))
      .def("synthesize", &Engine::synthesize, py::arg("piece"), py::arg("bank"), py::arg("start_sample"),
           py::arg("gain"), py::arg("detune_ratio"), py::arg("noise_amplitude"), py::arg("noise_offset"),
           py::arg("tilt_db"), py::arg("fft_magnitude").noconvert(), py::arg("key_energy").noconvert(),
           py::arg("key_active").noconvert(), py::arg("key_onset").noconvert(), py::arg("frames_per_segment"), py::arg("release_samples"),
           py::arg("velocity_exponent"), py::arg("window"), py::arg("tilt_pivot_hz"),
           py::arg("fft_long") = py::none())
      .def("render", &Engine::render, py::arg("piece"), py::arg("bank"), py::arg("audio").noconvert(),
           py::arg("release_samples"), py::arg("velocity_exponent"))
      .def("analyze", &Engine::analyze, py::arg("buffers"), py::arg("fft_magnitude").noconvert(), py::arg("window"))
      .def("analyze_long", &Engine::analyze_long, py::arg("audio"), py::arg("fft_long").noconvert())
      .def("describe", &Engine::describe);
  m.def("modal_tones", &modal_tones, py::arg("frequency_hz"), py::arg("phase"), py::arg("decay_rate"),
        py::arg("beat_hz"), py::arg("beat_phase"), py::arg("weights"), py::arg("aftersound_level"),
        py::arg("aftersound_ratio"), py::arg("beating_depth"), py::arg("attack_seconds"), py::arg("n_samples"),
        py::arg("threads") = 0,
        "Sum of decaying, beating partials per hammer blow: [blows, n_samples] float32, the same bits on any CPU.");
}

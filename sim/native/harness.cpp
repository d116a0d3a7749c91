// Native Verilator harness for one Tessera unit: runs a whole StreamProgram per call.
//
// Compiled together with the Verilated model of a unit of hdl/units.py (prefix `Varray`) into a
// shared library that sim/drivers/native.py loads with ctypes. Every unit has one or two input
// streams and one output stream `out`; these macros name the inputs:
//   TESSERA_STREAMS      1 or 2
//   TESSERA_IN0          name of input stream 0 (e.g. weights, operands, params, acts)
//   TESSERA_IN1          name of input stream 1 (two-stream units only)
// TESSERA_TRACE adds VCD tracing (the model must be Verilated with --trace).
// VL_USER_FATAL must be defined for the whole build: vl_fatal (harness_common.h) throws instead
// of exiting the host process, and every exported function catches. The library is built with
// -fvisibility=hidden, so only the tessera_* functions are exported (TESSERA_EXPORT).
//
// Cycle semantics are those of sim/drivers/pysim.py: after reset, cycle 0 is the first clock
// edge. In each cycle every producer with beats left either draws an idle cycle (probability
// `idle`, only while it waits to present a new beat) or presents its next beat (valid=1) and
// holds it until an edge where ready=1; the consumer drives out.ready=0 with probability
// `stall`. Inputs are applied with clk low, the combinational logic settles (eval), ready/valid
// are sampled, then the rising edge is evaluated. The cycle count is the index of the cycle of
// the last output transfer plus one. Each stream has its own generator, seeded like pysim's
// (consumer: seed, input stream i: seed + 1 + i), but it is not numpy's generator, so random
// runs transfer the same data as pysim's in different cycles.

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>

#include "Varray.h"
#include "harness_common.h"
#include "verilated.h"
#ifdef TESSERA_TRACE
#include "verilated_vcd_c.h"
#endif

#if !defined(TESSERA_STREAMS) || !defined(TESSERA_IN0) || (TESSERA_STREAMS != 1 && TESSERA_STREAMS != 2)
#error "define TESSERA_STREAMS (1 or 2) and TESSERA_IN0 (and TESSERA_IN1 for 2 streams)"
#endif
#if TESSERA_STREAMS == 2 && !defined(TESSERA_IN1)
#error "a two-stream unit needs TESSERA_IN1"
#endif

// Verilator escapes the "__" of Amaranth's port names as "___05F".
#define TESSERA_PORT_(stream, field) stream##___05F##field
#define TESSERA_PORT(stream, field) TESSERA_PORT_(stream, field)

namespace {

// Version of the exported C interface; native.py refuses a library with another one.
constexpr int64_t kAbiVersion = 3;

// Return codes of tessera_run (a non-negative value is the cycle count).
constexpr int64_t kTimeout = -1;     // max_cycles reached before all output beats transferred
constexpr int64_t kNoProgress = -2;  // quiet_limit cycles in a row without any transfer
constexpr int64_t kBadArgument = -3;
constexpr int64_t kFatal = -4;  // Verilator fatal error or C++ exception; see tessera_error

// Indices into the counters array of tessera_run.
enum Counter : int {
    kCycles = 0,        // cycles simulated (the result on success, cycles reached on error)
    kInBeats0 = 1,      // beats transferred on input stream 0
    kInBeats1 = 2,      // ... on input stream 1 (0 for a single-stream design)
    kOutBeats = 3,      // beats transferred on out
    kOutStalls = 4,     // cycles with out.valid & ~out.ready (consumer back-pressure)
    kInBlocked0 = 5,    // cycles input stream 0 offered valid while ready was 0
    kInBlocked1 = 6,    // ... stream 1
    kLastTransfer = 7,  // cycle index of the last transfer on any stream (-1: none)
    kCounters = 8,
};

using tessera::get;
using tessera::port_words;
using tessera::put;

// ---- random numbers: xoshiro256+ seeded by splitmix64 (one generator per stream) ----

class Rng {
  public:
    explicit Rng(uint64_t seed) {
        for (uint64_t& word : state_) {
            seed += 0x9E3779B97F4A7C15ull;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            word = z ^ (z >> 31);
        }
    }
    // Uniform in [0, 1).
    double uniform() {
        const uint64_t result = state_[0] + state_[3];
        const uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = (state_[3] << 45) | (state_[3] >> 19);
        return static_cast<double>(result >> 11) * 0x1.0p-53;
    }
    // True with probability p (no draw at all when p == 0, like pysim).
    bool chance(double p) { return p > 0.0 && uniform() < p; }

  private:
    uint64_t state_[4];
};

// One input stream: presents beats in order, holding each until it transfers.
struct Producer {
    const uint32_t* data;
    int64_t beats;
    int64_t words;
    int64_t next = 0;
    bool presenting = false;
    Rng rng;
    Producer(const uint32_t* d, int64_t b, int64_t w, uint64_t seed)
        : data(d), beats(b), words(w), rng(seed) {}

    // Decide this cycle's valid; copy the payload into `port` when a new beat is presented.
    template <typename Port>
    bool drive(Port& port, double idle) {
        if (!presenting && next < beats && !rng.chance(idle)) {
            put(port, data + next * words);
            presenting = true;
        }
        return presenting;
    }
};

using Harness = tessera::Harness<Varray>;

}  // namespace

extern "C" {

// Fill info[0..7]: ABI version, input streams, words per beat of input 0 and 1, words per out
// beat, traced (1/0), 0 (reserved), counters in tessera_run's array.
TESSERA_EXPORT void tessera_info(int64_t* info) {
    // Port widths come from the types of a model's ports; a throwaway context is cheap.
    VerilatedContext context;
    Varray top{&context};
    info[0] = kAbiVersion;
    info[1] = TESSERA_STREAMS;
    info[2] = port_words(top.TESSERA_PORT(TESSERA_IN0, payload));
#if TESSERA_STREAMS == 2
    info[3] = port_words(top.TESSERA_PORT(TESSERA_IN1, payload));
#else
    info[3] = 0;
#endif
    info[4] = port_words(top.out___05Fpayload);
#ifdef TESSERA_TRACE
    info[5] = 1;
#else
    info[5] = 0;
#endif
    info[6] = 0;
    info[7] = kCounters;
}

// A new model; with a non-null `vcd_path` (traced builds only) every cycle goes to that VCD file.
// Returns null on failure (e.g. the VCD file cannot be written, or tracing is not built in).
TESSERA_EXPORT void* tessera_create(const char* vcd_path) {
    return tessera::create_harness<Varray>(vcd_path);
}

// Close the trace (if any) and free the model.
TESSERA_EXPORT void tessera_destroy(void* handle) { tessera::destroy_harness<Varray>(handle); }

// Message of the last kFatal result of tessera_run on this handle ("" if none).
TESSERA_EXPORT const char* tessera_error(void* handle) {
    return tessera::harness_error<Varray>(handle);
}

// Reset the model and run one program. `in1`/`beats1` are ignored by single-stream designs. With
// `ordered` nonzero, input 1 presents its first beat only in the cycle after input 0's last
// transfer (StreamProgram.ORDERED).
// `out` receives `out_beats` beats of port_words(out__payload) words each. Stops with kTimeout
// after `max_cycles` cycles (0: no limit) and with kNoProgress after `quiet_limit` cycles in a
// row without a transfer on any stream (0: no limit). `counters` (kCounters int64 values) is
// filled on success and on error. Returns the cycle count or a negative code.
TESSERA_EXPORT int64_t tessera_run(void* handle, const uint32_t* in0, int64_t beats0, const uint32_t* in1,
                    int64_t beats1, uint32_t* out, int64_t out_beats, double idle, double stall,
                    uint64_t seed, int64_t ordered, uint64_t max_cycles, uint64_t quiet_limit,
                    int64_t* counters) {
    auto* harness = static_cast<Harness*>(handle);
    if (!harness || !counters) return kBadArgument;
    for (int i = 0; i < kCounters; ++i) counters[i] = 0;
    counters[kLastTransfer] = -1;
    if (beats0 < 0 || beats1 < 0 || out_beats < 0 || (beats0 > 0 && !in0)
        || (TESSERA_STREAMS == 2 && beats1 > 0 && !in1) || (out_beats > 0 && !out)
        || !(idle >= 0.0 && idle < 1.0) || !(stall >= 0.0 && stall < 1.0)) {
        return kBadArgument;
    }
    harness->error.clear();
    Varray& top = *harness->top;
    const int64_t out_words = port_words(top.out___05Fpayload);
    Producer p0(in0, beats0, port_words(top.TESSERA_PORT(TESSERA_IN0, payload)), seed + 1);
#if TESSERA_STREAMS == 2
    Producer p1(in1, beats1, port_words(top.TESSERA_PORT(TESSERA_IN1, payload)), seed + 2);
#endif
    Rng consumer(seed);
    int64_t collected = 0, out_stalls = 0, blocked0 = 0, blocked1 = 0;
    int64_t last_transfer = -1;
    uint64_t cycle = 0, quiet = 0;
    int64_t result = 0;

    try {
        // Synchronous reset: a few edges with rst high, nothing offered, out ready.
        top.rst = 1;
        top.TESSERA_PORT(TESSERA_IN0, valid) = 0;
#if TESSERA_STREAMS == 2
        top.TESSERA_PORT(TESSERA_IN1, valid) = 0;
#endif
        top.out___05Fready = 1;
        for (int i = 0; i < 3; ++i) {
            top.clk = 0;
            harness->eval();
            top.clk = 1;
            harness->eval();
        }
        top.rst = 0;

        while (collected < out_beats) {
            if (max_cycles && cycle >= max_cycles) {
                result = kTimeout;
                break;
            }
            if (quiet_limit && quiet >= quiet_limit) {
                result = kNoProgress;
                break;
            }
            // Drive this cycle's inputs with the clock low and let the logic settle.
            const bool valid0 = p0.drive(top.TESSERA_PORT(TESSERA_IN0, payload), idle);
            top.TESSERA_PORT(TESSERA_IN0, valid) = valid0;
#if TESSERA_STREAMS == 2
            const bool started1 = !ordered || p0.next >= p0.beats;
            const bool valid1 = started1 && p1.drive(top.TESSERA_PORT(TESSERA_IN1, payload), idle);
            top.TESSERA_PORT(TESSERA_IN1, valid) = valid1;
#endif
            const bool ready = !consumer.chance(stall);
            top.out___05Fready = ready;
            top.clk = 0;
            harness->eval();

            // Sample what transfers at the coming rising edge.
            bool moved = false;
            if (valid0) {
                if (top.TESSERA_PORT(TESSERA_IN0, ready)) {
                    p0.presenting = false;
                    ++p0.next;
                    moved = true;
                } else {
                    ++blocked0;
                }
            }
#if TESSERA_STREAMS == 2
            if (valid1) {
                if (top.TESSERA_PORT(TESSERA_IN1, ready)) {
                    p1.presenting = false;
                    ++p1.next;
                    moved = true;
                } else {
                    ++blocked1;
                }
            }
#endif
            if (top.out___05Fvalid) {
                if (ready) {
                    get(out + collected * out_words, top.out___05Fpayload);
                    ++collected;
                    moved = true;
                } else {
                    ++out_stalls;
                }
            }
            top.clk = 1;
            harness->eval();

            if (moved) {
                quiet = 0;
                last_transfer = static_cast<int64_t>(cycle);
            } else {
                ++quiet;
            }
            ++cycle;
        }
        if (result == 0) result = static_cast<int64_t>(cycle);
#ifdef TESSERA_TRACE
        if (harness->trace) harness->trace->flush();
#endif
    } catch (const std::exception& error) {
        harness->error = error.what();
        result = kFatal;
    } catch (...) {
        harness->error = "unknown C++ exception";
        result = kFatal;
    }

    counters[kCycles] = static_cast<int64_t>(cycle);
    counters[kInBeats0] = p0.next;
#if TESSERA_STREAMS == 2
    counters[kInBeats1] = p1.next;
#endif
    counters[kOutBeats] = collected;
    counters[kOutStalls] = out_stalls;
    counters[kInBlocked0] = blocked0;
    counters[kInBlocked1] = blocked1;
    counters[kLastTransfer] = last_transfer;
    (void)blocked1;
    (void)ordered;
    return result;
}

}  // extern "C"

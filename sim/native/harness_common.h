// What the native Verilator harnesses (harness.cpp for one unit, accel_harness.cpp for the whole
// accelerator) share: port <-> uint32-word copies, the model's lifecycle (create with optional
// VCD tracing, destroy, last error), and Verilator's fatal-error hook.
//
// Include it after the Verilated model's header. TESSERA_TRACE adds VCD tracing (the model must be
// Verilated with --trace). VL_USER_FATAL must be defined for the whole build: vl_fatal below
// throws instead of exiting the host process, and every exported function catches.

#ifndef TESSERA_HARNESS_COMMON_H
#define TESSERA_HARNESS_COMMON_H

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "verilated.h"
#ifdef TESSERA_TRACE
#include "verilated_vcd_c.h"
#endif

// The libraries are built with -fvisibility=hidden: only functions marked so are exported.
#define TESSERA_EXPORT __attribute__((visibility("default")))

namespace tessera {

// ---- ports <-> uint32 words (bit 0 of the port is bit 0 of word 0, as pack_beats packs) ----

constexpr int64_t words_of(const CData*) { return 1; }
constexpr int64_t words_of(const SData*) { return 1; }
constexpr int64_t words_of(const IData*) { return 1; }
constexpr int64_t words_of(const QData*) { return 2; }
template <std::size_t N>
constexpr int64_t words_of(const VlWide<N>*) {
    return static_cast<int64_t>(N);
}

inline void put(CData& port, const uint32_t* w) { port = static_cast<CData>(w[0]); }
inline void put(SData& port, const uint32_t* w) { port = static_cast<SData>(w[0]); }
inline void put(IData& port, const uint32_t* w) { port = w[0]; }
inline void put(QData& port, const uint32_t* w) {
    port = static_cast<QData>(w[0]) | (static_cast<QData>(w[1]) << 32);
}
template <std::size_t N>
inline void put(VlWide<N>& port, const uint32_t* w) {
    std::memcpy(port.m_storage, w, N * sizeof(EData));
}

inline void get(uint32_t* w, const CData& port) { w[0] = port; }
inline void get(uint32_t* w, const SData& port) { w[0] = port; }
inline void get(uint32_t* w, const IData& port) { w[0] = port; }
inline void get(uint32_t* w, const QData& port) {
    w[0] = static_cast<uint32_t>(port);
    w[1] = static_cast<uint32_t>(port >> 32);
}
template <std::size_t N>
inline void get(uint32_t* w, const VlWide<N>& port) {
    std::memcpy(w, port.m_storage, N * sizeof(EData));
}

template <typename Port>
constexpr int64_t port_words(const Port& port) {
    return words_of(&port);
}

// ---- one simulation model and its trace ----

template <typename Model>
struct Harness {
    std::unique_ptr<VerilatedContext> context;
    std::unique_ptr<Model> top;
#ifdef TESSERA_TRACE
    std::unique_ptr<VerilatedVcdC> trace;
#endif
    uint64_t time = 0;
    std::string error;

    // Evaluate the model (and dump the trace, if any) for the next half cycle.
    void eval() {
        top->eval();
#ifdef TESSERA_TRACE
        if (trace) trace->dump(time);
#endif
        time += 5;
    }
};

// A new model; with a non-null `vcd_path` (traced builds only) every cycle goes to that VCD file.
// Returns null on failure (e.g. the VCD file cannot be written, or tracing is not built in).
template <typename Model>
void* create_harness(const char* vcd_path) {
    try {
        auto harness = std::make_unique<Harness<Model>>();
        harness->context = std::make_unique<VerilatedContext>();
        harness->context->fatalOnError(true);
#ifdef TESSERA_TRACE
        if (vcd_path) harness->context->traceEverOn(true);
#endif
        harness->top = std::make_unique<Model>(harness->context.get());
        if (vcd_path) {
#ifdef TESSERA_TRACE
            harness->trace = std::make_unique<VerilatedVcdC>();
            harness->top->trace(harness->trace.get(), 99);
            harness->trace->open(vcd_path);
            if (!harness->trace->isOpen()) return nullptr;
#else
            return nullptr;
#endif
        }
        return harness.release();
    } catch (...) {
        return nullptr;
    }
}

// Close the trace (if any) and free the model.
template <typename Model>
void destroy_harness(void* handle) {
    auto* harness = static_cast<Harness<Model>*>(handle);
    if (!harness) return;
    try {
#ifdef TESSERA_TRACE
        if (harness->trace) harness->trace->close();
#endif
        harness->top->final();
    } catch (...) {
    }
    delete harness;
}

// Message of the last fatal result of a run on this handle ("" if none).
template <typename Model>
const char* harness_error(void* handle) {
    auto* harness = static_cast<Harness<Model>*>(handle);
    return harness ? harness->error.c_str() : "";
}

}  // namespace tessera

// Verilator reports fatal errors here (VL_USER_FATAL): throw so that the host process survives.
// (Each library compiles exactly one harness, so this definition appears once per library.)
void vl_fatal(const char* filename, int linenum, const char* hier, const char* msg) {
    (void)hier;
    Verilated::threadContextp()->gotError(true);
    throw std::runtime_error(std::string("Verilator fatal error: ") + (msg ? msg : "?") + " ("
                             + (filename ? filename : "?") + ":" + std::to_string(linenum) + ")");
}

#endif  // TESSERA_HARNESS_COMMON_H

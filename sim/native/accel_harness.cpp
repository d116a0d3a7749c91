// Native Verilator harness for the whole accelerator: runs one instruction program per call.
//
// Compiled together with the Verilated model of a component with the ports of
// hdl/top_ports.py (prefix `Vaccel`) into a shared library that sim/drivers/accel_native.py loads
// with ctypes. These macros describe the design:
//   TESSERA_BUS_BYTES    B, bytes of one memory bus word (AccelConfig.bus_bytes)
//   TESSERA_COUNTERS     fields of the `counters` port (len(hdl.top_ports.COUNTERS))
//   TESSERA_COUNTER_BITS bits of each field (hdl.top_ports.COUNTER_BITS)
// TESSERA_TRACE adds VCD tracing (the model must be Verilated with --trace).
// VL_USER_FATAL must be defined for the whole build: vl_fatal (harness_common.h) throws instead
// of exiting the host process, and every exported function catches. The library is built with
// -fvisibility=hidden, so only the tessera_accel_* functions are exported.
//
// Each call resets the model and runs cycles until it stops. Cycle 0 is the first clock edge
// after reset. In each cycle the harness drives the inputs with the clock low (the next
// instruction word on `cmd`, held until accepted, `cmd_last` with the final one; the memory's
// side of `mem`), lets the logic settle (eval), samples valid/ready, then evaluates the rising
// edge and applies what transferred to the memory model. The run stops, before the edge of
// cycle c, with c cycles (status[kCycles]; a faulty request stops the run in the cycle it was
// accepted in):
//   - when every word has been accepted and `idle` is high: success;
//   - when `error` is nonzero and `idle` is high: the accelerator's error (code and index);
//   - after max_cycles cycles (kTimeout) or quiet_limit quiet cycles in a row (kHang): a cycle is
//     quiet when nothing transferred on cmd, req, rdata or wdata, the progress counter (the
//     `macs` field) did not change, and the memory was not itself holding back a read word or a
//     write word (latency, bandwidth);
//   - when a request leaves the memory (kMemoryRange) or breaks the port protocol (kProtocol):
//     a misaligned address, a burst of zero beats, or `idle` high with bursts outstanding.
//
// The memory model (docs/accelerator-harness.md), on the caller's byte array:
//   - `req` is always ready; bursts are checked when accepted (address in range, aligned).
//   - Reads are answered in request order. A read accepted in cycle t offers its first word in
//     cycle t + 1 + latency at the earliest, and only once every write burst requested before it
//     has been fully written; its data is what memory held at that moment (a snapshot), so a
//     later write never changes an earlier read's data. Then at most one word per cycle.
//   - Writes are paired with `wdata` words in order; a word is accepted when its burst's request
//     was accepted in an earlier cycle or in the same cycle. Byte strobes are honoured.
//   - Bandwidth: each direction has a credit of bytes that grows by bytes_per_cycle every cycle
//     up to B + bytes_per_cycle - 1 (full after reset); a word is offered (read) or accepted
//     (write) only while the credit is at least B, and its transfer costs B. So the long-run
//     rate of each direction is exactly bytes_per_cycle (1 <= bytes_per_cycle <= B).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "Vaccel.h"
#include "harness_common.h"
#include "verilated.h"
#ifdef TESSERA_TRACE
#include "verilated_vcd_c.h"
#endif

#if !defined(TESSERA_BUS_BYTES) || !defined(TESSERA_COUNTERS) || !defined(TESSERA_COUNTER_BITS)
#error "define TESSERA_BUS_BYTES, TESSERA_COUNTERS and TESSERA_COUNTER_BITS"
#endif

namespace {

// Version of the exported C interface; accel_native.py refuses a library with another one.
constexpr int64_t kAbiVersion = 1;

// Return codes of tessera_accel_run (a non-negative value is the cycle count).
constexpr int64_t kTimeout = -1;      // max_cycles reached
constexpr int64_t kHang = -2;         // quiet_limit quiet cycles in a row
constexpr int64_t kBadArgument = -3;  // an argument out of range
constexpr int64_t kFatal = -4;        // Verilator fatal error or C++ exception; tessera_accel_error
constexpr int64_t kMemoryRange = -5;  // a burst reaches past the end of memory
constexpr int64_t kProtocol = -6;     // the accelerator broke the memory port's protocol

// Kinds of fault (status[kFaultKind]) of kMemoryRange and kProtocol.
enum Fault : int64_t {
    kNoFault = 0,
    kOutOfRange = 1,       // addr + beats * B > memory bytes
    kMisaligned = 2,       // addr not a multiple of B
    kZeroBeats = 3,        // a burst of 0 words
    kIdleOutstanding = 4,  // idle high while bursts are outstanding (fault_beats: words left)
};

// Indices into the status array of tessera_accel_run (filled on every return but kBadArgument).
enum Status : int {
    kCycles = 0,             // cycles simulated (the result on success)
    kAccepted = 1,           // cmd words accepted
    kCmdStall = 2,           // cycles a word was offered on cmd and not accepted
    kReadBursts = 3,         // read requests accepted
    kWriteBursts = 4,        // write requests accepted
    kReadWords = 5,          // rdata words transferred
    kWrittenWords = 6,       // wdata words transferred
    kReadWait = 7,           // sum over read bursts: cycles from acceptance to first word
    kRdataStall = 8,         // cycles rdata was offered and not taken
    kWdataHeld = 9,          // cycles wdata was valid and the memory held it off
    kLastTransfer = 10,      // cycle of the last transfer on any stream (-1: none)
    kError = 11,             // `error` when the run stopped
    kErrorIndex = 12,        // `error_index` when the run stopped
    kPendingReadWords = 13,  // read words requested and not yet transferred
    kPendingWriteWords = 14, // write words requested and not yet written
    kFaultKind = 15,         // Fault
    kFaultAddress = 16,      // the offending request's address
    kFaultBeats = 17,        // ... its beats (kIdleOutstanding: words outstanding)
    kFaultWrite = 18,        // ... 1 for a write burst
    kStatusSize = 19,
};

constexpr int64_t kBus = TESSERA_BUS_BYTES;
constexpr int kCounters = TESSERA_COUNTERS;
constexpr int kCounterBits = TESSERA_COUNTER_BITS;
constexpr int kMaxWords = 40;  // uint32 words of the widest port (wdata at B = 128: 36)

using tessera::get;
using tessera::put;
using tessera::words_of;

constexpr int64_t bits_to_words(int64_t bits) { return (bits + 31) / 32; }

template <typename Port>
constexpr int64_t member_words() {
    return words_of(static_cast<std::remove_reference_t<Port>*>(nullptr));
}

// The port types must be the widths the macros promise (a stale or foreign model fails here).
static_assert(member_words<decltype(Vaccel::cmd___05Fpayload)>() == 4,
              "cmd payload must be 128 bits");
static_assert(member_words<decltype(Vaccel::mem___05Freq___05Fpayload)>() == 2,
              "req payload must be 49 bits");
static_assert(member_words<decltype(Vaccel::mem___05Frdata___05Fpayload)>()
                  == bits_to_words(8 * kBus),
              "rdata payload must be 8 * TESSERA_BUS_BYTES bits");
static_assert(member_words<decltype(Vaccel::mem___05Fwdata___05Fpayload)>()
                  == bits_to_words(9 * kBus),
              "wdata payload must be 9 * TESSERA_BUS_BYTES bits");
static_assert(member_words<decltype(Vaccel::counters)>()
                  == bits_to_words(kCounters * kCounterBits),
              "counters must be TESSERA_COUNTERS fields of TESSERA_COUNTER_BITS bits");
static_assert(bits_to_words(9 * kBus) + 2 <= kMaxWords
                  && bits_to_words(kCounters * kCounterBits) + 2 <= kMaxWords,
              "a port is too wide for kMaxWords (field() reads two words past a field)");
static_assert(kCounterBits <= 64, "counters wider than 64 bits");

// Bits [bit, bit + width) of a word array (width <= 64; reads up to two words past the field).
inline uint64_t field(const uint32_t* w, int bit, int width) {
    const int i = bit / 32;
    const unsigned __int128 bits = static_cast<unsigned __int128>(w[i])
                                   | static_cast<unsigned __int128>(w[i + 1]) << 32
                                   | static_cast<unsigned __int128>(w[i + 2]) << 64;
    const uint64_t value = static_cast<uint64_t>(bits >> (bit % 32));
    return width == 64 ? value : value & ((uint64_t{1} << width) - 1);
}

// Bus words are copied between memory and port words with memcpy: byte i of a word is bits
// [8i, 8i + 8) of the port, which is byte i of the uint32 array on a little-endian host.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the harness assumes a little-endian host");

// Write the bus word in `w` (data bytes, then one strobe bit per byte) to `target`.
inline void write_strobed(uint8_t* target, const uint32_t* w) {
    const auto* data = reinterpret_cast<const uint8_t*>(w);
    for (int64_t base = 0; base < kBus; base += 64) {
        const int width = static_cast<int>(std::min<int64_t>(64, kBus - base));
        const uint64_t all = width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
        uint64_t strobe = field(w, static_cast<int>(8 * kBus + base), width);
        if (strobe == all) {
            std::memcpy(target + base, data + base, static_cast<size_t>(width));
            continue;
        }
        while (strobe) {
            const int i = __builtin_ctzll(strobe);
            target[base + i] = data[base + i];
            strobe &= strobe - 1;
        }
    }
}

// ---- the memory model's bursts ----

struct ReadBurst {
    uint64_t addr;             // byte address of the first word
    int64_t beats;             // words in the burst
    int64_t sent = 0;          // words transferred
    int64_t accepted;          // cycle the request was accepted
    int64_t ready_cycle;       // first cycle a word may be offered (latency)
    int64_t writes_before;     // write words requested before this burst
    bool snapped = false;      // `data` holds the burst's bytes
    std::vector<uint8_t> data; // memory as the burst reads it
};

struct WriteBurst {
    uint64_t addr;  // byte address of the next word
    int64_t left;   // words not written yet
};

using Harness = tessera::Harness<Vaccel>;

}  // namespace

extern "C" {

// Fill info[0..7]: ABI version, B, counters, counter bits, traced (1/0), status entries,
// 0, 0 (reserved).
TESSERA_EXPORT void tessera_accel_info(int64_t* info) {
    info[0] = kAbiVersion;
    info[1] = kBus;
    info[2] = kCounters;
    info[3] = kCounterBits;
#ifdef TESSERA_TRACE
    info[4] = 1;
#else
    info[4] = 0;
#endif
    info[5] = kStatusSize;
    info[6] = 0;
    info[7] = 0;
}

// A new model; with a non-null `vcd_path` (traced builds only) every cycle goes to that VCD file.
// Returns null on failure (e.g. the VCD file cannot be written, or tracing is not built in).
TESSERA_EXPORT void* tessera_accel_create(const char* vcd_path) {
    return tessera::create_harness<Vaccel>(vcd_path);
}

// Close the trace (if any) and free the model.
TESSERA_EXPORT void tessera_accel_destroy(void* handle) { tessera::destroy_harness<Vaccel>(handle); }

// Message of the last kFatal result of tessera_accel_run on this handle ("" if none).
TESSERA_EXPORT const char* tessera_accel_error(void* handle) {
    return tessera::harness_error<Vaccel>(handle);
}

// Reset the model and run `program` (`words` instruction words of four uint32, least significant
// first) against `memory` (`memory_bytes` bytes, written in place). `latency` >= 0 and
// 1 <= `bytes_per_cycle` <= B configure the memory (see the top of this file); `max_cycles` and
// `quiet_limit` (0: no limit) stop a run that does not finish; `progress_counter` is the index of
// the counters field whose change counts as progress (-1: none). On return `counters`
// (TESSERA_COUNTERS values) holds the `counters` port and `status` (kStatusSize values) the
// run's statistics, also on error. Returns the cycle count or a negative code.
TESSERA_EXPORT int64_t tessera_accel_run(void* handle, uint8_t* memory, int64_t memory_bytes,
                                         const uint32_t* program, int64_t words, int64_t latency,
                                         int64_t bytes_per_cycle, uint64_t max_cycles,
                                         uint64_t quiet_limit, int64_t progress_counter,
                                         int64_t* counters, int64_t* status) {
    auto* harness = static_cast<Harness*>(handle);
    if (!harness || !counters || !status || memory_bytes < 0 || (memory_bytes > 0 && !memory)
        || words < 0 || (words > 0 && !program) || latency < 0 || bytes_per_cycle < 1
        || bytes_per_cycle > kBus || progress_counter < -1 || progress_counter >= kCounters) {
        return kBadArgument;
    }
    for (int i = 0; i < kStatusSize; ++i) status[i] = 0;
    for (int i = 0; i < kCounters; ++i) counters[i] = 0;
    status[kLastTransfer] = -1;
    harness->error.clear();
    Vaccel& top = *harness->top;

    const uint64_t size = static_cast<uint64_t>(memory_bytes);
    const int64_t credit_cap = kBus + bytes_per_cycle - 1;
    int64_t read_credit = credit_cap, write_credit = credit_cap;
    std::deque<ReadBurst> reads;
    std::deque<WriteBurst> writes;
    int64_t write_words_requested = 0, written = 0, read_words_requested = 0, read_words = 0;
    int64_t accepted = 0, loaded = -1;
    int64_t cycle = 0;
    uint64_t quiet = 0;
    uint64_t last_progress = 0;
    uint32_t buffer[kMaxWords] = {};
    int64_t result = 0;

    auto fault = [&](int64_t code, Fault kind, uint64_t addr, int64_t beats, bool write) {
        status[kFaultKind] = kind;
        status[kFaultAddress] = static_cast<int64_t>(addr);
        status[kFaultBeats] = beats;
        status[kFaultWrite] = write;
        return code;
    };
    auto progress_value = [&]() -> uint64_t {
        get(buffer, top.counters);
        return field(buffer, static_cast<int>(progress_counter) * kCounterBits, kCounterBits);
    };
    // Take the snapshot of every read whose earlier writes are all done.
    auto snap_reads = [&]() {
        for (ReadBurst& read : reads) {
            if (read.snapped) continue;
            if (read.writes_before > written) break;
            const size_t bytes = static_cast<size_t>(read.beats * kBus);
            read.data.assign(memory + read.addr, memory + read.addr + bytes);
            read.snapped = true;
        }
    };

    try {
        // Synchronous reset: a few edges with rst high, nothing offered, nothing accepted.
        top.rst = 1;
        top.cmd___05Fvalid = 0;
        top.cmd_last = 0;
        top.mem___05Freq___05Fready = 0;
        top.mem___05Frdata___05Fvalid = 0;
        top.mem___05Fwdata___05Fready = 0;
        for (int i = 0; i < 3; ++i) {
            top.clk = 0;
            harness->eval();
            top.clk = 1;
            harness->eval();
        }
        top.rst = 0;
        if (progress_counter >= 0) last_progress = progress_value();

        for (;;) {
            if (max_cycles && static_cast<uint64_t>(cycle) >= max_cycles) {
                result = kTimeout;
                break;
            }
            if (quiet_limit && quiet >= quiet_limit) {
                result = kHang;
                break;
            }
            // Drive this cycle's inputs with the clock low.
            read_credit = std::min(credit_cap, read_credit + bytes_per_cycle);
            write_credit = std::min(credit_cap, write_credit + bytes_per_cycle);
            const bool cmd_valid = accepted < words;
            if (cmd_valid && loaded != accepted) {
                put(top.cmd___05Fpayload, program + 4 * accepted);
                loaded = accepted;
            }
            top.cmd___05Fvalid = cmd_valid;
            top.cmd_last = cmd_valid && accepted + 1 == words;  // the program's final word
            ReadBurst* head = reads.empty() ? nullptr : &reads.front();
            const bool rdata_valid =
                head && head->snapped && cycle >= head->ready_cycle && read_credit >= kBus;
            // The memory holding back a read (latency, bandwidth) is not the design's hang.
            const bool read_owed = head && head->snapped && !rdata_valid;
            if (rdata_valid) {
                buffer[0] = 0;  // a bus of 1 or 2 bytes fills only part of word 0
                std::memcpy(buffer, head->data.data() + head->sent * kBus, kBus);
                put(top.mem___05Frdata___05Fpayload, buffer);
            }
            top.mem___05Frdata___05Fvalid = rdata_valid;
            top.mem___05Freq___05Fready = 1;
            bool wdata_ready = !writes.empty() && write_credit >= kBus;
            top.mem___05Fwdata___05Fready = wdata_ready;
            top.clk = 0;
            harness->eval();
            // A write burst requested in this very cycle may take its first word now.
            const bool req_valid = top.mem___05Freq___05Fvalid;
            const QData request = top.mem___05Freq___05Fpayload;
            const bool req_write = (request >> 48) & 1;
            if (!wdata_ready && writes.empty() && write_credit >= kBus && req_valid && req_write) {
                wdata_ready = true;
                top.mem___05Fwdata___05Fready = 1;
                harness->eval();
            }

            // Stop once idle with nothing left to do (before this cycle's edge).
            if ((accepted == words || top.error != 0) && top.idle) {
                const int64_t reads_left = read_words_requested - read_words;
                const int64_t writes_left = write_words_requested - written;
                if (reads_left || writes_left) {
                    const bool write = writes_left != 0;
                    result = fault(kProtocol, kIdleOutstanding,
                                   write ? writes.front().addr : reads.front().addr,
                                   write ? writes_left : reads_left, write);
                } else {
                    result = cycle;
                }
                break;
            }

            // Sample what transfers at the coming rising edge.
            const bool cmd_moved = cmd_valid && top.cmd___05Fready;
            const bool rdata_moved = rdata_valid && top.mem___05Frdata___05Fready;
            const bool wdata_valid = top.mem___05Fwdata___05Fvalid;
            const bool wdata_moved = wdata_valid && wdata_ready;
            // Nor is a write word held off for bandwidth alone.
            const bool memory_owes = read_owed || (wdata_valid && !writes.empty() && !wdata_ready);
            if (wdata_moved) get(buffer, top.mem___05Fwdata___05Fpayload);
            if (cmd_valid && !cmd_moved) ++status[kCmdStall];
            if (rdata_valid && !rdata_moved) ++status[kRdataStall];
            if (wdata_valid && !wdata_ready) ++status[kWdataHeld];
            top.clk = 1;
            harness->eval();

            // Apply the transfers: the request first (its write burst may take this edge's word).
            // A faulty request stops the run at once; this edge's data transfers are dropped.
            if (req_valid) {
                const uint64_t addr = request & 0xFFFFFFFFu;
                const int64_t beats = static_cast<int64_t>((request >> 32) & 0xFFFFu);
                if (addr % kBus) {
                    result = fault(kProtocol, kMisaligned, addr, beats, req_write);
                    break;
                }
                if (beats == 0) {
                    result = fault(kProtocol, kZeroBeats, addr, beats, req_write);
                    break;
                }
                if (addr + static_cast<uint64_t>(beats * kBus) > size) {
                    result = fault(kMemoryRange, kOutOfRange, addr, beats, req_write);
                    break;
                }
                if (req_write) {
                    writes.push_back({addr, beats});
                    write_words_requested += beats;
                    ++status[kWriteBursts];
                } else {
                    ReadBurst read;
                    read.addr = addr;
                    read.beats = beats;
                    read.accepted = cycle;
                    read.ready_cycle = cycle + 1 + latency;
                    read.writes_before = write_words_requested;
                    reads.push_back(std::move(read));
                    read_words_requested += beats;
                    ++status[kReadBursts];
                }
            }
            if (wdata_moved) {
                WriteBurst& write = writes.front();
                write_strobed(memory + write.addr, buffer);
                write.addr += kBus;
                if (--write.left == 0) writes.pop_front();
                ++written;
                write_credit -= kBus;
            }
            if (rdata_moved) {
                if (head->sent == 0) status[kReadWait] += cycle - head->accepted;
                if (++head->sent == head->beats) reads.pop_front();
                ++read_words;
                read_credit -= kBus;
            }
            snap_reads();
            if (cmd_moved) ++accepted;

            bool progress = req_valid || cmd_moved || rdata_moved || wdata_moved;
            if (progress) status[kLastTransfer] = cycle;
            if (progress_counter >= 0) {
                const uint64_t value = progress_value();
                progress = progress || value != last_progress;
                last_progress = value;
            }
            quiet = (progress || memory_owes) ? 0 : quiet + 1;
            ++cycle;
        }
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

    try {
        get(buffer, top.counters);
        for (int i = 0; i < kCounters; ++i) {
            counters[i] = static_cast<int64_t>(field(buffer, i * kCounterBits, kCounterBits));
        }
        status[kError] = top.error;
        status[kErrorIndex] = top.error_index;
    } catch (...) {
    }
    status[kCycles] = cycle;
    status[kAccepted] = accepted;
    status[kReadWords] = read_words;
    status[kWrittenWords] = written;
    status[kPendingReadWords] = read_words_requested - read_words;
    status[kPendingWriteWords] = write_words_requested - written;
    return result;
}

}  // extern "C"

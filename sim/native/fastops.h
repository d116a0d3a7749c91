// Faster drop-in versions of Verilator's signed-extension helpers, for the Verilated array model.
//
// Included into the model's precompiled header with `verilator --compiler-include` (see
// sim/drivers/native_build.py), after verilated.h, so only the generated model code uses them.
//
// Verilator sign-extends with `-(lhs & signbit) | lhs`, which GCC does not recognise as a sign
// extension: in a 16x16 array these helpers (8 -> 16 bit operands, 16 -> 32 bit products, two per
// multiply) were 40% of all instructions per cycle. A shift pair is compiled to one movsx.
// Verilator only passes clean operands (no bits set above `lbits`) to these functions, for which
// both forms give the same value; the multiply is done in unsigned arithmetic, which gives the
// same low 32 bits as Verilator's signed one without its overflow.

#ifndef TESSERA_FASTOPS_H_
#define TESSERA_FASTOPS_H_

#include "verilated.h"

static inline IData tessera_extends_i(int lbits, IData lhs) VL_PURE {
    const int shift = VL_IDATASIZE - lbits;
    return static_cast<IData>(static_cast<int32_t>(lhs << shift) >> shift);
}

static inline QData tessera_extends_q(int lbits, QData lhs) VL_PURE {
    const int shift = VL_QUADSIZE - lbits;
    return static_cast<QData>(static_cast<int64_t>(lhs << shift) >> shift);
}

#undef VL_EXTENDS_II
#undef VL_EXTENDS_QI
#undef VL_EXTENDS_QQ
#undef VL_MULS_III
#define VL_EXTENDS_II(obits, lbits, lhs) tessera_extends_i((lbits), (lhs))
#define VL_EXTENDS_QI(obits, lbits, lhs) tessera_extends_q((lbits), static_cast<QData>(lhs))
#define VL_EXTENDS_QQ(obits, lbits, lhs) tessera_extends_q((lbits), (lhs))
#define VL_MULS_III(lbits, lhs, rhs) \
    static_cast<IData>(tessera_extends_i((lbits), (lhs)) * tessera_extends_i((lbits), (rhs)))

#endif  // TESSERA_FASTOPS_H_

/* The capability table. The CPU runs every type the quant table can decode; CUDA runs the
 * weight types its dequantizers cover and the cache types its quantizers cover, with
 * attention vectors of up to CUDA_ATTN_MAX_DIM values (32 lanes x 8 registers). */
#include "backend/caps.h"
#include "backend/gpu.h"
#include "kv/kv.h"
#include "quant/quant.h"

#include <stdarg.h>
#include <stdio.h>

#define CUDA_ATTN_MAX_DIM 256

static const char *const op_names[OP_COUNT] = {
    "matmul", "get_rows", "rmsnorm", "rope", "swiglu", "hadamard", "kv_store", "kv_shift",
    "attention (flash)", "attention (plain)",
};

const char *caps_backend_name(int b) { return b == BACKEND_CPU ? "CPU" : b == BACKEND_CUDA ? "CUDA" : "?"; }
const char *caps_op_name(int op) { return op >= 0 && op < OP_COUNT ? op_names[op] : "?"; }

#ifdef HEARTH_CUDA
static const int cuda_weight_types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                                         QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_NL };
static const int cuda_cache_types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL };

static int in(const int *list, int n, int t) {
    for (int i = 0; i < n; i++) if (list[i] == t) return 1;
    return 0;
}
#define IN(list, t) in(list, (int)(sizeof list / sizeof list[0]), t)
#endif

static int no(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int no(char *why, size_t n, const char *fmt, ...) {
    if (why && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, n, fmt, ap);
        va_end(ap);
    }
    return 0;
}

int caps_supports(int backend, int op, int ta, int tb, int dim, char *why, size_t n) {
    char b1[32], b2[32];
    const char *na = quant_name(ta, b1, sizeof b1), *nb = quant_name(tb, b2, sizeof b2);
    if (why && n) why[0] = 0;
    if (op < 0 || op >= OP_COUNT) return no(why, n, "unknown operation %d", op);
    if (backend == BACKEND_CPU) {
        switch (op) {
        case OP_MATMUL: case OP_GET_ROWS:
            return quant_get(ta) && quant_get(ta)->to_float ? 1 : no(why, n, "the CPU cannot decode %s weights", na);
        case OP_KV_STORE: case OP_KV_SHIFT: case OP_ATTN_FLASH: case OP_ATTN_PLAIN:
            if (!kv_type_ok(ta) || !kv_type_ok(tb)) return no(why, n, "%s/%s is not a CPU cache type pair", na, nb);
            return 1;
        default: return 1;
        }
    }
    if (backend != BACKEND_CUDA) return no(why, n, "unknown backend %d", backend);
#ifndef HEARTH_CUDA
    return no(why, n, "this build has no CUDA backend");
#else
    switch (op) {
    case OP_MATMUL: case OP_GET_ROWS:
        return IN(cuda_weight_types, ta) ? 1 : no(why, n, "CUDA has no kernel for %s weights", na);
    case OP_KV_STORE: case OP_KV_SHIFT:
        if (!IN(cuda_cache_types, ta) || !IN(cuda_cache_types, tb))
            return no(why, n, "CUDA cannot store a %s/%s cache", na, nb);
        return 1;
    case OP_ATTN_FLASH: case OP_ATTN_PLAIN:
        if (!IN(cuda_cache_types, ta) || !IN(cuda_cache_types, tb))
            return no(why, n, "CUDA cannot read a %s/%s cache", na, nb);
        if (dim > CUDA_ATTN_MAX_DIM)
            return no(why, n, "CUDA attention reads vectors of at most 256 values (%s/%s cache, %d here)", na, nb, dim);
        return 1;
    case OP_HADAMARD:
        return dim <= 8192 ? 1 : no(why, n, "CUDA rotates blocks of at most 8192 values (%d here)", dim);
    default: return 1;
    }
#endif
}

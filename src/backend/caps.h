/* caps: what each backend can run, as one table of (operation, types) -> supported.
 * Placement asks here before putting work on a backend; the answer comes with a reason a
 * person can read when it is no. */
#ifndef HEARTH_CAPS_H
#define HEARTH_CAPS_H

#include <stddef.h>

enum { BACKEND_CPU = 0, BACKEND_CUDA = 1, BACKEND_COUNT };

enum caps_op {
    OP_MATMUL,      /* type_a: weight type */
    OP_GET_ROWS,    /* type_a: embedding type */
    OP_RMSNORM, OP_ROPE, OP_SWIGLU, OP_HADAMARD,
    OP_KV_STORE,    /* type_a: K type, type_b: V type */
    OP_KV_SHIFT,    /* type_a: K type, type_b: V type */
    OP_ATTN_FLASH,  /* type_a: K type, type_b: V type, dim: values a score reads (head or row) */
    OP_ATTN_PLAIN,
    OP_COUNT
};

const char *caps_backend_name(int backend);
const char *caps_op_name(int op);
/* 1 if the backend runs op on these types (and dim where it matters; 0 = any), else 0 with
 * a one-line reason in why (may be NULL). */
int caps_supports(int backend, int op, int type_a, int type_b, int dim, char *why, size_t n);

#endif

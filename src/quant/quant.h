/* quant: block formats of tensor data, one row of traits per GGUF type id.
 *
 * The scalar code behind these traits is the definition of each format; any faster
 * version (SIMD, CUDA) is tested against it. Weights and the KV cache use the same
 * table, so a new type is one new row. */
#ifndef HEARTH_QUANT_H
#define HEARTH_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* GGUF / ggml type ids (the on-disk numbers; do not renumber). */
enum quant_type {
    QT_F32 = 0, QT_F16 = 1, QT_Q4_0 = 2, QT_Q4_1 = 3,
    QT_Q5_0 = 6, QT_Q5_1 = 7, QT_Q8_0 = 8, QT_Q8_1 = 9,
    QT_Q2_K = 10, QT_Q3_K = 11, QT_Q4_K = 12, QT_Q5_K = 13, QT_Q6_K = 14, QT_Q8_K = 15,
    QT_IQ4_NL = 20, QT_BF16 = 30,
    QT_COUNT = 40 /* size of the id space the table covers */
};

typedef struct quant_traits {
    const char *name;      /* lower case, llama.cpp spelling: "q8_0", "f16", "q4_K" -> "q4_k" */
    int         type;      /* enum quant_type */
    int         block;     /* values per block */
    size_t      bytes;     /* bytes per block */
    /* n is a multiple of block. */
    void  (*to_float)(const void *src, float *dst, int64_t n);
    void  (*from_float)(const float *src, void *dst, int64_t n);
    /* dot product of a row in this format with n f32 values (scalar reference). */
    float (*dot)(const void *row, const float *x, int64_t n);
} quant_traits;

/* NULL when the id is not a type hearth knows. */
const quant_traits *quant_get(int type);
/* Human name for any id, known or not ("type 17" style text for unknown ones). */
const char *quant_name(int type, char *buf, size_t n);
/* Look up by name, case-insensitive ("q8_0", "Q4_K", "f16"); -1 if none. */
int quant_from_name(const char *name);
/* Bytes of a row of n values (n a multiple of the block). */
size_t quant_row_bytes(int type, int64_t n);

/* fp16 / bf16 conversions, exact (round to nearest even, NaN kept). */
float    quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float    quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);

#endif

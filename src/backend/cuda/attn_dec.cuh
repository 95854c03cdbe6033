/* Decode attention with staged tiles (attn_dec.cu). */
#ifndef HEARTH_CUDA_ATTN_DEC_CUH
#define HEARTH_CUDA_ATTN_DEC_CUH

#include "backend/cuda/common.cuh"

/* 1 when cuda_attn_dec runs a (flash) with its kernel: T <= 8, heads of 128, f16 / q8_0 /
 * q4_0 K and V, rows not rotated as a whole */
int cuda_attn_dec_ok(const attn_args *a);
/* dpos: NULL, or the device int holding a->pos0 (a CUDA graph replays this launch at other
 * positions); then the grid and scratch are sized for cap_cells cells */
int cuda_attn_dec(gpu_ctx *g, const attn_args *a, const int *dpos, int cap_cells, int rot_q, int rot_o);

#endif

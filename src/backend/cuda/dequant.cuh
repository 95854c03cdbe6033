/* Decoding the block formats on the GPU, in registers. Layouts are quant/'s, byte for byte
 * (the scalar code there is the definition; these must agree with it):
 *   dq1<T>(row, i)        one value of a row (cache types: attention reads one value a lane)
 *   dq32<T>(row, c, v)    the 32 values 32c..32c+31 of a row (every weight type: matvec)
 * Blocks start at even offsets, so their f16 fields are read as aligned 16-bit words. */
#ifndef HEARTH_CUDA_DEQUANT_CUH
#define HEARTH_CUDA_DEQUANT_CUH

#include "backend/cuda/common.cuh"
extern "C" {
#include "quant/quant.h"
}

__device__ __forceinline__ float h2f(const uint8_t *p) { return __half2float(__ushort_as_half(*(const uint16_t *)p)); }

__constant__ static const int8_t cuda_iq4nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

template <int T> struct qinfo;
template <> struct qinfo<QT_F32>    { enum { B = 1,   BYTES = 4 }; };
template <> struct qinfo<QT_F16>    { enum { B = 1,   BYTES = 2 }; };
template <> struct qinfo<QT_BF16>   { enum { B = 1,   BYTES = 2 }; };
template <> struct qinfo<QT_Q8_0>   { enum { B = 32,  BYTES = 34 }; };
template <> struct qinfo<QT_Q4_0>   { enum { B = 32,  BYTES = 18 }; };
template <> struct qinfo<QT_Q4_1>   { enum { B = 32,  BYTES = 20 }; };
template <> struct qinfo<QT_Q5_0>   { enum { B = 32,  BYTES = 22 }; };
template <> struct qinfo<QT_Q5_1>   { enum { B = 32,  BYTES = 24 }; };
template <> struct qinfo<QT_IQ4_NL> { enum { B = 32,  BYTES = 18 }; };
template <> struct qinfo<QT_Q2_K>   { enum { B = 256, BYTES = 84 }; };
template <> struct qinfo<QT_Q3_K>   { enum { B = 256, BYTES = 110 }; };
template <> struct qinfo<QT_Q4_K>   { enum { B = 256, BYTES = 144 }; };
template <> struct qinfo<QT_Q5_K>   { enum { B = 256, BYTES = 176 }; };
template <> struct qinfo<QT_Q6_K>   { enum { B = 256, BYTES = 210 }; };

/* ---- one value (32-value blocks and floats) ---- */
template <int T> __device__ __forceinline__ float dq1(const uint8_t *row, int i) {
    if (T == QT_F32) return ((const float *)row)[i];
    if (T == QT_F16) return __half2float(((const __half *)row)[i]);
    if (T == QT_BF16) return __bfloat162float(((const __nv_bfloat16 *)row)[i]);
    const uint8_t *b = row + (size_t)(i >> 5) * qinfo<T>::BYTES;
    const int j = i & 31, jj = j & 15, sh = (j >> 4) * 4;
    if (T == QT_Q8_0) return h2f(b) * (float)(int8_t)b[2 + j];
    if (T == QT_Q4_0) return h2f(b) * (float)(((b[2 + jj] >> sh) & 15) - 8);
    if (T == QT_Q4_1) return h2f(b) * (float)((b[4 + jj] >> sh) & 15) + h2f(b + 2);
    if (T == QT_IQ4_NL) return h2f(b) * (float)cuda_iq4nl_values[(b[2 + jj] >> sh) & 15];
    if (T == QT_Q5_0) {
        uint32_t qh = b[2] | b[3] << 8 | b[4] << 16 | (uint32_t)b[5] << 24;
        int q = ((b[6 + jj] >> sh) & 15) | (int)((qh >> j) & 1) << 4;
        return h2f(b) * (float)(q - 16);
    }
    if (T == QT_Q5_1) {
        uint32_t qh = b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24;
        int q = ((b[8 + jj] >> sh) & 15) | (int)((qh >> j) & 1) << 4;
        return h2f(b) * (float)q + h2f(b + 2);
    }
    return 0.0f;
}

/* ---- 32 values 32c.. of a row (any weight type) ---- */
template <int T> __device__ __forceinline__ void dq32(const uint8_t *row, int c, float *v) {
    if (T == QT_F32) {
        const float4 *p = (const float4 *)(row + (size_t)c * 128);
#pragma unroll
        for (int k = 0; k < 8; k++) { float4 f = p[k]; v[4 * k] = f.x; v[4 * k + 1] = f.y; v[4 * k + 2] = f.z; v[4 * k + 3] = f.w; }
        return;
    }
    if (T == QT_F16 || T == QT_BF16) {
        const uint4 *p = (const uint4 *)(row + (size_t)c * 64);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            uint4 u = p[k];
            uint32_t w[4] = { u.x, u.y, u.z, u.w };
#pragma unroll
            for (int m = 0; m < 4; m++) {
                if (T == QT_F16) {
                    v[8 * k + 2 * m] = __half2float(__ushort_as_half((uint16_t)(w[m] & 0xffff)));
                    v[8 * k + 2 * m + 1] = __half2float(__ushort_as_half((uint16_t)(w[m] >> 16)));
                } else {
                    v[8 * k + 2 * m] = __uint_as_float(w[m] << 16);
                    v[8 * k + 2 * m + 1] = __uint_as_float(w[m] & 0xffff0000u);
                }
            }
        }
        return;
    }
    if (qinfo<T>::B == 32) {
        const uint8_t *b = row + (size_t)c * qinfo<T>::BYTES;
        float d = h2f(b);
        if (T == QT_Q8_0) {
            const uint16_t *q = (const uint16_t *)(b + 2);
#pragma unroll
            for (int k = 0; k < 16; k++) {
                uint16_t u = q[k];
                v[2 * k] = d * (float)(int8_t)(u & 0xff);
                v[2 * k + 1] = d * (float)(int8_t)(u >> 8);
            }
            return;
        }
        int off = T == QT_Q4_1 ? 4 : T == QT_Q5_0 ? 6 : T == QT_Q5_1 ? 8 : 2;
        float m = (T == QT_Q4_1 || T == QT_Q5_1) ? h2f(b + 2) : 0.0f;
        uint32_t qh = 0;
        if (T == QT_Q5_0) qh = b[2] | b[3] << 8 | b[4] << 16 | (uint32_t)b[5] << 24;
        if (T == QT_Q5_1) qh = b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24;
        const uint16_t *q = (const uint16_t *)(b + off);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            uint16_t u = q[k];
#pragma unroll
            for (int s = 0; s < 2; s++) {
                int j = 2 * k + s;
                int lo = (u >> (8 * s)) & 15, hi = (u >> (8 * s + 4)) & 15;
                if (T == QT_Q4_0) { v[j] = d * (float)(lo - 8); v[j + 16] = d * (float)(hi - 8); }
                if (T == QT_Q4_1) { v[j] = d * (float)lo + m; v[j + 16] = d * (float)hi + m; }
                if (T == QT_IQ4_NL) { v[j] = d * (float)cuda_iq4nl_values[lo]; v[j + 16] = d * (float)cuda_iq4nl_values[hi]; }
                if (T == QT_Q5_0) {
                    v[j] = d * (float)((lo | (int)((qh >> j) & 1) << 4) - 16);
                    v[j + 16] = d * (float)((hi | (int)((qh >> (j + 16)) & 1) << 4) - 16);
                }
                if (T == QT_Q5_1) {
                    v[j] = d * (float)(lo | (int)((qh >> j) & 1) << 4) + m;
                    v[j + 16] = d * (float)(hi | (int)((qh >> (j + 16)) & 1) << 4) + m;
                }
            }
        }
        return;
    }
    /* k-quants: chunk cc of super-block c / 8; element e = 32 cc + j (see quant_k.c) */
    const uint8_t *b = row + (size_t)(c >> 3) * qinfo<T>::BYTES;
    const int cc = c & 7;
    if (T == QT_Q2_K) {
        float d = h2f(b + 80), dmin = h2f(b + 82);
        const uint8_t *qs = b + 16 + 32 * (cc >> 2);
        int shift = 2 * (cc & 3);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            uint8_t sc = b[2 * cc + h];
            float s = d * (float)(sc & 15), m = dmin * (float)(sc >> 4);
#pragma unroll
            for (int j = 0; j < 16; j++) v[16 * h + j] = s * (float)((qs[16 * h + j] >> shift) & 3) - m;
        }
        return;
    }
    if (T == QT_Q3_K) {
        float d = h2f(b + 108);
        const uint8_t *hm = b, *qs = b + 32 + 32 * (cc >> 2), *s12 = b + 96;
        int shift = 2 * (cc & 3);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int i = 2 * cc + h;
            int sc = ((s12[i % 8] >> (4 * (i / 8))) & 15) | ((s12[8 + i % 4] >> (2 * (i / 4))) & 3) << 4;
            float s = d * (float)(sc - 32);
#pragma unroll
            for (int j = 0; j < 16; j++) {
                int r = 16 * h + j;
                int lo = (qs[r] >> shift) & 3, hi = (hm[r] >> cc) & 1;
                v[r] = s * (float)(lo + 4 * hi - 4);
            }
        }
        return;
    }
    if (T == QT_Q4_K || T == QT_Q5_K) {
        float d = h2f(b), dmin = h2f(b + 2);
        const uint8_t *s = b + 4;
        int sc, mn;
        if (cc < 4) { sc = s[cc] & 63; mn = s[cc + 4] & 63; }
        else { sc = (s[cc + 4] & 15) | (s[cc - 4] >> 6) << 4; mn = (s[cc + 4] >> 4) | (s[cc] >> 6) << 4; }
        float fs = d * (float)sc, fm = dmin * (float)mn;
        const uint8_t *qs = b + (T == QT_Q4_K ? 16 : 48) + 32 * (cc >> 1);
        int shift = 4 * (cc & 1);
#pragma unroll
        for (int j = 0; j < 32; j++) {
            int q = (qs[j] >> shift) & 15;
            if (T == QT_Q5_K) q |= ((b[16 + j] >> cc) & 1) << 4;
            v[j] = fs * (float)q - fm;
        }
        return;
    }
    if (T == QT_Q6_K) {
        float d = h2f(b + 208);
        const int8_t *sc = (const int8_t *)(b + 192);
        int half = cc >> 2, quarter = cc & 3;
        const uint8_t *ql = b + 64 * half + 32 * (quarter & 1), *qh = b + 128 + 32 * half;
        int lshift = 4 * (quarter >> 1), hshift = 2 * quarter;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float s = d * (float)sc[2 * cc + h];
#pragma unroll
            for (int j = 0; j < 16; j++) {
                int r = 16 * h + j;
                int q = (((ql[r] >> lshift) & 15) | ((qh[r] >> hshift) & 3) << 4) - 32;
                v[r] = s * (float)q;
            }
        }
        return;
    }
}


/* ---- 4 values 4i'.. of a row, i a multiple of 4 (every weight type): the matvec reads a
 * row as consecutive 4-value pieces, 128 values per warp step, so a warp's loads are one
 * contiguous stretch of the row. Four values never straddle a block or a scale. ---- */
template <bool A4> __device__ __forceinline__ uint32_t ld4(const uint8_t *p) {
    if (A4) return *(const uint32_t *)p;
    const uint16_t *h = (const uint16_t *)p;
    return (uint32_t)h[0] | (uint32_t)h[1] << 16;
}

template <int T> __device__ __forceinline__ void dq4(const uint8_t *row, int i, float *v) {
    if (T == QT_F32) { float4 f = *(const float4 *)(row + 4 * (size_t)i); v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w; return; }
    if (T == QT_F16 || T == QT_BF16) {
        uint2 u = *(const uint2 *)(row + 2 * (size_t)i);
        uint32_t w[2] = { u.x, u.y };
#pragma unroll
        for (int m = 0; m < 2; m++) {
            if (T == QT_F16) {
                v[2 * m] = __half2float(__ushort_as_half((uint16_t)(w[m] & 0xffff)));
                v[2 * m + 1] = __half2float(__ushort_as_half((uint16_t)(w[m] >> 16)));
            } else {
                v[2 * m] = __uint_as_float(w[m] << 16);
                v[2 * m + 1] = __uint_as_float(w[m] & 0xffff0000u);
            }
        }
        return;
    }
    if (qinfo<T>::B == 32) {
        const uint8_t *b = row + (size_t)(i >> 5) * qinfo<T>::BYTES;
        const int j = i & 31, jj = j & 15, sh = (j >> 4) * 4;
        const float d = h2f(b);
        if (T == QT_Q8_0) {
            uint32_t q = ld4<false>(b + 2 + j);
#pragma unroll
            for (int k = 0; k < 4; k++) v[k] = d * (float)(int8_t)(q >> (8 * k));
            return;
        }
        const int off = T == QT_Q4_1 ? 4 : T == QT_Q5_0 ? 6 : T == QT_Q5_1 ? 8 : 2;
        uint32_t q = ld4<T == QT_Q4_1 || T == QT_Q5_1>(b + off + jj);
        uint32_t qh = 0;
        if (T == QT_Q5_0) qh = ld4<false>(b + 2) >> j;
        if (T == QT_Q5_1) qh = ld4<true>(b + 4) >> j;
        const float m = (T == QT_Q4_1 || T == QT_Q5_1) ? h2f(b + 2) : 0.0f;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            int n = (q >> (8 * k + sh)) & 15;
            if (T == QT_Q4_0) v[k] = d * (float)(n - 8);
            if (T == QT_Q4_1) v[k] = d * (float)n + m;
            if (T == QT_IQ4_NL) v[k] = d * (float)cuda_iq4nl_values[n];
            if (T == QT_Q5_0) v[k] = d * (float)((n | (int)((qh >> k) & 1) << 4) - 16);
            if (T == QT_Q5_1) v[k] = d * (float)(n | (int)((qh >> k) & 1) << 4) + m;
        }
        return;
    }
    const uint8_t *b = row + (size_t)(i >> 8) * qinfo<T>::BYTES;
    const int e = i & 255, r = e & 31, cc = e >> 5;
    if (T == QT_Q2_K) {
        uint8_t sc = b[e >> 4];
        float s = h2f(b + 80) * (float)(sc & 15), mn = h2f(b + 82) * (float)(sc >> 4);
        uint32_t q = ld4<true>(b + 16 + 32 * (e >> 7) + r) >> (2 * ((e & 127) >> 5));
#pragma unroll
        for (int k = 0; k < 4; k++) v[k] = s * (float)((q >> (8 * k)) & 3) - mn;
        return;
    }
    if (T == QT_Q3_K) {
        const uint8_t *s12 = b + 96;
        int si = e >> 4;
        int sc = ((s12[si % 8] >> (4 * (si / 8))) & 15) | ((s12[8 + si % 4] >> (2 * (si / 4))) & 3) << 4;
        float s = h2f(b + 108) * (float)(sc - 32);
        uint32_t q = ld4<false>(b + 32 + 32 * (e >> 7) + r) >> (2 * ((e & 127) >> 5));
        uint32_t hm = ld4<false>(b + r) >> cc;
#pragma unroll
        for (int k = 0; k < 4; k++) v[k] = s * (float)((int)((q >> (8 * k)) & 3) + 4 * (int)((hm >> (8 * k)) & 1) - 4);
        return;
    }
    if (T == QT_Q4_K || T == QT_Q5_K) {
        const uint8_t *s = b + 4;
        int sc, mn;
        if (cc < 4) { sc = s[cc] & 63; mn = s[cc + 4] & 63; }
        else { sc = (s[cc + 4] & 15) | (s[cc - 4] >> 6) << 4; mn = (s[cc + 4] >> 4) | (s[cc] >> 6) << 4; }
        float fs = h2f(b) * (float)sc, fm = h2f(b + 2) * (float)mn;
        uint32_t q = ld4<true>(b + (T == QT_Q4_K ? 16 : 48) + 32 * (cc >> 1) + r) >> (4 * (cc & 1));
        uint32_t qh = T == QT_Q5_K ? ld4<true>(b + 16 + r) >> cc : 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            int n = (q >> (8 * k)) & 15;
            if (T == QT_Q5_K) n |= ((qh >> (8 * k)) & 1) << 4;
            v[k] = fs * (float)n - fm;
        }
        return;
    }
    if (T == QT_Q6_K) {
        const int half = e >> 7, quarter = (e & 127) >> 5;
        float s = h2f(b + 208) * (float)((const int8_t *)(b + 192))[e >> 4];
        uint32_t ql = ld4<false>(b + 64 * half + 32 * (quarter & 1) + r) >> (4 * (quarter >> 1));
        uint32_t qh = ld4<false>(b + 128 + 32 * half + r) >> (2 * quarter);
#pragma unroll
        for (int k = 0; k < 4; k++) v[k] = s * (float)((int)(((ql >> (8 * k)) & 15) | ((qh >> (8 * k)) & 3) << 4) - 32);
        return;
    }
}

/* Calls F::template run<T>(args...) for the weight type t; returns -1 for a type with no
 * decoder (the capability table keeps such work off the GPU). */
#define CUDA_WEIGHT_TYPES(X) X(QT_F32) X(QT_F16) X(QT_BF16) X(QT_Q8_0) X(QT_Q4_0) X(QT_Q4_1) X(QT_Q5_0) \
    X(QT_Q5_1) X(QT_IQ4_NL) X(QT_Q2_K) X(QT_Q3_K) X(QT_Q4_K) X(QT_Q5_K) X(QT_Q6_K)
#define CUDA_CACHE_TYPES(X) X(QT_F32) X(QT_F16) X(QT_BF16) X(QT_Q8_0) X(QT_Q4_0) X(QT_Q4_1) X(QT_Q5_0) \
    X(QT_Q5_1) X(QT_IQ4_NL)

#endif

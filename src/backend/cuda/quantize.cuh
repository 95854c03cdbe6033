/* The cache quantizers on the GPU: one thread per 32-value block, the same scale search as
 * quant_legacy.c (the definition), so a cache written here matches one written on the CPU
 * block for block up to float rounding order. */
#ifndef HEARTH_CUDA_QUANTIZE_CUH
#define HEARTH_CUDA_QUANTIZE_CUH

#include "backend/cuda/dequant.cuh"

#define QQK 32
#define QPOLISH 3

__device__ __forceinline__ uint16_t qf2h_d(float f) { return __half_as_ushort(__float2half_rn(f)); }
__device__ __forceinline__ float qh2f_d(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float qinv(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

__device__ __forceinline__ int qround_d(float v, int lo, int hi) {
    if (v != v) return 0;
    if (v <= (float)lo) return lo;
    if (v >= (float)hi) return hi;
    int i = (int)v;
    float r = v - (float)i;
    return i + (r >= 0.5f) - (r <= -0.5f);
}

__device__ __forceinline__ float round_clamped_d(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return __fsub_rn(__fadd_rn(v, 12582912.0f), 12582912.0f);
}

__device__ __forceinline__ float signed_absmax_d(const float *x) {
    float m = 0.0f;
    for (int i = 0; i < QQK; i++) if (fabsf(x[i]) > fabsf(m)) m = x[i];
    return m;
}

__device__ __forceinline__ float err_scale_d(float d, float sxq, float sqq) { return d * (d * sqq - 2.0f * sxq); }

static __device__ uint16_t fit_scale_d(const float *x, float id, int lo, int hi, float *err) {
    float sxq = 0.0f, sqq = 0.0f;
    for (int j = 0; j < QQK; j++) {
        float k = round_clamped_d(x[j] * id, (float)lo, (float)hi);
        sxq += x[j] * k; sqq += k * k;
    }
    uint16_t dh = qf2h_d(sqq > 0.0f ? sxq / sqq : 0.0f);
    *err = err_scale_d(qh2f_d(dh), sxq, sqq);
    return dh;
}

static __device__ float levels_scale_d(const float *x, uint16_t dh, int lo, int hi, int8_t *q, float *sxq, float *sqq) {
    float d = qh2f_d(dh), id = qinv(d);
    *sxq = *sqq = 0.0f;
    for (int j = 0; j < QQK; j++) {
        q[j] = (int8_t)qround_d(x[j] * id, lo, hi);
        *sxq += x[j] * (float)q[j]; *sqq += (float)(q[j] * q[j]);
    }
    return err_scale_d(d, *sxq, *sqq);
}

/* x ~ d * q, q in lo..hi; the grid runs over "levels of the extreme" from l0 to l1 */
static __device__ uint16_t quant_scale_d(const float *x, int lo, int hi, float l0, float l1, int ng, int8_t *q) {
    float xm = signed_absmax_d(x), sxq, sqq;
    uint16_t best = qf2h_d(xm / (float)lo);
    float e = levels_scale_d(x, best, lo, hi, q, &sxq, &sqq);
    if (xm == 0.0f) return best;
    float best_err = e;
    uint16_t found = best;
    for (int t = 0; t < ng; t++) {
        float err, lv = l0 + (l1 - l0) * (float)t / (float)(ng - 1);
        uint16_t dh = fit_scale_d(x, -lv / xm, lo, hi, &err);
        if (err < best_err) { best_err = err; found = dh; }
    }
    int8_t q2[QQK];
    if (found != best) {
        float sxq2, sqq2, e2 = levels_scale_d(x, found, lo, hi, q2, &sxq2, &sqq2);
        if (e2 < e) { best = found; e = e2; sxq = sxq2; sqq = sqq2; for (int j = 0; j < QQK; j++) q[j] = q2[j]; }
    }
    for (int it = 0; it < QPOLISH && sqq > 0.0f; it++) {
        uint16_t dh = qf2h_d(sxq / sqq);
        if (dh == best || !(err_scale_d(qh2f_d(dh), sxq, sqq) < e)) break;
        float sxq2, sqq2, e2 = levels_scale_d(x, dh, lo, hi, q2, &sxq2, &sqq2);
        if (!(e2 < e)) break;
        best = dh; e = e2; sxq = sxq2; sqq = sqq2;
        for (int j = 0; j < QQK; j++) q[j] = q2[j];
    }
    return best;
}

struct aff_sums { float x, q, xq, qq; };

__device__ __forceinline__ float err_affine_d(float d, float m, const aff_sums &s) {
    return d * d * s.qq + (float)QQK * m * m + 2.0f * d * m * s.q - 2.0f * d * s.xq - 2.0f * m * s.x;
}

static __device__ void solve_affine_d(const aff_sums &s, uint16_t *dh, uint16_t *mh) {
    float det = (float)QQK * s.qq - s.q * s.q;
    float d = det > 0.0f ? ((float)QQK * s.xq - s.q * s.x) / det : 0.0f;
    *dh = qf2h_d(d);
    *mh = qf2h_d((s.x - qh2f_d(*dh) * s.q) / (float)QQK);
}

static __device__ float levels_affine_d(const float *x, uint16_t dh, uint16_t mh, int qmax, int8_t *q, aff_sums &s) {
    float d = qh2f_d(dh), m = qh2f_d(mh), id = qinv(d);
    s.x = s.q = s.xq = s.qq = 0.0f;
    for (int j = 0; j < QQK; j++) {
        q[j] = (int8_t)qround_d((x[j] - m) * id, 0, qmax);
        float k = (float)q[j];
        s.x += x[j]; s.q += k; s.xq += x[j] * k; s.qq += k * k;
    }
    return err_affine_d(d, m, s);
}

static __device__ void quant_affine_d(const float *x, int qmax, int8_t *q, uint16_t *dh, uint16_t *mh) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < QQK; i++) { lo = fminf(lo, x[i]); hi = fmaxf(hi, x[i]); }
    aff_sums s;
    *dh = qf2h_d((hi - lo) / (float)qmax);
    *mh = qf2h_d(lo);
    float e = levels_affine_d(x, *dh, *mh, qmax, q, s);
    if (!(hi - lo > 0.0f)) return;
    const int ng = 8;
    float l0 = 0.8f * (float)qmax, l1 = (float)qmax + 1.5f;
    float mid = 0.5f * (lo + hi), fq = (float)qmax, best_err = e;
    uint16_t fd = *dh, fm = *mh;
    for (int t = 0; t < 3 * ng; t++) {
        float lv = l0 + (l1 - l0) * (float)(t % ng) / (float)(ng - 1);
        float id = lv / (hi - lo), half = 0.5f * fq + (float)(t / ng - 1) / 3.0f;
        float aq = 0, axq = 0, aqq = 0;
        for (int j = 0; j < QQK; j++) {
            float k = round_clamped_d((x[j] - mid) * id + half, 0.0f, fq);
            aq += k; axq += x[j] * k; aqq += k * k;
        }
        aff_sums c = { s.x, aq, axq, aqq };
        uint16_t d2, m2;
        solve_affine_d(c, &d2, &m2);
        float err = err_affine_d(qh2f_d(d2), qh2f_d(m2), c);
        if (err < best_err) { best_err = err; fd = d2; fm = m2; }
    }
    int8_t q2[QQK];
    aff_sums s2;
    if (fd != *dh || fm != *mh) {
        float e2 = levels_affine_d(x, fd, fm, qmax, q2, s2);
        if (e2 < e) { *dh = fd; *mh = fm; e = e2; s = s2; for (int j = 0; j < QQK; j++) q[j] = q2[j]; }
    }
    for (int it = 0; it < QPOLISH; it++) {
        uint16_t d2, m2;
        solve_affine_d(s, &d2, &m2);
        if ((d2 == *dh && m2 == *mh) || !(err_affine_d(qh2f_d(d2), qh2f_d(m2), s) < e)) break;
        float e2 = levels_affine_d(x, d2, m2, qmax, q2, s2);
        if (!(e2 < e)) break;
        *dh = d2; *mh = m2; e = e2; s = s2;
        for (int j = 0; j < QQK; j++) q[j] = q2[j];
    }
}

__constant__ static const float cuda_iq4nl_mids[15] = {
    -115.5f, -93.5f, -74.0f, -57.0f, -42.0f, -28.5f, -16.0f, -4.5f, 7.0f, 19.0f, 31.5f, 45.5f, 61.0f, 79.0f, 101.0f,
};
__constant__ static const float cuda_iq4nl_steps[15] = { 23, 21, 18, 16, 14, 13, 12, 11, 12, 12, 13, 15, 16, 20, 24 };

__device__ __forceinline__ int iq4nl_nearest_d(float v) {
    int i = v > cuda_iq4nl_mids[7] ? 8 : 0;
    if (v > cuda_iq4nl_mids[i + 3]) i += 4;
    if (v > cuda_iq4nl_mids[i + 1]) i += 2;
    if (v > cuda_iq4nl_mids[i]) i += 1;
    return i;
}

static __device__ uint16_t fit_iq4nl_d(const float *x, float id, float *err) {
    float sxk = 0, skk = 0;
    for (int j = 0; j < QQK; j++) {
        float v = x[j] * id, k = -127.0f;
        for (int m = 0; m < 15; m++) k += v > cuda_iq4nl_mids[m] ? cuda_iq4nl_steps[m] : 0.0f;
        sxk += x[j] * k; skk += k * k;
    }
    uint16_t dh = qf2h_d(sxk / skk);
    *err = err_scale_d(qh2f_d(dh), sxk, skk);
    return dh;
}

static __device__ float levels_iq4nl_d(const float *x, uint16_t dh, int8_t *idx, float *sxk, float *skk) {
    float d = qh2f_d(dh), id = qinv(d);
    *sxk = *skk = 0.0f;
    for (int j = 0; j < QQK; j++) {
        idx[j] = (int8_t)iq4nl_nearest_d(x[j] * id);
        float k = (float)cuda_iq4nl_values[idx[j]];
        *sxk += x[j] * k; *skk += k * k;
    }
    return err_scale_d(d, *sxk, *skk);
}

__device__ __forceinline__ void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

__device__ __forceinline__ void pack_nib_d(uint8_t *qs, const int8_t *q) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
}

__device__ __forceinline__ void put_qh_d(uint8_t *qh, const int8_t *q) {
    uint32_t v = 0;
    for (int j = 0; j < QQK; j++) v |= (uint32_t)((q[j] >> 4) & 1) << j;
    for (int i = 0; i < 4; i++) qh[i] = (uint8_t)(v >> (8 * i));
}

/* Quantizes 32 values into one block of type T at dst. */
template <int T> __device__ void quant_block(const float *x, uint8_t *dst) {
    int8_t q[QQK];
    if (T == QT_Q8_0) {
        uint16_t d = quant_scale_d(x, -127, 127, 124.0f, 128.0f, 6, q);
        put16(dst, d);
        for (int j = 0; j < QQK; j++) dst[2 + j] = (uint8_t)q[j];
    } else if (T == QT_Q4_0 || T == QT_Q5_0) {
        int off = T == QT_Q4_0 ? 8 : 16;
        uint16_t d = quant_scale_d(x, -off, off - 1, 0.8f * (float)off, (float)off + 1.5f, 12, q);
        for (int j = 0; j < QQK; j++) q[j] = (int8_t)(q[j] + off);
        put16(dst, d);
        if (T == QT_Q4_0) pack_nib_d(dst + 2, q);
        else { put_qh_d(dst + 2, q); pack_nib_d(dst + 6, q); }
    } else if (T == QT_Q4_1 || T == QT_Q5_1) {
        uint16_t d, m;
        quant_affine_d(x, T == QT_Q4_1 ? 15 : 31, q, &d, &m);
        put16(dst, d);
        put16(dst + 2, m);
        if (T == QT_Q4_1) pack_nib_d(dst + 4, q);
        else { put_qh_d(dst + 4, q); pack_nib_d(dst + 8, q); }
    } else if (T == QT_IQ4_NL) {
        float xm = signed_absmax_d(x), sxk, skk, best_err = INFINITY;
        uint16_t best = 0;
        int8_t idx2[QQK];
        for (int end = 0; end < 2 && xm != 0.0f; end++) {
            float top = end ? 113.0f : -127.0f, l0 = 0.8f * top, l1 = 1.15f * top;
            for (int t = 0; t < 12; t++) {
                float err, lv = l0 + (l1 - l0) * (float)t / 11.0f;
                uint16_t dh = fit_iq4nl_d(x, lv / xm, &err);
                if (err < best_err) { best_err = err; best = dh; }
            }
        }
        float e = levels_iq4nl_d(x, best, q, &sxk, &skk);
        for (int it = 0; it < QPOLISH && xm != 0.0f; it++) {
            uint16_t dh = qf2h_d(sxk / skk);
            if (dh == best || !(err_scale_d(qh2f_d(dh), sxk, skk) < e)) break;
            float sxk2, skk2, e2 = levels_iq4nl_d(x, dh, idx2, &sxk2, &skk2);
            if (!(e2 < e)) break;
            best = dh; e = e2; sxk = sxk2; skk = skk2;
            for (int j = 0; j < QQK; j++) q[j] = idx2[j];
        }
        put16(dst, best);
        pack_nib_d(dst + 2, q);
    }
}

/* ---- the same quantizers with a warp per block: lane j holds value j, sums are warp sums
 * (another order than the CPU's, so a near-tie between two scales may go the other way;
 * the candidates, their order and the tie rules are the CPU's) ---- */

__device__ __forceinline__ float wsum(float v) { return warp_sum(v); }

/* the value of largest magnitude, the first such one as the CPU's loop finds it */
__device__ __forceinline__ float w_signed_absmax(float x, int lane) {
    float a = fabsf(x);
    int idx = lane;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float a2 = __shfl_xor_sync(0xffffffffu, a, o);
        int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        if (a2 > a || (a2 == a && i2 < idx)) { a = a2; idx = i2; }
    }
    return __shfl_sync(0xffffffffu, x, idx);
}

__device__ __forceinline__ float w_levels_scale(float x, uint16_t dh, int lo, int hi, int *q, float *sxq, float *sqq) {
    float d = qh2f_d(dh), id = qinv(d);
    *q = qround_d(x * id, lo, hi);
    *sxq = wsum(x * (float)*q);
    *sqq = wsum((float)(*q * *q));
    return err_scale_d(d, *sxq, *sqq);
}

/* The first scale's sums and every candidate's go through one interleaved butterfly
 * (2 NG + 2 independent shuffle chains instead of NG + 1 in a row): each sum is formed in
 * warp_sum's order, so the result is the same, only the latency shrinks. */
template <int NG, bool LEAN = false>
__device__ uint16_t w_quant_scale(float x, int lo, int hi, float l0, float l1, int *q) {
    float xm = w_signed_absmax(x, threadIdx.x & 31);
    uint16_t best = qf2h_d(xm / (float)lo);
    const float d0 = qh2f_d(best);
    *q = qround_d(x * qinv(d0), lo, hi);
    float sxq, sqq, e, best_err;
    uint16_t found = best;
    if constexpr (LEAN) {
        /* LEAN: the candidates one after another (the same sums in the same order, so the
         * same result), for a caller short of registers (mv8.cu's store in q, k, v) */
        sxq = wsum(x * (float)*q);
        sqq = wsum((float)(*q * *q));
        e = err_scale_d(d0, sxq, sqq);
        if (xm == 0.0f) return best;
        best_err = e;
#pragma unroll 1
        for (int t = 0; t < NG; t++) {
            float lv = l0 + (l1 - l0) * (float)t / (float)(NG - 1);
            float k = round_clamped_d(x * (-lv / xm), (float)lo, (float)hi);
            float a = wsum(x * k), b = wsum(k * k);
            uint16_t dh = qf2h_d(b > 0.0f ? a / b : 0.0f);
            float err = err_scale_d(qh2f_d(dh), a, b);
            if (err < best_err) { best_err = err; found = dh; }
        }
    } else {
    float s[2 * NG + 2];
    s[0] = x * (float)*q;
    s[1] = (float)(*q * *q);
#pragma unroll
    for (int t = 0; t < NG; t++) {
        float lv = l0 + (l1 - l0) * (float)t / (float)(NG - 1);
        float k = round_clamped_d(x * (-lv / xm), (float)lo, (float)hi);
        s[2 + 2 * t] = x * k;
        s[3 + 2 * t] = k * k;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int i = 0; i < 2 * NG + 2; i++) s[i] += __shfl_xor_sync(0xffffffffu, s[i], o);
    sxq = s[0]; sqq = s[1]; e = err_scale_d(d0, sxq, sqq);
    if (xm == 0.0f) return best;
    best_err = e;
#pragma unroll
    for (int t = 0; t < NG; t++) {
        float a = s[2 + 2 * t], b = s[3 + 2 * t];
        uint16_t dh = qf2h_d(b > 0.0f ? a / b : 0.0f);
        float err = err_scale_d(qh2f_d(dh), a, b);
        if (err < best_err) { best_err = err; found = dh; }
    }
    }
    int q2;
    if (found != best) {
        float sxq2, sqq2, e2 = w_levels_scale(x, found, lo, hi, &q2, &sxq2, &sqq2);
        if (e2 < e) { best = found; e = e2; sxq = sxq2; sqq = sqq2; *q = q2; }
    }
    for (int it = 0; it < QPOLISH && sqq > 0.0f; it++) {
        uint16_t dh = qf2h_d(sxq / sqq);
        if (dh == best || !(err_scale_d(qh2f_d(dh), sxq, sqq) < e)) break;
        float sxq2, sqq2, e2 = w_levels_scale(x, dh, lo, hi, &q2, &sxq2, &sqq2);
        if (!(e2 < e)) break;
        best = dh; e = e2; sxq = sxq2; sqq = sqq2; *q = q2;
    }
    return best;
}

__device__ __forceinline__ float w_levels_affine(float x, uint16_t dh, uint16_t mh, int qmax, int *q, aff_sums &s) {
    float d = qh2f_d(dh), m = qh2f_d(mh), id = qinv(d);
    *q = qround_d((x - m) * id, 0, qmax);
    float k = (float)*q;
    s.x = wsum(x); s.q = wsum(k); s.xq = wsum(x * k); s.qq = wsum(k * k);
    return err_affine_d(d, m, s);
}

static __device__ void w_quant_affine(float x, int qmax, int *q, uint16_t *dh, uint16_t *mh) {
    float lo = x, hi = x;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
    }
    aff_sums s;
    *dh = qf2h_d((hi - lo) / (float)qmax);
    *mh = qf2h_d(lo);
    float e = w_levels_affine(x, *dh, *mh, qmax, q, s);
    if (!(hi - lo > 0.0f)) return;
    const int ng = 8;
    float l0 = 0.8f * (float)qmax, l1 = (float)qmax + 1.5f;
    float mid = 0.5f * (lo + hi), fq = (float)qmax, best_err = e;
    uint16_t fd = *dh, fm = *mh;
    for (int t = 0; t < 3 * ng; t++) {
        float lv = l0 + (l1 - l0) * (float)(t % ng) / (float)(ng - 1);
        float id = lv / (hi - lo), half = 0.5f * fq + (float)(t / ng - 1) / 3.0f;
        float k = round_clamped_d((x - mid) * id + half, 0.0f, fq);
        aff_sums c = { s.x, wsum(k), wsum(x * k), wsum(k * k) };
        uint16_t d2, m2;
        solve_affine_d(c, &d2, &m2);
        float err = err_affine_d(qh2f_d(d2), qh2f_d(m2), c);
        if (err < best_err) { best_err = err; fd = d2; fm = m2; }
    }
    int q2;
    aff_sums s2;
    if (fd != *dh || fm != *mh) {
        float e2 = w_levels_affine(x, fd, fm, qmax, &q2, s2);
        if (e2 < e) { *dh = fd; *mh = fm; e = e2; s = s2; *q = q2; }
    }
    for (int it = 0; it < QPOLISH; it++) {
        uint16_t d2, m2;
        solve_affine_d(s, &d2, &m2);
        if ((d2 == *dh && m2 == *mh) || !(err_affine_d(qh2f_d(d2), qh2f_d(m2), s) < e)) break;
        float e2 = w_levels_affine(x, d2, m2, qmax, &q2, s2);
        if (!(e2 < e)) break;
        *dh = d2; *mh = m2; e = e2; s = s2; *q = q2;
    }
}

__device__ __forceinline__ float w_levels_iq4nl(float x, uint16_t dh, int *idx, float *sxk, float *skk) {
    float d = qh2f_d(dh), id = qinv(d);
    *idx = iq4nl_nearest_d(x * id);
    float k = (float)cuda_iq4nl_values[*idx];
    *sxk = wsum(x * k); *skk = wsum(k * k);
    return err_scale_d(d, *sxk, *skk);
}

/* Stores lane j's quantized value into the block at dst (all lanes of the warp call it).
 * LEAN: q8_0 / q4_0 / q5_0's scale search in fewer registers, the same result. */
template <int T, bool LEAN = false> __device__ void w_quant_block(float x, uint8_t *dst) {
    const int lane = threadIdx.x & 31;
    int q = 0;
    uint16_t d = 0, m = 0;
    if (T == QT_Q8_0) {
        d = w_quant_scale<6, LEAN>(x, -127, 127, 124.0f, 128.0f, &q);
        if (lane == 0) put16(dst, d);
        dst[2 + lane] = (uint8_t)(int8_t)q;
        return;
    }
    if (T == QT_Q4_0 || T == QT_Q5_0) {
        int off = T == QT_Q4_0 ? 8 : 16;
        d = w_quant_scale<12, LEAN>(x, -off, off - 1, 0.8f * (float)off, (float)off + 1.5f, &q);
        q += off;
    } else if (T == QT_Q4_1 || T == QT_Q5_1) {
        w_quant_affine(x, T == QT_Q4_1 ? 15 : 31, &q, &d, &m);
    } else if (T == QT_IQ4_NL) {
        float xm = w_signed_absmax(x, lane), sxk, skk, best_err = INFINITY;
        uint16_t best = 0;
        for (int end = 0; end < 2 && xm != 0.0f; end++) {
            float top = end ? 113.0f : -127.0f, l0 = 0.8f * top, l1 = 1.15f * top;
            for (int t = 0; t < 12; t++) {
                float lv = l0 + (l1 - l0) * (float)t / 11.0f, v = x * (lv / xm), k = -127.0f;
                for (int mm = 0; mm < 15; mm++) k += v > cuda_iq4nl_mids[mm] ? cuda_iq4nl_steps[mm] : 0.0f;
                float a = wsum(x * k), b = wsum(k * k);
                uint16_t dh = qf2h_d(a / b);
                float err = err_scale_d(qh2f_d(dh), a, b);
                if (err < best_err) { best_err = err; best = dh; }
            }
        }
        float e = w_levels_iq4nl(x, best, &q, &sxk, &skk);
        for (int it = 0; it < QPOLISH && xm != 0.0f; it++) {
            uint16_t dh = qf2h_d(sxk / skk);
            if (dh == best || !(err_scale_d(qh2f_d(dh), sxk, skk) < e)) break;
            int q2;
            float sxk2, skk2, e2 = w_levels_iq4nl(x, dh, &q2, &sxk2, &skk2);
            if (!(e2 < e)) break;
            best = dh; e = e2; sxk = sxk2; skk = skk2; q = q2;
        }
        d = best;
    }
    /* nibbles: byte j holds values j (low) and j + 16 (high); fifth bits in a 32-bit word */
    int hiq = __shfl_down_sync(0xffffffffu, q, 16);
    uint32_t fifth = __ballot_sync(0xffffffffu, (q >> 4) & 1);
    int qs_off = T == QT_Q4_0 || T == QT_IQ4_NL ? 2 : T == QT_Q4_1 ? 4 : T == QT_Q5_0 ? 6 : 8;
    if (lane < 16) dst[qs_off + lane] = (uint8_t)((q & 15) | (hiq & 15) << 4);
    if (lane == 0) {
        put16(dst, d);
        if (T == QT_Q4_1 || T == QT_Q5_1) put16(dst + 2, m);
        if (T == QT_Q5_0 || T == QT_Q5_1) {
            uint8_t *qh = dst + (T == QT_Q5_0 ? 2 : 4);
            for (int i = 0; i < 4; i++) qh[i] = (uint8_t)(fifth >> (8 * i));
        }
    }
}

#endif

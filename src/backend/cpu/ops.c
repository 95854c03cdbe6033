/* Small per-row CPU ops: norms, RoPE, activations, row access. */
#include "backend/backend.h"
#include "backend/cpu/simd.h"
#include "quant/quant.h"

#include <math.h>
#include <string.h>

void cpu_get_row(const wtensor *w, int64_t r, float *out) {
    const quant_traits *qt = quant_get(w->type);
    qt->to_float((const uint8_t *)w->data + (size_t)r * w->row_bytes, out, w->ne0);
}

void cpu_rmsnorm(float *out, const float *x, const float *weight, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * weight[i];
}

void cpu_rope(float *x, int n_heads, int hd, int n_rot, float pos, float base, float freq_scale,
              const float *freq_factors) {
    for (int i = 0; i < n_rot; i += 2) {
        double theta = pos * freq_scale * pow(base, -(double)i / n_rot);
        if (freq_factors) theta /= freq_factors[i / 2];
        float c = (float)cos(theta), s = (float)sin(theta);
        for (int h = 0; h < n_heads; h++) {
            float *p = x + h * hd + i;
            float a = p[0], b = p[1];
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
    }
}

void cpu_swiglu(float *gate, const float *up, int n) {
    const attn_simd *s = cpu_attn_simd();
    if (s && s->swiglu) { s->swiglu(gate, up, n); return; }
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void cpu_row_segment(int type, const void *row, int start, int len, float *out, float *tmp) {
    const quant_traits *qt = quant_get(type);
    int B = qt->block;
    if (B == 1) {
        if (type == QT_F32) { memcpy(out, (const float *)row + start, (size_t)len * sizeof(float)); return; }
        qt->to_float((const uint8_t *)row + (size_t)start * qt->bytes, out, len);
        return;
    }
    int b0 = start / B, b1 = (start + len - 1) / B;
    qt->to_float((const uint8_t *)row + (size_t)b0 * qt->bytes, tmp, (int64_t)(b1 - b0 + 1) * B);
    memcpy(out, tmp + (start - b0 * B), (size_t)len * sizeof(float));
}

int cpu_hadamard_block(int hd) {
    int b = 1;
    while (hd % (b * 2) == 0) b *= 2;
    return b;
}

/* Fixed pseudo-random signs applied before the transform: a plain Walsh-Hadamard
 * transform gathers a constant vector into one coefficient, making the very outlier it
 * should spread; flipping signs first breaks such structure. */
static float sign_at(int i) {
    uint32_t h = (uint32_t)i * 0x9E3779B1u;
    h ^= h >> 15;
    h *= 0x85EBCA77u;
    h ^= h >> 13;
    return (h & 1) ? -1.0f : 1.0f;
}

static void fwht(float *y, int b) {
    for (int h = 1; h < b; h *= 2)
        for (int i = 0; i < b; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = y[j], c = y[j + h];
                y[j] = a + c;
                y[j + h] = a - c;
            }
}

void cpu_hadamard(float *x, int n, int inverse) {
    int b = cpu_hadamard_block(n);
    float norm = 1.0f / sqrtf((float)b);
    for (int o = 0; o < n; o += b) {
        float *y = x + o;
        if (!inverse) for (int i = 0; i < b; i++) y[i] *= sign_at(i);
        fwht(y, b);
        for (int i = 0; i < b; i++) y[i] *= inverse ? norm * sign_at(i) : norm;
    }
}

/* Matrix times a batch of activations.
 *
 * SIMD path (simd.h): the activations are quantized to 8 bits once per call when the
 * weights are quantized (or used as floats for f32/f16/bf16 weights), then threads take
 * chunks of weight rows and run tile kernels of MM_TILE_R rows x MM_TILE_C tokens over
 * them, so a weight block loaded into registers serves several tokens.
 *
 * Scalar path (the reference, and the fallback for a type or size without a kernel):
 * threads take chunks of weight rows; for a batch each row is expanded to f32 once and
 * reused for every token (a row is at most a few thousand floats, so this is a per-thread
 * scratch, not a copy of the weights). */
#include "backend/backend.h"
#include "backend/cpu/simd.h"
#include "quant/quant.h"

#include <stdlib.h>

typedef struct mm_job {
    const wtensor *w; const float *x; float *y; int T;
    int64_t rows_per_task;
    float **scratch;  /* one row per thread */
} mm_job;

static float dot_f32(const float *a, const float *b, int64_t n) {
    /* four partial sums: lets the compiler vectorize without -ffast-math */
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) { s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1]; s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3]; }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void mm_task(void *arg, int task, int thread) {
    mm_job *j = arg;
    const wtensor *w = j->w;
    const quant_traits *qt = quant_get(w->type);
    int64_t r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task;
    if (r1 > w->ne1) r1 = w->ne1;
    const int64_t n = w->ne0;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        if (j->T == 1) {
            j->y[r] = w->type == QT_F32 ? dot_f32((const float *)row, j->x, n) : qt->dot(row, j->x, n);
            continue;
        }
        const float *fr = (const float *)row;
        if (w->type != QT_F32) { qt->to_float(row, j->scratch[thread], n); fr = j->scratch[thread]; }
        for (int t = 0; t < j->T; t++) j->y[(size_t)t * w->ne1 + r] = dot_f32(fr, j->x + (size_t)t * n, n);
    }
}

static void matmul_scalar(pool *p, const wtensor *w, const float *x, int T, float *y) {
    int nt = pool_threads(p);
    mm_job j = { w, x, y, T, 0, NULL };
    int64_t tasks = (int64_t)nt * 4;
    if (tasks > w->ne1) tasks = w->ne1;
    j.rows_per_task = (w->ne1 + tasks - 1) / tasks;
    tasks = (w->ne1 + j.rows_per_task - 1) / j.rows_per_task;
    float *buf = NULL, **rows = NULL;
    if (T > 1 && w->type != QT_F32) {
        buf = malloc(sizeof(float) * (size_t)w->ne0 * (size_t)nt);
        rows = malloc(sizeof(float *) * (size_t)nt);
        if (!buf || !rows) {
            /* out of memory for the scratch: fall back to one token at a time */
            free(buf); free(rows);
            for (int t = 0; t < T; t++) matmul_scalar(p, w, x + (size_t)t * w->ne0, 1, y + (size_t)t * w->ne1);
            return;
        }
        for (int i = 0; i < nt; i++) rows[i] = buf + (size_t)i * w->ne0;
        j.scratch = rows;
    }
    pool_run(p, (int)tasks, mm_task, &j);
    free(rows);
    free(buf);
}

/* ---- SIMD path ---- */

typedef struct simd_job {
    const wtensor *w;
    const mm_kernels *k;
    mm_quant_fn quant;
    const float *x;          /* for quantizing */
    const uint8_t *xa;       /* activations as the kernel reads them */
    size_t xs;
    int T;
    int64_t rows_per_task;
    float *y;
    uint8_t *qbuf;
} simd_job;

static void quant_task(void *arg, int task, int thread) {
    simd_job *j = arg;
    (void)thread;
    mm_act_layout L = mm_act_layout_of(j->w->ne0);
    j->quant(j->x + (size_t)task * j->w->ne0, j->w->ne0, j->qbuf + (size_t)task * L.stride);
}

static void simd_task(void *arg, int task, int thread) {
    simd_job *j = arg;
    const wtensor *w = j->w;
    (void)thread;
    int64_t r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task;
    if (r1 > w->ne1) r1 = w->ne1;
    /* rows outer, tokens inner: the MM_TILE_R rows stay in L1 while every token passes */
    for (int64_t r = r0; r < r1; r += MM_TILE_R) {
        int nr = r1 - r < MM_TILE_R ? (int)(r1 - r) : MM_TILE_R;
        const uint8_t *wr = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int t = 0; t < j->T; t += MM_TILE_C) {
            int nc = j->T - t < MM_TILE_C ? j->T - t : MM_TILE_C;
            j->k->tile(wr, w->row_bytes, nr, j->xa + (size_t)t * j->xs, j->xs, nc, w->ne0,
                       j->y + (size_t)t * w->ne1 + r, (size_t)w->ne1);
        }
    }
}

/* ---- panel path (AVX-512 VNNI, batches) ---- */

/* Batches at least this long take the panel path: unpacking a row costs about one token's
 * products, so below a few tokens the direct kernels win. */
#define PANEL_MIN_T 4

typedef struct panel_job {
    const wtensor *w;
    const mm_panel *pk;
    const float *x;
    uint8_t *xa;            /* T activation panels */
    uint8_t *scratch;       /* MM_PANEL_R weight panels per thread */
    size_t stride;
    int T;
    int64_t rows_per_task;
    float *y;
} panel_job;

static void panel_quant_task(void *arg, int task, int thread) {
    panel_job *j = arg;
    (void)thread;
    j->pk->quant(j->x + (size_t)task * j->w->ne0, j->w->ne0, j->xa + (size_t)task * j->stride);
}

static void panel_task(void *arg, int task, int thread) {
    panel_job *j = arg;
    const wtensor *w = j->w;
    uint8_t *wp = j->scratch + (size_t)thread * MM_PANEL_R * j->stride;
    int64_t r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task;
    if (r1 > w->ne1) r1 = w->ne1;
    for (int64_t r = r0; r < r1; r += MM_PANEL_R) {
        int nr = r1 - r < MM_PANEL_R ? (int)(r1 - r) : MM_PANEL_R;
        for (int i = 0; i < nr; i++)
            j->pk->convert((const uint8_t *)w->data + (size_t)(r + i) * w->row_bytes, w->ne0, wp + (size_t)i * j->stride);
        /* The next group's rows are fetched toward L2 a few lines per tile while this
         * group's tiles run: converting reads every weight from memory once, and without
         * this it waited for memory (c_q4_k was ~6% of a 128-token prompt). */
        int64_t rn = r1 - (r + nr) < MM_PANEL_R ? r1 - (r + nr) : MM_PANEL_R;
        const char *next = (const char *)w->data + (size_t)(r + nr) * w->row_bytes;
        const size_t lines = ((size_t)rn * w->row_bytes + 63) / 64, steps = (size_t)(j->T + MM_PANEL_C - 1) / MM_PANEL_C;
        const size_t per = (lines + steps - 1) / steps;
        size_t line = 0;
        for (int t = 0; t < j->T; t += MM_PANEL_C) {
            int nc = j->T - t < MM_PANEL_C ? j->T - t : MM_PANEL_C;
            for (size_t e = line + per; line < e && line < lines; line++) __builtin_prefetch(next + 64 * line, 0, 2);
            j->pk->tile(wp, nr, j->xa + (size_t)t * j->stride, nc, j->stride, w->ne0, j->y + (size_t)t * w->ne1 + r, (size_t)w->ne1);
        }
    }
}

/* Decode through the AVX-512 kernels that read the blocks directly (q8_0 and the
 * k-quants), for up to VEC_MAX tensors that take the same input (the attention's q, k, v;
 * the FFN's gate and up): the input is quantized once and one pool_run covers every
 * tensor's rows, so the threads meet once instead of once per tensor. */
#define VEC_MAX 3
typedef struct vec_job {
    int n, T;
    const wtensor *w[VEC_MAX];
    const mm_panel *pk[VEC_MAX];
    float *y[VEC_MAX];
    int64_t rows_per_task[VEC_MAX];
    int tasks[VEC_MAX];
    const uint8_t *xa;
    size_t stride;
} vec_job;

static void vec_task(void *arg, int task, int thread) {
    vec_job *j = arg;
    (void)thread;
    int i = 0;
    while (task >= j->tasks[i]) task -= j->tasks[i++];
    const wtensor *w = j->w[i];
    int64_t r0 = task * j->rows_per_task[i], r1 = r0 + j->rows_per_task[i];
    if (r1 > w->ne1) r1 = w->ne1;
    for (int t = 0; t < j->T; t++)
        for (int64_t r = r0; r < r1; r += 4) {
            int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
            j->pk[i]->vec((const uint8_t *)w->data + (size_t)r * w->row_bytes, w->row_bytes, nr,
                          j->xa + (size_t)t * j->stride, w->ne0, j->y[i] + (size_t)t * w->ne1 + r);
        }
}

static int matmul_vec(pool *p, const wtensor *const *w, int n, const float *x, int T, float *const *y) {
    vec_job j = { .n = n, .T = T };
    for (int i = 0; i < n; i++) {
        j.pk[i] = cpu_mm_panel(w[i]->type);
        if (!j.pk[i] || !j.pk[i]->vec || w[i]->ne0 % (w[i]->type == QT_Q8_0 ? 64 : 256) != 0 || w[i]->ne0 != w[0]->ne0 ||
            j.pk[i]->vec_quant != j.pk[0]->vec_quant)
            return -1;
        j.w[i] = w[i];
        j.y[i] = y[i];
    }
    const int nt = pool_threads(p);
    /* room for either form of vec_quant (q8_0's panel layout, the k-quants' vec layout) */
    const size_t ps = mm_panel_layout_of(w[0]->ne0).stride, vs = mm_vec_layout_of(w[0]->ne0).stride;
    j.stride = ps > vs ? ps : vs;
    uint8_t stackbuf[3 * 16384] __attribute__((aligned(64)));
    uint8_t *heap = NULL, *xa;
    size_t need = j.stride * (size_t)T;
    xa = need <= sizeof stackbuf ? stackbuf : (heap = aligned_alloc(64, (need + 63) & ~(size_t)63));
    if (!xa) return -1;
    for (int t = 0; t < T; t++) j.pk[0]->vec_quant(x + (size_t)t * w[0]->ne0, w[0]->ne0, xa + (size_t)t * j.stride);
    j.xa = xa;
    int total = 0;
    for (int i = 0; i < n; i++) {
        int64_t groups = (w[i]->ne1 + 3) / 4, tasks = (int64_t)nt * 8;
        if (tasks > groups) tasks = groups;
        j.rows_per_task[i] = (groups + tasks - 1) / tasks * 4;
        j.tasks[i] = (int)((w[i]->ne1 + j.rows_per_task[i] - 1) / j.rows_per_task[i]);
        total += j.tasks[i];
    }
    pool_run(p, total, vec_task, &j);
    free(heap);
    return 0;
}

/* 0 when done, -1 when the path does not apply (or memory ran out) */
static int matmul_panel(pool *p, const wtensor *w, const float *x, int T, float *y) {
    if (T < PANEL_MIN_T) return matmul_vec(p, &w, 1, x, T, &y);
    const mm_panel *pk = w->ne0 % 64 == 0 ? cpu_mm_panel(w->type) : NULL;
    if (!pk) return -1;
    const int nt = pool_threads(p);
    panel_job j = { .w = w, .pk = pk, .x = x, .T = T, .y = y };
    j.stride = mm_panel_layout_of(w->ne0).stride;
    uint8_t *buf = aligned_alloc(64, j.stride * ((size_t)T + (size_t)nt * MM_PANEL_R));
    if (!buf) return -1;
    j.xa = buf;
    j.scratch = buf + j.stride * (size_t)T;
    pool_run(p, T, panel_quant_task, &j);
    int64_t groups = (w->ne1 + MM_PANEL_R - 1) / MM_PANEL_R, tasks = (int64_t)nt * 16;
    if (tasks > groups) tasks = groups;
    j.rows_per_task = (groups + tasks - 1) / tasks * MM_PANEL_R;
    tasks = (w->ne1 + j.rows_per_task - 1) / j.rows_per_task;
    pool_run(p, (int)tasks, panel_task, &j);
    free(buf);
    return 0;
}

void cpu_matmul(pool *p, const wtensor *w, const float *x, int T, float *y) {
    if (matmul_panel(p, w, x, T, y) == 0) return;
    const mm_kernels *k = cpu_mm_kernels(w->type);
    if (!k || w->ne0 % k->block != 0 || T <= 0) { matmul_scalar(p, w, x, T, y); return; }
    const int nt = pool_threads(p);
    simd_job j = { .w = w, .k = k, .x = x, .T = T, .y = y };
    /* a token's activations for decode fit on the stack; a batch gets a heap buffer */
    uint8_t stackbuf[16384] __attribute__((aligned(64)));
    uint8_t *heap = NULL;
    if (k->act == MM_ACT_F32) {
        j.xa = (const uint8_t *)x;
        j.xs = sizeof(float) * (size_t)w->ne0;
    } else {
        mm_act_layout L = mm_act_layout_of(w->ne0);
        size_t need = L.stride * (size_t)T;
        j.qbuf = need <= sizeof stackbuf ? stackbuf : (heap = aligned_alloc(64, (need + 63) & ~(size_t)63));
        if (!j.qbuf) { matmul_scalar(p, w, x, T, y); return; }
        j.quant = cpu_mm_quant(k->act);
        if (T >= 8) pool_run(p, T, quant_task, &j);
        else for (int t = 0; t < T; t++) quant_task(&j, t, 0);
        j.xa = j.qbuf;
        j.xs = L.stride;
    }
    /* Row chunks a multiple of the tile height. Decode wants several chunks per thread so
     * uneven progress balances; a batch wants chunks big enough to amortize the task. */
    int64_t groups = (w->ne1 + MM_TILE_R - 1) / MM_TILE_R;
    int64_t tasks = T == 1 ? (int64_t)nt * 8 : (int64_t)nt * 16;
    if (tasks > groups) tasks = groups;
    j.rows_per_task = (groups + tasks - 1) / tasks * MM_TILE_R;
    tasks = (w->ne1 + j.rows_per_task - 1) / j.rows_per_task;
    pool_run(p, (int)tasks, simd_task, &j);
    free(heap);
}

void cpu_matmul_n(pool *p, const wtensor *const *w, int n, const float *x, int T, float *const *y) {
    if (n <= VEC_MAX && T < PANEL_MIN_T && matmul_vec(p, w, n, x, T, y) == 0) return;
    for (int i = 0; i < n; i++) cpu_matmul(p, w[i], x, T, y[i]);
}

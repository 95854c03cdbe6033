/* Matrix times a batch of activations. Threads take chunks of weight rows; for a batch,
 * each row is expanded to f32 once and reused for every token (a row is at most a few
 * thousand floats, so this is a per-thread scratch, not a copy of the weights). */
#include "backend/backend.h"
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

void cpu_matmul(pool *p, const wtensor *w, const float *x, int T, float *y) {
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
            for (int t = 0; t < T; t++) cpu_matmul(p, w, x + (size_t)t * w->ne0, 1, y + (size_t)t * w->ne1);
            return;
        }
        for (int i = 0; i < nt; i++) rows[i] = buf + (size_t)i * w->ne0;
        j.scratch = rows;
    }
    pool_run(p, (int)tasks, mm_task, &j);
    free(rows);
    free(buf);
}

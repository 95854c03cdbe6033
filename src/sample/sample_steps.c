/* sample_steps.c: the truncation and shaping steps of the sampler chain, and the draw.
 *
 * Every step takes the list as it finds it and leaves at least one candidate. Steps that
 * need probabilities call smp_softmax themselves; the list's p values are only valid right
 * after that. */
#include "sample_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers: xoshiro256**, seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void smp_rng_seed(smp_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t smp_rng_next(smp_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

double smp_rng_uniform(smp_rng *r) { return (double)(smp_rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- ordering and probabilities ---- */

static int cmp_desc(const void *a, const void *b) {
    float x = ((const smp_cand *)a)->logit, y = ((const smp_cand *)b)->logit;
    if (x > y) return -1;
    if (x < y) return 1;
    int32_t i = ((const smp_cand *)a)->id, j = ((const smp_cand *)b)->id;
    return (i > j) - (i < j);   /* ties by id, so the order never depends on qsort */
}

/* Move the k largest to the front (quickselect on a median-of-three pivot), unsorted. */
static void select_top(smp_cand *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        smp_cand a = c[lo], b = c[mid], d = c[hi], piv;
        if (cmp_desc(&a, &b) > 0) { smp_cand t = a; a = b; b = t; }
        if (cmp_desc(&b, &d) > 0) { b = d; if (cmp_desc(&a, &b) > 0) b = a; }
        piv = b;
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp_desc(&c[i], &piv) < 0) i++;
            while (cmp_desc(&c[j], &piv) > 0) j--;
            if (i <= j) { smp_cand t = c[i]; c[i] = c[j]; c[j] = t; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

void smp_sort(smp_list *l, int k) {
    if (k > 0 && k < l->n) {
        if (!l->sorted) select_top(l->c, l->n, k);
        l->n = k;
    }
    if (!l->sorted) qsort(l->c, (size_t)l->n, sizeof *l->c, cmp_desc);
    l->sorted = 1;
}

void smp_softmax(smp_list *l) {
    float mx = -INFINITY;
    for (int i = 0; i < l->n; i++) if (l->c[i].logit > mx) mx = l->c[i].logit;
    double sum = 0.0;
    for (int i = 0; i < l->n; i++) {
        float e = (mx == -INFINITY) ? 1.0f : expf(l->c[i].logit - mx);
        l->c[i].p = e;
        sum += e;
    }
    for (int i = 0; i < l->n; i++) l->c[i].p = (float)(l->c[i].p / sum);
}

/* Drop every candidate whose logit is -inf (banned), keeping at least one. */
static void drop_banned(smp_list *l) {
    int m = 0;
    for (int i = 0; i < l->n; i++) if (l->c[i].logit != -INFINITY) l->c[m++] = l->c[i];
    if (m > 0) l->n = m;
}

/* ---- steps ---- */

void smp_top_k(smp_list *l, int k) {
    if (k <= 0 || k >= l->n) return;
    smp_sort(l, k);
}

void smp_top_p(smp_list *l, float p) {
    if (p >= 1.0f || l->n <= 1) return;
    smp_sort(l, 0);
    smp_softmax(l);
    double cum = 0.0;
    int keep = l->n;
    for (int i = 0; i < l->n; i++) {
        cum += l->c[i].p;
        if (cum >= p) { keep = i + 1; break; }
    }
    l->n = keep;
}

void smp_min_p(smp_list *l, float p) {
    if (p <= 0.0f || l->n <= 1) return;
    float mx = -INFINITY;
    for (int i = 0; i < l->n; i++) if (l->c[i].logit > mx) mx = l->c[i].logit;
    float cut = mx + logf(p > 1.0f ? 1.0f : p);
    int m = 0;
    for (int i = 0; i < l->n; i++) if (l->c[i].logit >= cut) l->c[m++] = l->c[i];
    l->n = m > 0 ? m : 1;   /* m is at least 1: the max passes */
}

/* Locally typical sampling: keep the tokens whose surprise is closest to the entropy,
 * until they hold mass p. */
void smp_typical(smp_list *l, float p) {
    if (p >= 1.0f || l->n <= 1) return;
    smp_softmax(l);
    double ent = 0.0;
    for (int i = 0; i < l->n; i++) if (l->c[i].p > 0) ent -= l->c[i].p * log(l->c[i].p);
    int n = l->n;
    float *dev = malloc(sizeof(float) * (size_t)n);
    int *idx = malloc(sizeof(int) * (size_t)n);
    smp_cand *tmp = malloc(sizeof(smp_cand) * (size_t)n);
    if (!dev || !idx || !tmp) { free(dev); free(idx); free(tmp); return; }
    for (int i = 0; i < n; i++) {
        double s = l->c[i].p > 0 ? -log(l->c[i].p) : INFINITY;
        dev[i] = (float)fabs(s - ent);
        idx[i] = i;
    }
    /* insertion sort by deviation would be O(n^2); sort the index array instead */
    for (int gap = n / 2; gap > 0; gap /= 2)   /* shell sort: no comparator context needed */
        for (int i = gap; i < n; i++) {
            int v = idx[i], j = i;
            while (j >= gap && (dev[idx[j - gap]] > dev[v] ||
                                (dev[idx[j - gap]] == dev[v] && idx[j - gap] > v))) {
                idx[j] = idx[j - gap]; j -= gap;
            }
            idx[j] = v;
        }
    double cum = 0.0;
    int keep = n;
    for (int i = 0; i < n; i++) {
        cum += l->c[idx[i]].p;
        if (cum >= p) { keep = i + 1; break; }
    }
    for (int i = 0; i < keep; i++) tmp[i] = l->c[idx[i]];
    memcpy(l->c, tmp, sizeof(smp_cand) * (size_t)keep);
    l->n = keep;
    l->sorted = 0;
    free(dev); free(idx); free(tmp);
}

/* Tail-free sampling: cut where the curvature (second difference) of the sorted
 * probabilities has accumulated mass z. */
void smp_tfs(smp_list *l, float z) {
    if (z >= 1.0f || l->n <= 2) return;
    smp_sort(l, 0);
    smp_softmax(l);
    int n = l->n;
    double total = 0.0;
    for (int i = 0; i < n - 2; i++)
        total += fabs((double)l->c[i].p - 2.0 * l->c[i + 1].p + l->c[i + 2].p);
    if (total <= 0.0) return;
    double cum = 0.0;
    int keep = n;
    for (int i = 0; i < n - 2; i++) {
        cum += fabs((double)l->c[i].p - 2.0 * l->c[i + 1].p + l->c[i + 2].p) / total;
        if (cum > z) { keep = i + 1; break; }
    }
    l->n = keep;
}

/* Top-a: drop tokens less likely than a * p_max^2. */
void smp_top_a(smp_list *l, float a) {
    if (a <= 0.0f || l->n <= 1) return;
    smp_softmax(l);
    float mx = 0.0f;
    for (int i = 0; i < l->n; i++) if (l->c[i].p > mx) mx = l->c[i].p;
    float cut = a * mx * mx;
    int m = 0;
    for (int i = 0; i < l->n; i++) if (l->c[i].p >= cut) l->c[m++] = l->c[i];
    l->n = m > 0 ? m : 1;
}

void smp_temperature(smp_list *l, float t) {
    if (t <= 0.0f || t == 1.0f) return;
    for (int i = 0; i < l->n; i++) l->c[i].logit /= t;
}

/* Dynamic temperature: low entropy (a confident model) gets temp - range, a flat
 * distribution temp + range, with (H / H_max)^exponent in between. */
void smp_dynatemp(smp_list *l, float t, float range, float exponent) {
    if (l->n <= 1) return;
    float lo = t - range, hi = t + range;
    if (lo < 0.0f) lo = 0.0f;
    smp_softmax(l);
    double ent = 0.0;
    for (int i = 0; i < l->n; i++) if (l->c[i].p > 0) ent -= l->c[i].p * log(l->c[i].p);
    double hmax = log((double)l->n);
    double norm = hmax > 0 ? ent / hmax : 0.0;
    if (exponent <= 0.0f) exponent = 1.0f;
    float dt = lo + (hi - lo) * (float)pow(norm, exponent);
    if (dt <= 0.0f) dt = 1e-4f;
    smp_temperature(l, dt);
}

/* Quadratic ("smoothing") sampling: logit' = max - factor * (logit - max)^2. */
void smp_smoothing(smp_list *l, float factor) {
    if (factor <= 0.0f || l->n <= 1) return;
    float mx = -INFINITY;
    for (int i = 0; i < l->n; i++) if (l->c[i].logit > mx) mx = l->c[i].logit;
    for (int i = 0; i < l->n; i++) {
        float d = l->c[i].logit - mx;
        l->c[i].logit = mx - factor * d * d;
    }
}

/* XTC ("exclude top choices"): sometimes take away the most obvious continuations, leaving
 * the least likely of those above the threshold so the text stays coherent. */
void smp_xtc(smp_list *l, float threshold, float probability, smp_rng *rng) {
    if (probability <= 0.0f || threshold <= 0.0f || threshold > 0.5f || l->n <= 1) return;
    if (smp_rng_uniform(rng) >= probability) return;
    smp_sort(l, 0);
    smp_softmax(l);
    int above = 0;
    while (above < l->n && l->c[above].p >= threshold) above++;
    if (above < 2) return;
    int drop = above - 1;
    memmove(l->c, l->c + drop, sizeof(smp_cand) * (size_t)(l->n - drop));
    l->n -= drop;
}

int32_t smp_argmax(const smp_list *l) {
    int best = 0;
    for (int i = 1; i < l->n; i++)
        if (l->c[i].logit > l->c[best].logit ||
            (l->c[i].logit == l->c[best].logit && l->c[i].id < l->c[best].id)) best = i;
    return l->c[best].id;
}

int32_t smp_draw(smp_list *l, smp_rng *rng) {
    drop_banned(l);
    smp_softmax(l);
    double r = smp_rng_uniform(rng), cum = 0.0;
    for (int i = 0; i < l->n; i++) {
        cum += l->c[i].p;
        if (r < cum) return l->c[i].id;
    }
    return l->c[l->n - 1].id;
}

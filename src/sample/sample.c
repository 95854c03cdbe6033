/* sample.c: the public sampler API: settings, state, and the chain that runs the steps.
 *
 * The chain, in order:
 *   1. logit bias (bans included), DRY;
 *   2. Mirostat, when on, takes over: penalties, temperature, then its own truncation;
 *   3. otherwise the steps in sampler_order (KoboldCpp's ids, default 6,0,1,3,4,2,5), with
 *      min-p next to top-p and smoothing/dynamic temperature next to temperature;
 *   4. XTC; then greedy when temp <= 0, else a draw from the seeded generator. */
#include "hearth.h"
#include "sample_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ORD_TOP_K = 0, ORD_TOP_A = 1, ORD_TOP_P = 2, ORD_TFS = 3, ORD_TYPICAL = 4,
       ORD_TEMP = 5, ORD_REP_PEN = 6 };

struct hearth_sampler {
    hearth_sampling s;
    int n_vocab;
    smp_list list;
    smp_rng rng;
    float mu;            /* Mirostat's running surprise target */
    uint16_t *near, *far;
    float *tokpen;
    uint8_t *is_breaker;
    int32_t *scratch;
    int n_scratch;
    int32_t *bias_tok;
    float *bias_val;
};

hearth_sampling hearth_sampling_default(void) {
    hearth_sampling s;
    memset(&s, 0, sizeof s);
    s.temp = 0.8f;
    s.top_k = 40;
    s.top_p = 0.95f;
    s.min_p = 0.0f;
    s.typical = 1.0f;
    s.tfs = 1.0f;
    s.top_a = 0.0f;
    s.rep_pen = 1.0f;
    s.rep_pen_range = 0;
    s.rep_pen_slope = 1.0f;
    s.seed = 0x68656172746855ULL;
    s.dynatemp_exponent = 1.0f;
    s.dry_base = 1.75f;
    s.dry_allowed_length = 2;
    s.xtc_threshold = 0.1f;
    s.mirostat_tau = 5.0f;
    s.mirostat_eta = 0.1f;
    return s;
}

hearth_sampler *hearth_sampler_new(const hearth_sampling *s, int n_vocab) {
    if (!s || n_vocab <= 0) return NULL;
    hearth_sampler *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->s = *s;
    h->n_vocab = n_vocab;
    h->list.c = malloc(sizeof(smp_cand) * (size_t)n_vocab);
    h->near = calloc((size_t)n_vocab, sizeof *h->near);
    h->far = calloc((size_t)n_vocab, sizeof *h->far);
    h->tokpen = calloc((size_t)n_vocab, sizeof *h->tokpen);
    if (!h->list.c || !h->near || !h->far || !h->tokpen) goto fail;
    if (s->n_dry_breakers > 0 && s->dry_breakers) {
        h->is_breaker = calloc((size_t)n_vocab, 1);
        if (!h->is_breaker) goto fail;
        for (int i = 0; i < s->n_dry_breakers; i++)
            if (s->dry_breakers[i] >= 0 && s->dry_breakers[i] < n_vocab) h->is_breaker[s->dry_breakers[i]] = 1;
    }
    h->s.dry_breakers = NULL;
    h->s.n_dry_breakers = 0;
    h->s.bias_tok = NULL;
    h->s.bias_val = NULL;
    h->s.n_bias = 0;
    if (s->n_bias > 0 && s->bias_tok && s->bias_val) {
        h->bias_tok = malloc(sizeof(int32_t) * (size_t)s->n_bias);
        h->bias_val = malloc(sizeof(float) * (size_t)s->n_bias);
        if (!h->bias_tok || !h->bias_val) goto fail;
        memcpy(h->bias_tok, s->bias_tok, sizeof(int32_t) * (size_t)s->n_bias);
        memcpy(h->bias_val, s->bias_val, sizeof(float) * (size_t)s->n_bias);
        h->s.n_bias = s->n_bias;
    }
    int n_ord = s->n_sampler_order;
    if (n_ord < 0) n_ord = 0;
    if (n_ord > (int)(sizeof s->sampler_order / sizeof s->sampler_order[0]))
        n_ord = (int)(sizeof s->sampler_order / sizeof s->sampler_order[0]);
    if (n_ord == 0) {
        static const int def[] = { ORD_REP_PEN, ORD_TOP_K, ORD_TOP_A, ORD_TFS, ORD_TYPICAL, ORD_TOP_P, ORD_TEMP };
        memcpy(h->s.sampler_order, def, sizeof def);
        n_ord = 7;
    }
    h->s.n_sampler_order = n_ord;
    hearth_sampler_reseed(h, s->seed);
    return h;
fail:
    hearth_sampler_free(h);
    return NULL;
}

void hearth_sampler_free(hearth_sampler *h) {
    if (!h) return;
    free(h->list.c); free(h->near); free(h->far); free(h->tokpen);
    free(h->is_breaker); free(h->scratch); free(h->bias_tok); free(h->bias_val);
    free(h);
}

void hearth_sampler_reseed(hearth_sampler *h, uint64_t seed) {
    if (!h) return;
    smp_rng_seed(&h->rng, seed);
    h->mu = 2.0f * h->s.mirostat_tau;
}

static void apply_rep_pen(hearth_sampler *h, const int32_t *hist, int n_hist) {
    const hearth_sampling *s = &h->s;
    if (s->rep_pen == 1.0f && s->presence_penalty == 0.0f && s->frequency_penalty == 0.0f) return;
    /* ids out of range in the history would index past the count arrays */
    for (int i = 0; i < n_hist; i++) if (hist[i] < 0 || hist[i] >= h->n_vocab) return;
    smp_rep_pen(&h->list, hist, n_hist, s->rep_pen, s->rep_pen_range, s->rep_pen_slope,
                s->presence_penalty, s->frequency_penalty, h->near, h->far);
}

/* Mirostat v1 (Basu et al. 2020): estimate the Zipf exponent from the top tokens, derive
 * the k that gives surprise mu, sample from the top k, move mu toward tau. v2 skips the
 * estimate and cuts every token whose surprise exceeds mu. */
static int32_t mirostat(hearth_sampler *h) {
    smp_list *l = &h->list;
    const float tau = h->s.mirostat_tau, eta = h->s.mirostat_eta;
    smp_sort(l, 0);
    smp_softmax(l);
    if (h->s.mirostat == 1) {
        int m = l->n < 100 ? l->n : 100;
        double num = 0.0, den = 0.0;
        for (int i = 0; i < m - 1; i++) {
            if (l->c[i + 1].p <= 0) break;
            double t = log((double)(i + 2) / (i + 1));
            double b = log((double)l->c[i].p / l->c[i + 1].p);
            num += t * b; den += t * t;
        }
        double s_hat = den > 0 ? num / den : 1.0;
        double eps = s_hat - 1.0;
        if (eps < 1e-6) eps = 1e-6;
        double k = pow((eps * pow(2.0, h->mu)) / (1.0 - pow((double)h->n_vocab, -eps)), 1.0 / s_hat);
        int ki = k < 1 ? 1 : (k > l->n ? l->n : (int)k);
        smp_sort(l, ki);
    } else {
        int keep = 0;
        while (keep < l->n && -log2f(l->c[keep].p) <= h->mu) keep++;
        l->n = keep > 0 ? keep : 1;
    }
    smp_softmax(l);
    int32_t tok = smp_draw(l, &h->rng);
    float p = 0.0f;
    smp_softmax(l);
    for (int i = 0; i < l->n; i++) if (l->c[i].id == tok) { p = l->c[i].p; break; }
    float surprise = p > 0 ? -log2f(p) : 0.0f;
    h->mu -= eta * (surprise - tau);
    return tok;
}

int32_t hearth_sampler_sample(hearth_sampler *h, const float *logits, const int32_t *hist, int n_hist) {
    if (!h || !logits) return -1;
    const hearth_sampling *s = &h->s;
    smp_list *l = &h->list;
    if (n_hist < 0 || !hist) n_hist = 0;
    l->n = h->n_vocab;
    l->sorted = 0;
    for (int i = 0; i < h->n_vocab; i++) {
        float v = logits[i];
        l->c[i].id = i;
        l->c[i].logit = isnan(v) ? -INFINITY : v;
        l->c[i].p = 0.0f;
    }
    for (int i = 0; i < s->n_bias; i++) {
        int32_t t = h->bias_tok[i];
        if (t >= 0 && t < h->n_vocab) l->c[t].logit += h->bias_val[i];
    }
    if (s->dry_multiplier > 0.0f && n_hist >= 2) {
        int w = (s->dry_penalty_last_n > 0 && s->dry_penalty_last_n < n_hist) ? s->dry_penalty_last_n : n_hist;
        if (2 * w > h->n_scratch) {
            int32_t *ns = realloc(h->scratch, sizeof(int32_t) * 2 * (size_t)w);
            if (ns) { h->scratch = ns; h->n_scratch = 2 * w; }
        }
        if (2 * w <= h->n_scratch)
            smp_dry(l, hist, n_hist, s->dry_multiplier, s->dry_base, s->dry_allowed_length,
                    s->dry_penalty_last_n, h->is_breaker, h->n_vocab, h->scratch, h->tokpen);
    }

    if (s->mirostat == 1 || s->mirostat == 2) {
        apply_rep_pen(h, hist, n_hist);
        if (s->temp <= 0.0f) return smp_argmax(l);
        smp_temperature(l, s->temp);
        return mirostat(h);
    }

    int greedy = s->temp <= 0.0f;
    for (int o = 0; o < s->n_sampler_order; o++) {
        switch (s->sampler_order[o]) {
        case ORD_REP_PEN: apply_rep_pen(h, hist, n_hist); break;
        case ORD_TOP_K:   if (!greedy) smp_top_k(l, s->top_k); break;
        case ORD_TOP_A:   if (!greedy) smp_top_a(l, s->top_a); break;
        case ORD_TOP_P:   if (!greedy) { smp_top_p(l, s->top_p); smp_min_p(l, s->min_p); } break;
        case ORD_TFS:     if (!greedy) smp_tfs(l, s->tfs); break;
        case ORD_TYPICAL: if (!greedy) smp_typical(l, s->typical); break;
        case ORD_TEMP:
            if (greedy) break;
            smp_smoothing(l, s->smoothing_factor);
            if (s->dynatemp_range > 0.0f) smp_dynatemp(l, s->temp, s->dynatemp_range, s->dynatemp_exponent);
            else smp_temperature(l, s->temp);
            break;
        default: break;   /* unknown ids are ignored, as KoboldCpp does */
        }
    }
    if (greedy) return smp_argmax(l);
    smp_xtc(l, s->xtc_threshold, s->xtc_probability, &h->rng);
    return smp_draw(l, &h->rng);
}

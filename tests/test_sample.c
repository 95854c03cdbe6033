/* test_sample.c: every sampler step against small distributions whose right answer is known. */
#include "hearth.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NV 8

/* logits whose softmax is p (p need not sum to 1) */
static void logits_of(const float *p, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = p[i] > 0 ? logf(p[i]) : -INFINITY;
}

/* Draw n tokens with settings s from fixed logits; counts[] per token. */
static void draw_many(const hearth_sampling *s, const float *logits, int n, int *counts,
                      const int32_t *hist, int n_hist) {
    memset(counts, 0, sizeof(int) * NV);
    hearth_sampler *h = hearth_sampler_new(s, NV);
    for (int i = 0; i < n; i++) {
        int32_t t = hearth_sampler_sample(h, logits, hist, n_hist);
        if (t >= 0 && t < NV) counts[t]++;
    }
    hearth_sampler_free(h);
}

static hearth_sampling plain(void) {
    hearth_sampling s = hearth_sampling_default();
    s.temp = 1.0f; s.top_k = 0; s.top_p = 1.0f; s.min_p = 0.0f;
    return s;
}

static const float P[NV] = { 0.40f, 0.25f, 0.15f, 0.10f, 0.05f, 0.03f, 0.015f, 0.005f };

static void test_greedy_and_seed(void) {
    float lg[NV]; logits_of(P, lg, NV);
    hearth_sampling s = plain();
    s.temp = 0.0f;
    int c[NV]; draw_many(&s, lg, 50, c, NULL, 0);
    CHECK(c[0] == 50, "greedy picks the argmax every time (%d/50)", c[0]);

    /* a seed repeats a run; another seed gives another run */
    s = plain(); s.seed = 1234;
    int32_t a[64], b[64], d[64];
    hearth_sampler *h1 = hearth_sampler_new(&s, NV), *h2 = hearth_sampler_new(&s, NV);
    s.seed = 99;
    hearth_sampler *h3 = hearth_sampler_new(&s, NV);
    int same = 1, diff = 0;
    for (int i = 0; i < 64; i++) {
        a[i] = hearth_sampler_sample(h1, lg, NULL, 0);
        b[i] = hearth_sampler_sample(h2, lg, NULL, 0);
        d[i] = hearth_sampler_sample(h3, lg, NULL, 0);
        if (a[i] != b[i]) same = 0;
        if (a[i] != d[i]) diff = 1;
    }
    CHECK(same, "the same seed repeats the same tokens");
    CHECK(diff, "another seed gives other tokens");
    hearth_sampler_reseed(h1, 1234);
    int again = 1;
    for (int i = 0; i < 64; i++) if (hearth_sampler_sample(h1, lg, NULL, 0) != a[i]) again = 0;
    CHECK(again, "reseeding restarts the sequence");
    hearth_sampler_free(h1); hearth_sampler_free(h2); hearth_sampler_free(h3);
}

static void test_distribution(void) {
    float lg[NV]; logits_of(P, lg, NV);
    hearth_sampling s = plain();
    int n = 40000, c[NV];
    draw_many(&s, lg, n, c, NULL, 0);
    for (int i = 0; i < NV; i++) {
        double f = (double)c[i] / n, sd = sqrt(P[i] * (1 - P[i]) / n);
        CHECK(fabs(f - P[i]) < 5 * sd + 1e-3, "token %d drawn %.4f, expected %.4f", i, f, P[i]);
    }
    /* temperature 0.5 squares the odds: p0/p1 = (0.4/0.25)^2 = 2.56 */
    s.temp = 0.5f;
    draw_many(&s, lg, n, c, NULL, 0);
    double r = (double)c[0] / c[1];
    CHECK(fabs(r - 2.56) < 0.2, "temperature 0.5: ratio %.3f, expected 2.56", r);
}

static void test_truncation(void) {
    float lg[NV]; logits_of(P, lg, NV);
    int c[NV], n = 4000;
    hearth_sampling s = plain();
    s.top_k = 2;
    draw_many(&s, lg, n, c, NULL, 0);
    CHECK(c[0] > 0 && c[1] > 0 && c[0] + c[1] == n, "top-k 2 keeps tokens 0 and 1 only");

    s = plain(); s.top_p = 0.7f;   /* 0.40 + 0.25 = 0.65 < 0.7: needs token 2 too */
    draw_many(&s, lg, n, c, NULL, 0);
    CHECK(c[2] > 0 && c[0] + c[1] + c[2] == n, "top-p 0.7 keeps tokens 0..2 (%d %d %d)", c[0], c[1], c[2]);

    s = plain(); s.min_p = 0.3f;   /* keeps p >= 0.12: tokens 0..2 */
    draw_many(&s, lg, n, c, NULL, 0);
    CHECK(c[2] > 0 && c[0] + c[1] + c[2] == n, "min-p 0.3 keeps tokens 0..2");

    s = plain(); s.top_a = 0.5f;   /* keeps p >= 0.5 * 0.16 = 0.08: tokens 0..3 */
    draw_many(&s, lg, n, c, NULL, 0);
    CHECK(c[3] > 0 && c[0] + c[1] + c[2] + c[3] == n, "top-a 0.5 keeps tokens 0..3");

    s = plain(); s.tfs = 0.5f;
    draw_many(&s, lg, n, c, NULL, 0);
    CHECK(c[0] > 0 && c[7] == 0 && c[6] == 0, "tfs 0.5 cuts the tail");

    s = plain(); s.typical = 0.2f;
    draw_many(&s, lg, n, c, NULL, 0);
    int kinds = 0; for (int i = 0; i < NV; i++) kinds += c[i] > 0;
    CHECK(kinds >= 1 && kinds <= 2 && c[7] == 0, "typical 0.2 keeps one or two tokens near the entropy (%d)", kinds);

    /* an order that leaves top-k out does not apply it */
    s = plain(); s.top_k = 1; s.sampler_order[0] = 5; s.n_sampler_order = 1;
    draw_many(&s, lg, n, c, NULL, 0);
    CHECK(c[1] > 0, "top-k is skipped when sampler_order leaves id 0 out");
    s.sampler_order[1] = 0; s.n_sampler_order = 2;
    draw_many(&s, lg, n, c, NULL, 0);
    CHECK(c[0] == n, "top-k 1 in the order keeps the argmax only");
}

static void test_penalties(void) {
    float lg[NV]; logits_of(P, lg, NV);
    int c[NV];
    hearth_sampling s = plain();
    s.temp = 0.0f;
    s.rep_pen = 2.0f;                                  /* logit(0)=ln .4=-0.92 -> -1.83 < ln .25 */
    int32_t hist[] = { 0, 5, 5, 5 };
    draw_many(&s, lg, 5, c, hist, 4);
    CHECK(c[1] == 5, "repetition penalty moves greedy off a repeated token");
    s.rep_pen_range = 2;                               /* window {5,5}: token 0 not penalized */
    draw_many(&s, lg, 5, c, hist, 4);
    CHECK(c[0] == 5, "rep_pen_range limits the window");
    /* slope: token 0 only in the older half gets 1 + (2-1)*0.1 = 1.1: -0.92*1.1 > ln .25 */
    s.rep_pen_range = 0; s.rep_pen_slope = 0.1f;
    draw_many(&s, lg, 5, c, hist, 4);
    CHECK(c[0] == 5, "rep_pen_slope softens the older half");

    s = plain(); s.temp = 0.0f; s.presence_penalty = 0.6f;  /* -0.92-0.6 < -1.39 */
    draw_many(&s, lg, 5, c, hist, 1);
    CHECK(c[1] == 5, "presence penalty");
    s = plain(); s.temp = 0.0f; s.frequency_penalty = 0.3f;
    int32_t h2[] = { 0 };
    draw_many(&s, lg, 5, c, h2, 1);
    CHECK(c[0] == 5, "frequency penalty 0.3 x 1 is not enough");
    int32_t h3[] = { 0, 0 };
    draw_many(&s, lg, 5, c, h3, 2);
    CHECK(c[1] == 5, "frequency penalty 0.3 x 2 is");

    /* logit bias: a ban, and a push */
    s = plain(); s.temp = 0.0f;
    int32_t bt[] = { 0, 4 }; float bv[] = { -INFINITY, 3.0f };
    s.bias_tok = bt; s.bias_val = bv; s.n_bias = 2;
    draw_many(&s, lg, 5, c, NULL, 0);
    CHECK(c[4] == 5, "logit bias +3 makes token 4 the argmax");
    s.n_bias = 1; s.temp = 1.0f;
    draw_many(&s, lg, 2000, c, NULL, 0);
    CHECK(c[0] == 0, "a -inf bias bans the token");
}

static void test_dry(void) {
    float lg[NV]; logits_of(P, lg, NV);
    /* make token 3 a narrow favourite */
    lg[3] = lg[0] + 0.1f;
    int c[NV];
    hearth_sampling s = plain();
    s.temp = 0.0f;
    s.dry_multiplier = 0.8f; s.dry_base = 1.75f; s.dry_allowed_length = 2;
    int32_t hist[] = { 6, 7, 3, 1, 6, 7 };     /* "6 7" then 3 before; now "6 7" again */
    draw_many(&s, lg, 3, c, hist, 6);
    CHECK(c[0] == 3, "DRY penalizes the token that would repeat 6 7 3");
    int32_t brk[] = { 7 };
    s.dry_breakers = brk; s.n_dry_breakers = 1;
    draw_many(&s, lg, 3, c, hist, 6);
    CHECK(c[3] == 3, "a breaker token stops DRY's match");
    s.n_dry_breakers = 0; s.dry_allowed_length = 3;
    draw_many(&s, lg, 3, c, hist, 6);
    CHECK(c[3] == 3, "a repeat shorter than allowed_length is not penalized");
    /* a long repeat: the penalty grows with its length */
    int32_t longh[] = { 1, 2, 4, 5, 3, 6, 1, 2, 4, 5 };
    s.dry_allowed_length = 2; s.dry_multiplier = 0.05f;   /* 0.05 * 1.75^2 = 0.153 > 0.1 */
    draw_many(&s, lg, 3, c, longh, 10);
    CHECK(c[0] == 3, "DRY penalty grows with the repeat's length");
}

static void test_xtc_mirostat(void) {
    float lg[NV]; logits_of(P, lg, NV);
    int c[NV], n = 3000;
    hearth_sampling s = plain();
    s.xtc_probability = 1.0f; s.xtc_threshold = 0.1f;   /* tokens 0..3 are >= 0.1: keep 3.. */
    draw_many(&s, lg, n, c, NULL, 0);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] > 0, "XTC removes the top choices but the last");

    for (int v = 1; v <= 2; v++) {
        s = plain(); s.mirostat = v; s.mirostat_tau = 1.0f; s.mirostat_eta = 0.1f;
        draw_many(&s, lg, n, c, NULL, 0);
        int tot = 0; for (int i = 0; i < NV; i++) tot += c[i];
        CHECK(tot == n, "mirostat v%d gives valid tokens", v);
        CHECK(c[0] > c[5], "mirostat v%d with a low target favours the likely tokens", v);
    }
}

static void test_robustness(void) {
    float lg[NV];
    for (int i = 0; i < NV; i++) lg[i] = NAN;
    lg[2] = 1.0f;
    hearth_sampling s = plain();
    s.top_k = 3; s.top_p = 0.5f; s.min_p = 0.1f; s.typical = 0.5f; s.tfs = 0.5f; s.top_a = 0.2f;
    int c[NV];
    draw_many(&s, lg, 100, c, NULL, 0);
    CHECK(c[2] == 100, "NaN logits never win and never crash the chain");
    for (int i = 0; i < NV; i++) lg[i] = -INFINITY;
    s = plain();
    hearth_sampler *h = hearth_sampler_new(&s, NV);
    int32_t t = hearth_sampler_sample(h, lg, NULL, 0);
    CHECK(t >= 0 && t < NV, "all -inf still yields a token id (%d)", t);
    int32_t bad[] = { -5, 1000 };
    s.rep_pen = 1.3f; s.dry_multiplier = 1.0f;
    hearth_sampler_free(h);
    h = hearth_sampler_new(&s, NV);
    t = hearth_sampler_sample(h, lg, bad, 2);
    CHECK(t >= 0 && t < NV, "out-of-range history ids are ignored");
    hearth_sampler_free(h);
    CHECK(hearth_sampler_new(&s, 0) == NULL, "n_vocab 0 is refused");

    /* a big vocabulary with top-k goes through the selection path */
    int nv = 50000;
    float *big = malloc(sizeof(float) * nv);
    for (int i = 0; i < nv; i++) big[i] = (float)((i * 7919) % 1000) / 100.0f;
    big[12345] = 20.0f;
    s = plain(); s.top_k = 1;
    h = hearth_sampler_new(&s, nv);
    CHECK(hearth_sampler_sample(h, big, NULL, 0) == 12345, "top-k 1 over 50000 tokens finds the max");
    hearth_sampler_free(h);
    s = plain(); s.top_k = 50; s.top_p = 0.9f;
    h = hearth_sampler_new(&s, nv);
    t = hearth_sampler_sample(h, big, NULL, 0);
    CHECK(t == 12345, "top-k 50 + top-p keeps the dominant token (%d)", t);
    hearth_sampler_free(h);
    free(big);
}

int main(void) {
    test_greedy_and_seed();
    test_distribution();
    test_truncation();
    test_penalties();
    test_dry();
    test_xtc_mirostat();
    test_robustness();
    return test_done("test_sample");
}

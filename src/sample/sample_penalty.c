/* sample_penalty.c: penalties that look back at the tokens so far.
 *
 * Repetition penalty follows KoboldCpp's meaning: the last `range` tokens are split in two
 * halves; a token seen in the newer half gets the full penalty, one seen only in the older
 * half gets 1 + (pen - 1) * slope (slope 1: flat). A positive logit is divided by the
 * penalty, a negative one multiplied, so the token always becomes less likely. Presence
 * and frequency penalties (OpenAI's meaning) subtract from the logit over the same window. */
#include "sample_internal.h"

#include <math.h>
#include <stdlib.h>

void smp_rep_pen(smp_list *l, const int32_t *hist, int n_hist, float pen, int range, float slope,
                 float presence, float frequency, uint16_t *near, uint16_t *far) {
    if (n_hist <= 0) return;
    int w = (range > 0 && range < n_hist) ? range : n_hist;
    const int32_t *win = hist + (n_hist - w);
    int half = w / 2;
    for (int i = 0; i < w; i++) {
        uint16_t *cnt = i < half ? far : near;
        if (cnt[win[i]] < UINT16_MAX) cnt[win[i]]++;
    }
    float reduced = pen;
    if (pen > 1.0f && slope > 0.0f && slope < 1.0f) reduced = 1.0f + (pen - 1.0f) * slope;
    for (int i = 0; i < l->n; i++) {
        smp_cand *c = &l->c[i];
        unsigned nn = near[c->id], nf = far[c->id];
        if (nn + nf == 0) continue;
        float p = nn ? pen : reduced;
        if (p != 1.0f && p > 0.0f) c->logit = c->logit <= 0 ? c->logit * p : c->logit / p;
        c->logit -= presence + frequency * (float)(nn + nf);
    }
    for (int i = 0; i < w; i++) near[win[i]] = far[win[i]] = 0;
    l->sorted = 0;
}

/* DRY ("don't repeat yourself"): if the last L tokens also occur earlier followed by token t,
 * emitting t would continue the repeat, so t is penalized by mult * base^(L - allowed).
 * The longest such L for every earlier position comes from one Z-function pass over the
 * reversed window: Z[j] is how far the text ending at position n-1-j agrees, backwards,
 * with the text ending now. Breaker tokens are replaced by unique negative values so no
 * match crosses them. */
void smp_dry(smp_list *l, const int32_t *hist, int n_hist, float mult, float base, int allowed,
             int last_n, const uint8_t *is_breaker, int n_vocab, int32_t *scratch, float *tokpen) {
    if (mult <= 0.0f || n_hist < 2) return;
    int w = (last_n > 0 && last_n < n_hist) ? last_n : n_hist;
    const int32_t *win = hist + (n_hist - w);
    int32_t *rev = scratch, *z = scratch + w;
    for (int k = 0; k < w; k++) {
        int32_t t = win[w - 1 - k];
        rev[k] = (t < 0 || t >= n_vocab || (is_breaker && is_breaker[t])) ? -1 - k : t;
    }
    /* Z-function */
    z[0] = w;
    for (int j = 1, lo = 0, hi = 0; j < w; j++) {
        int v = 0;
        if (j < hi) { v = hi - j; if (z[j - lo] < v) v = z[j - lo]; }
        while (j + v < w && rev[v] == rev[j + v]) v++;
        z[j] = v;
        if (j + v > hi) { lo = j; hi = j + v; }
    }
    if (allowed < 1) allowed = 1;
    /* Earlier position i (window index, 1..w-1) is followed by win[i]; its predecessor
     * win[i-1] sits at reversed index w-i. */
    int touched = 0;
    for (int i = 1; i < w; i++) {
        int len = z[w - i];
        if (len < allowed) continue;
        int32_t t = win[i];
        if (t < 0 || t >= n_vocab) continue;
        float e = (float)(len - allowed);
        if (e > 60.0f) e = 60.0f;   /* keeps the penalty finite */
        float pen = mult * powf(base, e);
        if (pen > tokpen[t]) { if (tokpen[t] == 0.0f) touched++; tokpen[t] = pen; }
    }
    if (!touched) return;
    for (int i = 0; i < l->n; i++) l->c[i].logit -= tokpen[l->c[i].id];
    for (int i = 1; i < w; i++) if (win[i] >= 0 && win[i] < n_vocab) tokpen[win[i]] = 0.0f;
    l->sorted = 0;
}

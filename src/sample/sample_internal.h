/* sample_internal.h: the candidate list the sampler steps work on.
 *
 * Each step narrows or reshapes a list of (token, logit) pairs. Probabilities are computed
 * only by the steps that need them (softmax is cheap next to a forward pass, but a 128k
 * vocabulary sorted on every token is not, so "sorted" records whether the list is already
 * in descending logit order). */
#ifndef HEARTH_SAMPLE_INTERNAL_H
#define HEARTH_SAMPLE_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

typedef struct smp_cand {
    int32_t id;
    float logit;
    float p;
} smp_cand;

typedef struct smp_list {
    smp_cand *c;
    int n;
    int sorted;   /* descending by logit */
} smp_list;

/* xoshiro256**: small, fast and the same on every platform, so a seed repeats a run. */
typedef struct smp_rng { uint64_t s[4]; } smp_rng;
void     smp_rng_seed(smp_rng *r, uint64_t seed);
uint64_t smp_rng_next(smp_rng *r);
double   smp_rng_uniform(smp_rng *r);   /* [0, 1) */

/* Sort descending by logit (keeps the first k when k > 0 and k < n: the rest is dropped). */
void smp_sort(smp_list *l, int k);
/* p = softmax(logit) over the list; returns the max logit. */
void smp_softmax(smp_list *l);

/* Truncation and shaping steps (sample_steps.c). */
void smp_top_k(smp_list *l, int k);
void smp_top_p(smp_list *l, float p);
void smp_min_p(smp_list *l, float p);
void smp_typical(smp_list *l, float p);
void smp_tfs(smp_list *l, float z);
void smp_top_a(smp_list *l, float a);
void smp_temperature(smp_list *l, float t);
void smp_dynatemp(smp_list *l, float t, float range, float exponent);
void smp_smoothing(smp_list *l, float factor);
void smp_xtc(smp_list *l, float threshold, float probability, smp_rng *rng);
/* Draw a token from softmax(list). */
int32_t smp_draw(smp_list *l, smp_rng *rng);
int32_t smp_argmax(const smp_list *l);

/* Penalties (sample_penalty.c). They work on the list, so they can run at any point of the
 * order; per-token scratch arrays of n_vocab entries come from the sampler and are left
 * zeroed again. */
void smp_rep_pen(smp_list *l, const int32_t *hist, int n_hist, float pen, int range, float slope,
                 float presence, float frequency, uint16_t *near, uint16_t *far);
void smp_dry(smp_list *l, const int32_t *hist, int n_hist, float mult, float base, int allowed,
             int last_n, const uint8_t *is_breaker, int n_vocab, int32_t *scratch, float *tokpen);

#endif

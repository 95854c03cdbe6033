/* gen.c: jobs, the queue, and the worker thread that owns the model context.
 *
 * One generation runs at a time (the context holds one sequence). A job goes through:
 * tokenize memory and prompt; trim the prompt's start when it does not fit, keeping memory
 * (KoboldCpp's rule); reuse the cached prefix, shifting the cache past a dropped middle
 * (so a chat that scrolls past the context does not reprocess everything); then sample
 * tokens, cutting at stop strings, until length, end of text, a stop string or abort.
 *
 * Generated text is handed to streams as "events": each event ends at a point where the
 * text is whole UTF-8 and holds no prefix of a stop string, so a stream never shows text
 * that a stop string later takes back. Usually that is one event per token. */
#include "srv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *finish_name(srv_finish f) {
    switch (f) {
    case FIN_LENGTH: return "length";
    case FIN_EOS: case FIN_STOP: case FIN_ABORT: return "stop";
    case FIN_ERROR: return "error";
    default: return NULL;
    }
}

/* ---- jobs ---- */

srv_job *job_new(void) {
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->state = JOB_QUEUED;
    j->finish = FIN_NONE;
    j->samp = hearth_sampling_default();
    j->trim_stop = 1;
    j->parse_special = 1;
    j->commit_limit = (size_t)-1;
    atomic_init(&j->cancel, 0);
    return j;
}

void job_ref(srv_job *j) {
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

void job_unref(srv_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    free(j->memory); free(j->prompt); free(j->bias_tok); free(j->bias_val);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    for (int i = 0; i < j->n_banned; i++) free(j->banned[i]);
    hearth_grammar_free(j->grammar);
    for (int i = 0; i < j->n_dry_breakers; i++) free(j->dry_breakers[i]);
    free(j->text); free(j->ev_end);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static void job_finish(srv_job *j, srv_finish f) {
    pthread_mutex_lock(&j->mu);
    if (j->finish == FIN_NONE) j->finish = f;
    j->state = JOB_DONE;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ---- tokens ---- */

int srv_tokenize(srv *s, const char *text, int add_bos, int parse_special, int32_t **out) {
    size_t len = strlen(text);
    int cap = (int)(len < 1000000 ? len : 1000000) + 8;
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)cap);
    if (!buf) { *out = NULL; return -1; }
    int n = hearth_tokenize(s->model, text, len, add_bos, parse_special, buf, cap);
    if (n > cap) {
        int32_t *nb = realloc(buf, sizeof(int32_t) * (size_t)n);
        if (!nb) { free(buf); *out = NULL; return -1; }
        buf = nb;
        n = hearth_tokenize(s->model, text, len, add_bos, parse_special, buf, n);
    }
    if (n < 0) { free(buf); *out = NULL; return -1; }
    *out = buf;
    return n;
}

/* ---- the queue ---- */

int srv_submit(srv *s, srv_job *j) {
    pthread_mutex_lock(&s->qmu);
    int busy = s->current != NULL || s->q_n > 0;
    if (s->stopping || (busy && s->q_n >= s->max_waiting)) {
        pthread_mutex_unlock(&s->qmu);
        return -1;
    }
    if (s->q_n == s->q_cap) {
        int nc = s->q_cap ? s->q_cap * 2 : 8;
        srv_job **nq = realloc(s->queue, sizeof *nq * (size_t)nc);
        if (!nq) { pthread_mutex_unlock(&s->qmu); return -1; }
        s->queue = nq; s->q_cap = nc;
    }
    job_ref(j);
    s->queue[s->q_n++] = j;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    return 0;
}

/* A waiting job whose client left gives its place back at once. */
void srv_cancel(srv *s, srv_job *j) {
    atomic_store(&j->cancel, 1);
    pthread_mutex_lock(&s->qmu);
    for (int i = 0; i < s->q_n; i++) {
        if (s->queue[i] != j) continue;
        memmove(s->queue + i, s->queue + i + 1, sizeof *s->queue * (size_t)(s->q_n - i - 1));
        s->q_n--;
        pthread_mutex_unlock(&s->qmu);
        job_finish(j, FIN_ABORT);
        job_unref(j);
        return;
    }
    pthread_mutex_unlock(&s->qmu);
}

int srv_abort(srv *s, const char *genkey) {
    int done = 0;
    pthread_mutex_lock(&s->qmu);
    srv_job *c = s->current;
    if (c && (!genkey || !*genkey || !c->genkey[0] || strcmp(genkey, c->genkey) == 0)) {
        atomic_store(&c->cancel, 1);
        done = 1;
    }
    pthread_mutex_unlock(&s->qmu);
    return done;
}

static void *worker_main(void *arg) {
    srv *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (s->q_n == 0 && !s->stopping) pthread_cond_wait(&s->qcv, &s->qmu);
        if (s->stopping) { pthread_mutex_unlock(&s->qmu); break; }
        srv_job *j = s->queue[0];
        memmove(s->queue, s->queue + 1, sizeof *s->queue * (size_t)(s->q_n - 1));
        s->q_n--;
        s->current = j;
        pthread_mutex_unlock(&s->qmu);

        if (atomic_load(&j->cancel)) job_finish(j, FIN_ABORT);
        else srv_run_job(s, j);

        pthread_mutex_lock(&s->qmu);
        s->current = NULL;
        srv_job *old = s->last_done;
        s->last_done = j;            /* the queue's reference moves here */
        s->idle_since = srv_now();
        pthread_mutex_unlock(&s->qmu);
        job_unref(old);
    }
    return NULL;
}

int srv_start_worker(srv *s) {
    return pthread_create(&s->worker, NULL, worker_main, s) == 0 ? 0 : -1;
}

void srv_stop_worker(srv *s) {
    pthread_mutex_lock(&s->qmu);
    s->stopping = 1;
    if (s->current) atomic_store(&s->current->cancel, 1);
    for (int i = 0; i < s->q_n; i++) { job_finish(s->queue[i], FIN_ABORT); job_unref(s->queue[i]); }
    s->q_n = 0;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    pthread_join(s->worker, NULL);
    job_unref(s->last_done);
    s->last_done = NULL;
}

/* ---- text, events and stop strings ---- */

static int text_append(srv_job *j, const char *p, size_t n) {
    if (j->len + n + 1 > j->cap) {
        size_t nc = j->cap ? j->cap * 2 : 256;
        while (nc < j->len + n + 1) nc *= 2;
        char *nt = realloc(j->text, nc);
        if (!nt) return -1;
        j->text = nt; j->cap = nc;
    }
    memcpy(j->text + j->len, p, n);
    j->len += n;
    j->text[j->len] = 0;
    return 0;
}

/* under j->mu */
static void commit_to(srv_job *j, size_t end) {
    if (end <= j->committed) return;
    if (j->n_ev == j->cap_ev) {
        int nc = j->cap_ev ? j->cap_ev * 2 : 64;
        size_t *ne = realloc(j->ev_end, sizeof *ne * (size_t)nc);
        if (!ne) return;
        j->ev_end = ne; j->cap_ev = nc;
    }
    j->ev_end[j->n_ev++] = end;
    j->committed = end;
    pthread_cond_broadcast(&j->cv);
}

/* After new text: returns 1 when a stop string ended the generation. */
static int text_update(srv_job *j) {
    pthread_mutex_lock(&j->mu);
    size_t best = (size_t)-1, best_len = 0;
    for (int i = 0; i < j->n_stop; i++) {
        const char *hit = strstr(j->text + j->committed, j->stop[i]);
        if (hit && (size_t)(hit - j->text) < best) { best = (size_t)(hit - j->text); best_len = strlen(j->stop[i]); }
    }
    if (best != (size_t)-1) {
        size_t end = j->trim_stop ? best : best + best_len;
        j->len = end;
        j->text[end] = 0;
        end -= utf8_incomplete_tail(j->text, end);
        commit_to(j, end);
        j->final_len = end;
        pthread_mutex_unlock(&j->mu);
        return 1;
    }
    size_t safe = j->len - utf8_incomplete_tail(j->text, j->len);
    size_t hold = 0;
    for (int i = 0; i < j->n_stop; i++) {
        size_t sl = strlen(j->stop[i]);
        for (size_t k = sl - 1; k > hold; k--)
            if (k <= safe - j->committed && memcmp(j->text + safe - k, j->stop[i], k) == 0) { hold = k; break; }
    }
    size_t end = safe - hold;
    if (end > j->commit_limit) end = j->commit_limit;   /* a banned phrase may be starting */
    commit_to(j, end);
    j->final_len = j->committed;
    pthread_mutex_unlock(&j->mu);
    return 0;
}

/* Start of the longest end of the text that begins a banned phrase (any case), or len. */
static size_t banned_prefix_start(srv_job *j) {
    size_t best = j->len;
    for (int i = 0; i < j->n_banned; i++) {
        size_t sl = strlen(j->banned[i]);
        for (size_t k = sl - 1; k > 0; k--)
            if (k <= j->len && j->len - k < best && strncasecmp(j->text + j->len - k, j->banned[i], k) == 0) { best = j->len - k; break; }
    }
    return best;
}

/* Offset of the first banned phrase (any case) in text[from, len), or -1. */
static long banned_at(srv_job *j, size_t from) {
    long best = -1;
    for (int i = 0; i < j->n_banned; i++) {
        size_t sl = strlen(j->banned[i]);
        for (size_t o = from; o + sl <= j->len; o++)
            if (strncasecmp(j->text + o, j->banned[i], sl) == 0) { if (best < 0 || (long)o < best) best = (long)o; break; }
    }
    return best;
}

static void text_flush(srv_job *j) {
    pthread_mutex_lock(&j->mu);
    if (j->finish != FIN_STOP) {
        size_t end = j->len - utf8_incomplete_tail(j->text ? j->text : "", j->len);
        commit_to(j, end);
        j->final_len = end;
    }
    pthread_mutex_unlock(&j->mu);
}

/* ---- running a job ---- */

static uint64_t random_seed(void) {
    uint64_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) { if (fread(&v, sizeof v, 1, f) != 1) v = 0; fclose(f); }
    if (!v) v = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&v;
    return v % 1000000u;   /* KoboldCpp reports seeds people can retype */
}

/* Common prefix of the cache and the new tokens; then, unless --noshift, look for the rest
 * of the cache further on: if the new prompt drops a block after the prefix and continues
 * with what followed it, shift the cache instead of recomputing. */
static int reuse_cache(srv *s, const int32_t *toks, int n) {
    const int32_t *cached = hearth_ctx_tokens(s->ctx);
    int nc = hearth_ctx_n_past(s->ctx);
    int p = 0;
    while (p < nc && p < n && cached[p] == toks[p]) p++;
    if (!s->o.noshift && p < nc && p < n) {
        for (int d = 1; p + d < nc; d++) {
            int rest = nc - p - d;
            if (rest < 16 || rest > n - p) { if (rest < 16) break; continue; }
            if (cached[p + d] != toks[p]) continue;
            if (memcmp(cached + p + d, toks + p, sizeof(int32_t) * (size_t)rest) != 0) continue;
            if (hearth_ctx_shift(s->ctx, p, d) == 0) {
                if (!s->o.quiet)
                    fprintf(stderr, "hearth: context shift: dropped %d cached tokens after the first %d, kept %d\n", d, p, rest);
                return p + rest;
            }
            break;
        }
    }
    return p;
}

static void breakers_to_tokens(srv *s, srv_job *j, int32_t **out, int *n_out) {
    *out = NULL; *n_out = 0;
    if (j->n_dry_breakers == 0) return;
    int nv = s->info->n_vocab, n = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)nv);
    if (!ids) return;
    char piece[256];
    for (int t = 0; t < nv; t++) {
        int l = hearth_token_to_piece(s->model, t, piece, sizeof piece - 1);
        if (l <= 0) continue;
        if (l > (int)sizeof piece - 1) l = (int)sizeof piece - 1;
        piece[l] = 0;
        for (int b = 0; b < j->n_dry_breakers; b++)
            if (j->dry_breakers[b][0] && strstr(piece, j->dry_breakers[b])) { ids[n++] = t; break; }
    }
    *out = ids; *n_out = n;
}

void srv_run_job(srv *s, srv_job *j) {
    pthread_mutex_lock(&j->mu);
    j->state = JOB_RUNNING;
    pthread_mutex_unlock(&j->mu);
    double t0 = srv_now();
    int n_ctx = s->n_ctx;
    if (j->max_context > 0 && j->max_context < n_ctx) n_ctx = j->max_context;
    int max_len = j->max_length;
    if (max_len < 0) max_len = 0;
    if (max_len > n_ctx - 1) max_len = n_ctx - 1;

    int32_t *mem = NULL, *prm = NULL, *toks = NULL, *brk = NULL;
    hearth_sampler *smp = NULL;
    int32_t *btok = NULL; float *bval = NULL;
    size_t *st_text = NULL; int *st_pos = NULL; int32_t *st_tok = NULL; float *lg = NULL;
    enum { BAN_CAP = 1024 };
    int ban_step[BAN_CAP]; int32_t ban_tok[BAN_CAP]; int n_ban = 0;
    srv_finish fin = FIN_LENGTH;
    int add_bos = s->info->add_bos && s->info->bos >= 0;
    int n_mem = srv_tokenize(s, j->memory ? j->memory : "", 0, j->parse_special, &mem);
    int n_prm = srv_tokenize(s, j->prompt ? j->prompt : "", 0, j->parse_special, &prm);
    if (n_mem < 0 || n_prm < 0) { snprintf(j->err, sizeof j->err, "could not tokenize the prompt"); fin = FIN_ERROR; goto done; }
    int budget = n_ctx - max_len;
    int n_bos = add_bos ? 1 : 0;
    if (n_bos + n_mem > budget) n_mem = budget - n_bos > 0 ? budget - n_bos : 0;   /* memory's start stays */
    int room = budget - n_bos - n_mem;
    int trimmed = n_prm > room ? n_prm - room : 0;
    if (trimmed && !s->o.quiet)
        fprintf(stderr, "hearth: prompt of %d tokens does not fit (%d context, %d to generate): "
                "kept memory (%d tokens) and the last %d tokens of the prompt\n",
                n_bos + n_mem + n_prm, n_ctx, max_len, n_mem, room);
    int n = n_bos + n_mem + (n_prm - trimmed);
    toks = malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (!toks) { snprintf(j->err, sizeof j->err, "out of memory"); fin = FIN_ERROR; goto done; }
    if (n_bos) toks[0] = s->info->bos;
    memcpy(toks + n_bos, mem, sizeof(int32_t) * (size_t)n_mem);
    memcpy(toks + n_bos + n_mem, prm + trimmed, sizeof(int32_t) * (size_t)(n_prm - trimmed));
    if (n == 0) {
        if (s->info->bos >= 0) toks[n++] = s->info->bos;
        else { snprintf(j->err, sizeof j->err, "the prompt is empty"); fin = FIN_ERROR; goto done; }
    }
    j->n_prompt_tokens = n;
    j->n_trimmed = trimmed;

    /* the prompt */
    int p = reuse_cache(s, toks, n);
    if (p >= n) p = n - 1;          /* the last token is evaluated again for its logits */
    j->n_reused = p;
    hearth_ctx_truncate(s->ctx, p);
    char err[256];
    int ub = 512, logit_row = 0;
    while (p < n) {
        if (atomic_load(&j->cancel)) { fin = FIN_ABORT; goto done; }
        int k = n - p < ub ? n - p : ub;
        if (hearth_eval(s->ctx, toks + p, k, 0, err, sizeof err) != 0) {
            snprintf(j->err, sizeof j->err, "%s", err); fin = FIN_ERROR; goto done;
        }
        p += k;
        logit_row = k - 1;   /* only the last row of the last call is kept */
    }
    double t1 = srv_now();
    j->t_process = t1 - t0;

    /* the sampler */
    hearth_sampling sp = j->samp;
    int nb = j->n_bias + (j->ban_eos ? s->n_eog : 0);
    if (nb > 0) {
        btok = malloc(sizeof(int32_t) * (size_t)nb);
        bval = malloc(sizeof(float) * (size_t)nb);
        if (!btok || !bval) { snprintf(j->err, sizeof j->err, "out of memory"); fin = FIN_ERROR; goto done; }
        if (j->n_bias) { memcpy(btok, j->bias_tok, sizeof(int32_t) * (size_t)j->n_bias); memcpy(bval, j->bias_val, sizeof(float) * (size_t)j->n_bias); }
        for (int i = 0; j->ban_eos && i < s->n_eog; i++) { btok[j->n_bias + i] = s->eog[i]; bval[j->n_bias + i] = -INFINITY; }
        sp.bias_tok = btok; sp.bias_val = bval; sp.n_bias = nb;
    }
    int n_brk = 0;
    breakers_to_tokens(s, j, &brk, &n_brk);
    sp.dry_breakers = brk; sp.n_dry_breakers = n_brk;
    j->seed_used = j->seed_given ? sp.seed : random_seed();
    sp.seed = j->seed_used;
    smp = hearth_sampler_new(&sp, s->info->n_vocab);
    if (!smp) { snprintf(j->err, sizeof j->err, "out of memory"); fin = FIN_ERROR; goto done; }

    /* Phrase bans (KoboldCpp's banned_tokens): when the text comes to hold a banned phrase,
     * go back to the step whose token began it, ban that token at that step, and sample
     * again. Per step: the text length and cache position before it, and its token. */
    if (j->grammar && j->n_banned && !s->o.quiet)
        fprintf(stderr, "hearth: banned phrases are not enforced together with a grammar\n");
    if (j->grammar || j->n_banned) {
        lg = malloc(sizeof(float) * (size_t)s->info->n_vocab);
        if (!lg) { snprintf(j->err, sizeof j->err, "out of memory"); fin = FIN_ERROR; goto done; }
    }
    int bans = j->n_banned && !j->grammar;
    if (bans) {
        st_text = malloc(sizeof(size_t) * (size_t)(max_len + 1));
        st_pos = malloc(sizeof(int) * (size_t)(max_len + 1));
        st_tok = malloc(sizeof(int32_t) * (size_t)(max_len + 1));
        if (!st_text || !st_pos || !st_tok) { snprintf(j->err, sizeof j->err, "out of memory"); fin = FIN_ERROR; goto done; }
    }
    int rewind_floor = 0, rewinds = 0;
    char piece[512];
    for (int i = 0; i < max_len; i++) {
        if (atomic_load(&j->cancel)) { fin = FIN_ABORT; break; }
        const float *logits = hearth_ctx_logits(s->ctx, logit_row);
        if (!logits) { snprintf(j->err, sizeof j->err, "no logits from the model"); fin = FIN_ERROR; break; }
        if (j->grammar) {
            memcpy(lg, logits, sizeof(float) * (size_t)s->info->n_vocab);
            logits = lg;
            if (hearth_grammar_apply(j->grammar, lg) == 0) { fin = FIN_STOP; break; }   /* nothing fits */
        }
        if (bans) {
            st_text[i] = j->len;
            st_pos[i] = hearth_ctx_n_past(s->ctx);
            int any = 0;
            for (int b = 0; b < n_ban; b++) any |= ban_step[b] == i;
            if (any) {
                memcpy(lg, logits, sizeof(float) * (size_t)s->info->n_vocab);
                for (int b = 0; b < n_ban; b++) if (ban_step[b] == i) lg[ban_tok[b]] = -INFINITY;
                logits = lg;
            }
        }
        int32_t tok = hearth_sampler_sample(smp, logits, hearth_ctx_tokens(s->ctx), hearth_ctx_n_past(s->ctx));
        if (tok < 0) { snprintf(j->err, sizeof j->err, "sampling failed"); fin = FIN_ERROR; break; }
        if (j->grammar && hearth_grammar_accept(j->grammar, tok) != 0) {
            snprintf(j->err, sizeof j->err, "the grammar refused token %d", (int)tok); fin = FIN_ERROR; break;
        }
        if (hearth_token_is_eog(s->model, tok) && !j->ban_eos) { fin = FIN_EOS; break; }
        j->n_gen_tokens++;
        int l = hearth_token_to_piece(s->model, tok, piece, sizeof piece);
        if (l > (int)sizeof piece) l = (int)sizeof piece;
        if (l > 0) {
            pthread_mutex_lock(&j->mu);
            int r = text_append(j, piece, (size_t)l);
            pthread_mutex_unlock(&j->mu);
            if (r) { snprintf(j->err, sizeof j->err, "out of memory"); fin = FIN_ERROR; break; }
            if (bans) {
                st_tok[i] = tok;
                long at = banned_at(j, j->committed);
                int i0 = i;
                while (at >= 0 && i0 > rewind_floor && st_text[i0] > (size_t)at) i0--;
                if (at >= 0 && st_text[i0] <= (size_t)at && st_text[i0] >= j->committed && rewinds < 8 * max_len + 64
                    && n_ban < BAN_CAP) {
                    /* forget later bans, ban this step's token, and recompute the step's logits */
                    int keep = 0;
                    for (int b = 0; b < n_ban; b++)
                        if (ban_step[b] <= i0) { ban_step[keep] = ban_step[b]; ban_tok[keep] = ban_tok[b]; keep++; }
                    n_ban = keep;
                    ban_step[n_ban] = i0; ban_tok[n_ban] = st_tok[i0]; n_ban++;
                    rewinds++;
                    pthread_mutex_lock(&j->mu);
                    j->len = st_text[i0];
                    j->text[j->len] = 0;
                    pthread_mutex_unlock(&j->mu);
                    int32_t prev = hearth_ctx_tokens(s->ctx)[st_pos[i0] - 1];
                    hearth_ctx_truncate(s->ctx, st_pos[i0] - 1);
                    if (hearth_eval(s->ctx, &prev, 1, 0, err, sizeof err) != 0) {
                        snprintf(j->err, sizeof j->err, "%s", err); fin = FIN_ERROR; break;
                    }
                    logit_row = 0;
                    j->n_gen_tokens = i0;
                    i = i0 - 1;
                    continue;
                }
            }
            if (bans) {
                /* hold back from the start of the token where a banned phrase may be beginning */
                size_t b = banned_prefix_start(j);
                int i0 = i;
                while (i0 > rewind_floor && st_text[i0] > b) i0--;
                pthread_mutex_lock(&j->mu);
                j->commit_limit = b < j->len ? (st_text[i0] < b ? st_text[i0] : b) : (size_t)-1;
                pthread_mutex_unlock(&j->mu);
            }
            if (text_update(j)) { fin = FIN_STOP; break; }
        }
        if (j->grammar && hearth_grammar_done(j->grammar)) { fin = FIN_STOP; break; }
        if (i == max_len - 1) { fin = FIN_LENGTH; break; }
        if (hearth_ctx_n_past(s->ctx) >= s->n_ctx) {
            int keep = n_bos + n_mem;
            int discard = (hearth_ctx_n_past(s->ctx) - keep) / 2;
            if (s->o.noshift || discard <= 0 || hearth_ctx_shift(s->ctx, keep, discard) != 0) { fin = FIN_LENGTH; break; }
            rewind_floor = i + 1;   /* positions before a shift are gone: no going back past it */
        }
        if (hearth_eval(s->ctx, &tok, 1, 0, err, sizeof err) != 0) {
            snprintf(j->err, sizeof j->err, "%s", err); fin = FIN_ERROR; break;
        }
        logit_row = 0;
        if (s->o.token_delay_ms > 0) usleep((useconds_t)s->o.token_delay_ms * 1000);
    }
    if (max_len == 0) fin = FIN_LENGTH;
    j->t_gen = srv_now() - t1;

done:
    pthread_mutex_lock(&j->mu);
    j->finish = fin;
    pthread_mutex_unlock(&j->mu);
    text_flush(j);
    if (fin == FIN_ERROR && !s->o.quiet) fprintf(stderr, "hearth: generation failed: %s\n", j->err);
    pthread_mutex_lock(&s->qmu);
    s->perf.last_process = j->t_process;
    s->perf.last_eval = j->t_gen;
    s->perf.last_token_count = j->n_gen_tokens;
    s->perf.last_prompt_tokens = j->n_prompt_tokens;
    s->perf.last_reused = j->n_reused;
    s->perf.last_trimmed = j->n_trimmed;
    s->perf.last_seed = j->seed_used;
    s->perf.total_gens++;
    s->perf.stop_reason = fin == FIN_ERROR ? -1 : fin == FIN_ABORT ? FIN_STOP : (int)fin;
    pthread_mutex_unlock(&s->qmu);
    if (!s->o.quiet && fin != FIN_ERROR)
        fprintf(stderr, "hearth: %d prompt tokens (%d reused) in %.2f s, %d generated in %.2f s (%.1f T/s), %s\n",
                j->n_prompt_tokens, j->n_reused, j->t_process, j->n_gen_tokens, j->t_gen,
                j->t_gen > 0 ? j->n_gen_tokens / j->t_gen : 0.0,
                fin == FIN_ABORT ? "aborted" : fin == FIN_EOS ? "end of text" : fin == FIN_STOP ? "stop string" : "length");
    hearth_sampler_free(smp);
    free(mem); free(prm); free(toks); free(brk); free(btok); free(bval);
    free(st_text); free(st_pos); free(st_tok); free(lg);
    job_finish(j, fin);
}

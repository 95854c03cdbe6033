/* Persistent workers that spin briefly before sleeping.
 *
 * A decode step is ~150 small operations (matmuls of a few hundred microseconds, norms,
 * attention), each one pool_run. Waking sleeping workers through a futex costs tens of
 * microseconds per operation, so after finishing its share a worker watches the
 * generation counter for a while (POOL_SPIN pauses, ~100 us) and only then sleeps on the
 * condition variable; the caller likewise spins for the last worker before waiting. The
 * mutex is only taken to publish a generation and around the sleeps, and a wakeup syscall
 * is made only when some worker is actually asleep. */
#include "util/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define POOL_SPIN 2000

typedef struct worker { pool *p; int id; pthread_t th; } worker;

struct pool {
    int n;                 /* threads including the caller */
    worker *w;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_uint gen;       /* bumps once per pool_run: workers wait for a new generation */
    atomic_int quit;
    atomic_int busy;       /* workers still draining this generation */
    int sleeping;          /* workers waiting on go (under mu) */
    int main_sleeping;     /* the caller waiting on done (under mu) */
    pool_fn fn; void *arg; int n_tasks;
    atomic_int next;
};

/* Tasks are taken from a shared counter so uneven tasks balance themselves. */
static void drain(pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) break;
        p->fn(p->arg, t, thread);
    }
}

static void *loop(void *a) {
    worker *w = a;
    pool *p = w->p;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; i < POOL_SPIN && g == seen && !atomic_load_explicit(&p->quit, memory_order_relaxed); i++) {
            cpu_relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            p->sleeping++;
            while (!atomic_load(&p->quit) && (g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->go, &p->mu);
            p->sleeping--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        drain(p, w->id);
        if (atomic_fetch_sub_explicit(&p->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            if (p->main_sleeping) pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

int pool_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

pool *pool_new(int n) {
    if (n <= 0) n = pool_default_threads();
    pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->quit, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->next, 0);
    p->w = calloc((size_t)n, sizeof *p->w);
    if (!p->w) { free(p); return NULL; }
    for (int i = 1; i < n; i++) {
        p->w[i].p = p;
        p->w[i].id = i;
        if (pthread_create(&p->w[i].th, NULL, loop, &p->w[i]) != 0) { p->n = i; break; }
    }
    return p;
}

void pool_free(pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->w[i].th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->w);
    free(p);
}

int pool_threads(const pool *p) { return p->n; }

void pool_run(pool *p, int n_tasks, pool_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    if (p->n == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    /* the job is written before the generation is published (release); workers read it
     * after seeing the new generation (acquire) */
    p->fn = fn; p->arg = arg; p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->busy, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (p->sleeping) pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    for (int i = 0; i < POOL_SPIN && atomic_load_explicit(&p->busy, memory_order_acquire) > 0; i++) cpu_relax();
    if (atomic_load_explicit(&p->busy, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        p->main_sleeping = 1;
        while (atomic_load(&p->busy) > 0) pthread_cond_wait(&p->done, &p->mu);
        p->main_sleeping = 0;
        pthread_mutex_unlock(&p->mu);
    }
}

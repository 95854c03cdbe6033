/* A simple thread pool: pool_run splits n tasks over the workers and returns when all are
 * done. The calling thread works too, so a pool of one thread has no workers. */
#ifndef HEARTH_POOL_H
#define HEARTH_POOL_H

typedef struct pool pool;
/* fn(arg, task, thread) for task in [0, n); thread in [0, pool_threads). */
typedef void (*pool_fn)(void *arg, int task, int thread);

pool *pool_new(int n_threads);
void pool_free(pool *p);
int pool_threads(const pool *p);
void pool_run(pool *p, int n_tasks, pool_fn fn, void *arg);
/* Number of online CPUs. */
int pool_default_threads(void);

#endif

/* A decode step as a CUDA graph: the ~450 launches of a token are captured once and
 * replayed with one launch. What changes from token to token is the position, so while
 * pos mode is on the kernels that need it (RoPE, the cache store, decode attention) read
 * it from a device int: gpu_set_pos writes it before a replay, or the step's first kernel
 * (k_step_in) brings it and the input from pinned, mapped host memory (gpu_pos_host,
 * gpu_host_buf) and its last (k_step_out) writes the logits there, so a replay is one
 * launch and one wait (HEARTH_STEP_IO picks the way, placement.c). A graph holds raw
 * pointers: one captured before a scratch buffer was reallocated is dropped.
 * Choices that depend on the depth make a graph suit a range of cells; the context keeps
 * GRAPH_KEEP of them. The kernels of a step overlap each other's launch and tail
 * (programmatic dependent launch, g->pdl). */
#include "backend/cuda/common.cuh"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

__global__ void k_set_int(int *p, int v) { *p = v; }

/* the device int pos mode reads, made on first use */
static int pos_dev(gpu_ctx *g) {
    if (!g->dpos) CU(g, cudaMalloc(&g->dpos, sizeof(int)));
    return 0;
}

extern "C" int gpu_set_pos(gpu_ctx *g, int pos) {
    if (pos_dev(g)) return -1;
    k_set_int<<<1, 1, 0, g->stream>>>(g->dpos, pos);
    CU_LAUNCHED(g);
    return 0;
}

extern "C" int *gpu_pos_host(gpu_ctx *g) {
    if (pos_dev(g)) return NULL;
    if (!g->hpos && cudaHostAlloc(&g->hpos, sizeof(int), cudaHostAllocMapped) != cudaSuccess) {
        cuda_fail(g, "cudaHostAlloc(position)", cudaGetLastError());
        g->hpos = NULL;
        return NULL;
    }
    return g->hpos;
}

extern "C" int gpu_pos_in(gpu_ctx *g) {
    if (!g->hpos || !g->dpos) return cuda_fail_msg(g, "the position's host copy was not made (gpu_pos_host)");
    CU(g, cudaMemcpyAsync(g->dpos, g->hpos, sizeof(int), cudaMemcpyHostToDevice, g->stream));
    return 0;
}

extern "C" void *gpu_host_buf(gpu_ctx *g, int slot, size_t bytes) {
    if (slot < 0 || slot > 1) { cuda_fail_msg(g, "no pinned host buffer %d", slot); return NULL; }
    if (g->host[slot]) {
        /* made once, with the context (a graph holds its pointer) */
        if (bytes <= g->host_size[slot]) return g->host[slot];
        cuda_fail_msg(g, "pinned host buffer %d holds %zu bytes, not %zu", slot, g->host_size[slot], bytes);
        return NULL;
    }
    /* mapped: gpu_step_in / gpu_step_out's kernels read and write it across the bus */
    cudaError_t e = cudaHostAlloc(&g->host[slot], bytes, cudaHostAllocMapped);
    if (e != cudaSuccess) {
        g->host[slot] = NULL;
        cuda_fail_msg(g, "cannot allocate %.1f KiB of pinned host memory: %s", bytes / 1024.0, cudaGetErrorString(e));
        cudaGetLastError();
        return NULL;
    }
    g->host_size[slot] = bytes;
    return g->host[slot];
}

/* the step's input from mapped host memory: x and the position; the first kernel of a step,
 * launched plainly (the kernel after it starts when it ends) */
__global__ void k_step_in(const float *__restrict__ hx, const int *__restrict__ hpos, float *dx, int *dpos, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i == 0) *dpos = *hpos;
    for (int j = i; j < n; j += gridDim.x * blockDim.x) dx[j] = hx[j];
}

/* the logits to mapped host memory: the last kernel of a step */
__global__ void k_step_out(const float *__restrict__ y, float *hy, int n) {
    pdl_wait();
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) hy[j] = y[j];
}

static int host_dev_ptr(gpu_ctx *g, const void *h, void **d) {
    CU(g, cudaHostGetDevicePointer(d, (void *)h, 0));
    return 0;
}

extern "C" int gpu_step_in(gpu_ctx *g, float *dx, const float *hx, int n) {
    void *dhx = NULL, *dhp = NULL;
    if (!g->hpos || !g->dpos) return cuda_fail_msg(g, "the position's host copy was not made (gpu_pos_host)");
    if (host_dev_ptr(g, hx, &dhx) || host_dev_ptr(g, g->hpos, &dhp)) return -1;
    k_step_in<<<cuda_blocks((size_t)n, 1024) < 4 ? cuda_blocks((size_t)n, 1024) : 4, 1024, 0, g->stream>>>(
        (const float *)dhx, (const int *)dhp, dx, g->dpos, n);
    CU_LAUNCHED(g);
    return 0;
}

extern "C" int gpu_step_out(gpu_ctx *g, float *hy, const float *y, int n) {
    void *dhy = NULL;
    if (host_dev_ptr(g, hy, &dhy)) return -1;
    const int blocks = cuda_blocks((size_t)n, 1024);
    CU(g, cuda_launch(g, k_step_out, dim3(blocks < 32 ? blocks : 32), dim3(1024), 0, y, (float *)dhy, n));
    return 0;
}

extern "C" void gpu_pos_mode(gpu_ctx *g, int on, int cap_cells) {
    static int no_pdl = -1;
    if (no_pdl < 0) no_pdl = getenv("HEARTH_NO_PDL") != NULL;
    g->pos_on = on && g->dpos;
    g->pdl = g->pos_on && !no_pdl;
    g->cap_cells = cap_cells;
    g->kv_stored = 0;
}

extern "C" int gpu_graph_ready(const gpu_ctx *g) {
    return g->graph_cur >= 0 && g->graphs[g->graph_cur].exec && g->graphs[g->graph_cur].gen == g->scr_gen;
}

static void graph_free(gpu_ctx *g, int i) {
    if (g->graphs[i].exec) cudaGraphExecDestroy(g->graphs[i].exec);
    g->graphs[i].exec = NULL;
    if (g->graph_cur == i) g->graph_cur = -1;
}

extern "C" int gpu_graph_pick(gpu_ctx *g, int n_cells) {
    int found = -1;
    for (int i = 0; i < GRAPH_KEEP; i++) {
        if (!g->graphs[i].exec) continue;
        /* captured before a scratch buffer moved: it holds the old pointers */
        if (g->graphs[i].gen != g->scr_gen) { graph_free(g, i); continue; }
        if (found < 0 && n_cells >= g->graphs[i].lo && n_cells <= g->graphs[i].hi) found = i;
    }
    g->graph_cur = found;
    if (found >= 0) g->graphs[found].used = ++g->graph_clock;
    return found >= 0;
}

void cuda_graph_cells(gpu_ctx *g, int lo, int hi) {
    if (g->graph_lo < lo) g->graph_lo = lo;
    if (g->graph_hi > hi) g->graph_hi = hi;
}

extern "C" void gpu_graph_drop(gpu_ctx *g) {
    for (int i = 0; i < GRAPH_KEEP; i++) graph_free(g, i);
}

extern "C" int gpu_graph_begin(gpu_ctx *g) {
    /* an empty slot, else the least recently used one (HEARTH_GRAPH_KEEP=1: one graph, the
     * way before it kept several; a measuring aid) */
    static int keep = -1;
    if (keep < 0) {
        const char *e = getenv("HEARTH_GRAPH_KEEP");
        keep = e && atoi(e) >= 1 && atoi(e) < GRAPH_KEEP ? atoi(e) : GRAPH_KEEP;
    }
    int slot = 0;
    for (int i = 0; i < keep; i++) {
        if (!g->graphs[i].exec) { slot = i; break; }
        if (g->graphs[i].used < g->graphs[slot].used) slot = i;
    }
    graph_free(g, slot);
    g->graph_cur = slot;
    g->graph_lo = 0;
    g->graph_hi = INT_MAX;
    g->ad_probe_i = 0;
    CU(g, cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal));
    return 0;
}

extern "C" int gpu_graph_end(gpu_ctx *g, int ok) {
    cudaGraph_t gr = NULL;
    cudaGraphExec_t ex = NULL;
    cudaError_t e = cudaStreamEndCapture(g->stream, &gr);
    if (ok && e == cudaSuccess) e = cudaGraphInstantiate(&ex, gr, 0);
    if (gr) cudaGraphDestroy(gr);
    const int slot = g->graph_cur;
    if (!ok || e != cudaSuccess || slot < 0) {
        cudaGetLastError();
        if (ex) cudaGraphExecDestroy(ex);
        g->graph_cur = -1;
        if (ok && e == cudaSuccess) return cuda_fail_msg(g, "no graph slot was chosen before the capture");
        return ok ? cuda_fail(g, "capturing a decode step", e) : -1;
    }
    g->graphs[slot].exec = ex;
    g->graphs[slot].lo = g->graph_lo;
    g->graphs[slot].hi = g->graph_hi;
    g->graphs[slot].gen = g->scr_gen;
    g->graphs[slot].used = ++g->graph_clock;
    g->graph_captures++;
    return 0;
}

/* HEARTH_GRAPH_TIME=N (measuring): at the 32nd replay, N more back to back between two
 * events, and the mean time of one on stderr: the card's time for a step without the host's
 * part (the same position each time: the same cache cell is written again) */
static int graph_time(gpu_ctx *g) {
    static int n = -1, seen;
    if (n < 0) { const char *e = getenv("HEARTH_GRAPH_TIME"); n = e ? atoi(e) : 0; }
    if (n <= 0 || ++seen != 32) return 0;
    cudaEvent_t a, b;
    CU(g, cudaEventCreate(&a));
    CU(g, cudaEventCreate(&b));
    CU(g, cudaEventRecord(a, g->stream));
    for (int i = 0; i < n; i++) CU(g, cudaGraphLaunch(g->graphs[g->graph_cur].exec, g->stream));
    CU(g, cudaEventRecord(b, g->stream));
    CU(g, cudaEventSynchronize(b));
    float ms = 0.0f;
    CU(g, cudaEventElapsedTime(&ms, a, b));
    fprintf(stderr, "graph time: %.1f us a step (%d replays)\n", 1000.0f * ms / n, n);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return 0;
}

extern "C" int gpu_graph_launch(gpu_ctx *g) {
    if (!gpu_graph_ready(g)) return cuda_fail_msg(g, "no captured decode step to replay");
    CU(g, cudaGraphLaunch(g->graphs[g->graph_cur].exec, g->stream));
    return graph_time(g);
}

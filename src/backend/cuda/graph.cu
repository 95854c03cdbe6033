/* A decode step as a CUDA graph: the ~450 launches of a token are captured once and
 * replayed with one launch. What changes from token to token is the position, so while
 * pos mode is on the kernels that need it (RoPE, the cache store, decode attention) read
 * it from a device int that gpu_set_pos writes before each replay. A graph holds raw
 * pointers: one captured before a scratch buffer was reallocated is dropped. The kernels
 * of a step overlap each other's launch and tail (programmatic dependent launch, g->pdl). */
#include "backend/cuda/common.cuh"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

__global__ void k_set_int(int *p, int v) { *p = v; }

extern "C" int gpu_set_pos(gpu_ctx *g, int pos) {
    if (!g->dpos) CU(g, cudaMalloc(&g->dpos, sizeof(int)));
    k_set_int<<<1, 1, 0, g->stream>>>(g->dpos, pos);
    CU_LAUNCHED(g);
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

extern "C" int gpu_graph_ready(const gpu_ctx *g) { return g->graph && g->graph_gen == g->scr_gen; }

extern "C" int gpu_graph_fits(const gpu_ctx *g, int n_cells) { return n_cells >= g->graph_lo && n_cells <= g->graph_hi; }

void cuda_graph_cells(gpu_ctx *g, int lo, int hi) {
    if (g->graph_lo < lo) g->graph_lo = lo;
    if (g->graph_hi > hi) g->graph_hi = hi;
}

extern "C" void gpu_graph_drop(gpu_ctx *g) {
    if (g->graph) cudaGraphExecDestroy(g->graph);
    g->graph = NULL;
}

extern "C" int gpu_graph_begin(gpu_ctx *g) {
    gpu_graph_drop(g);
    g->graph_lo = 0;
    g->graph_hi = INT_MAX;
    g->ad_probe_i = 0;
    CU(g, cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal));
    return 0;
}

extern "C" int gpu_graph_end(gpu_ctx *g, int ok) {
    cudaGraph_t gr = NULL;
    cudaError_t e = cudaStreamEndCapture(g->stream, &gr);
    if (ok && e == cudaSuccess) e = cudaGraphInstantiate(&g->graph, gr, 0);
    if (gr) cudaGraphDestroy(gr);
    if (!ok || e != cudaSuccess) {
        cudaGetLastError();
        g->graph = NULL;
        return ok ? cuda_fail(g, "capturing a decode step", e) : -1;
    }
    g->graph_gen = g->scr_gen;
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
    for (int i = 0; i < n; i++) CU(g, cudaGraphLaunch(g->graph, g->stream));
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
    CU(g, cudaGraphLaunch(g->graph, g->stream));
    return graph_time(g);
}

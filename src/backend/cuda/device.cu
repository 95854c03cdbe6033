/* Cards, device memory, streams and the error messages every other CUDA file uses. */
#include "backend/cuda/common.cuh"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int g_count = -1;          /* devices found (the backend registry's one piece of state) */
static int g_virtual;             /* HEARTH_GPU_VIRTUAL: slots that all run on card 0 (tests) */
static char g_reason[256];

static void probe(void) {
    if (g_count >= 0) return;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(g_reason, sizeof g_reason, "no usable CUDA device (%s)", cudaGetErrorString(e));
        cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        g_count = 0;
        return;
    }
    if (n == 0) snprintf(g_reason, sizeof g_reason, "no CUDA device found");
    g_count = n;
    /* test-only: HEARTH_GPU_VIRTUAL=k shows k device slots, every one on physical card 0,
     * so the multi-card code path runs on one GPU */
    const char *v = getenv("HEARTH_GPU_VIRTUAL");
    if (n > 0 && v && *v) {
        int k = atoi(v);
        if (k >= 1 && k <= 16) { g_virtual = 1; g_count = k; }
    }
}

int gpu_phys(int dev) { return g_virtual ? 0 : dev; }

extern "C" int gpu_device_count(void) { probe(); return g_count; }

extern "C" const char *gpu_unavailable_reason(void) {
    probe();
    return g_count > 0 ? "" : g_reason;
}

extern "C" int gpu_device_info(int dev, char *name, size_t n, size_t *free_b, size_t *total_b) {
    if (dev < 0 || dev >= gpu_device_count()) return -1;
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, gpu_phys(dev)) != cudaSuccess) { cudaGetLastError(); return -1; }
    if (name && n) snprintf(name, n, "%s", p.name);
    size_t f = 0, t = 0;
    if (cudaSetDevice(gpu_phys(dev)) != cudaSuccess || cudaMemGetInfo(&f, &t) != cudaSuccess) { cudaGetLastError(); return -1; }
    if (free_b) *free_b = f;
    if (total_b) *total_b = t;
    return 0;
}

static double mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

extern "C" void *gpu_malloc(int dev, size_t bytes, const char *what, char *err, size_t errlen) {
    void *p = NULL;
    if (dev < 0 || dev >= gpu_device_count()) { snprintf(err, errlen, "CUDA%d does not exist", dev); return NULL; }
    if (cudaSetDevice(gpu_phys(dev)) != cudaSuccess) { cudaGetLastError(); snprintf(err, errlen, "cannot select CUDA%d", dev); return NULL; }
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t f = 0, t = 0;
        cudaMemGetInfo(&f, &t);
        cudaGetLastError();
        snprintf(err, errlen, "CUDA%d: cannot allocate %s (%.2f MiB, %.2f MiB free): %s", dev, what, mib(bytes), mib(f),
                 cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

extern "C" void gpu_free(int dev, void *p) {
    if (!p) return;
    cudaSetDevice(gpu_phys(dev));
    cudaFree(p);
    cudaGetLastError();
}

extern "C" int gpu_upload(int dev, void *dst, const void *src, size_t bytes, char *err, size_t errlen) {
    cudaError_t e = cudaSetDevice(gpu_phys(dev));
    if (e == cudaSuccess) e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(err, errlen, "CUDA%d: copying %.2f MiB to the card failed: %s", dev, mib(bytes), cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

int cuda_fail(gpu_ctx *g, const char *what, cudaError_t e) {
    snprintf(g->err, sizeof g->err, "CUDA%d: %s (in %s)", g->dev, cudaGetErrorString(e), what);
    cudaGetLastError();
    return -1;
}

int cuda_fail_msg(gpu_ctx *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(g->err, sizeof g->err, "CUDA%d: ", g->dev);
    vsnprintf(g->err + n, sizeof g->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

extern "C" gpu_ctx *gpu_ctx_new(int dev, char *err, size_t errlen) {
    if (dev < 0 || dev >= gpu_device_count()) { snprintf(err, errlen, "CUDA%d does not exist", dev); return NULL; }
    gpu_ctx *g = (gpu_ctx *)calloc(1, sizeof *g);
    if (!g) { snprintf(err, errlen, "out of memory"); return NULL; }
    g->dev = dev;
    g->phys = gpu_phys(dev);
    g->graph_cur = -1;
    cudaError_t e = cudaSetDevice(g->phys);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(err, errlen, "CUDA%d: cannot create a stream: %s", dev, cudaGetErrorString(e));
        free(g);
        return NULL;
    }
    e = cudaEventCreateWithFlags(&g->done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(err, errlen, "CUDA%d: cannot create an event: %s", dev, cudaGetErrorString(e));
        cudaStreamDestroy(g->stream);
        free(g);
        return NULL;
    }
    cudaDeviceGetAttribute(&g->sm_count, cudaDevAttrMultiProcessorCount, g->phys);
    if (cublasCreate(&g->blas) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "CUDA%d: cannot start cuBLAS", dev);
        cudaEventDestroy(g->done);
        cudaStreamDestroy(g->stream);
        free(g);
        return NULL;
    }
    cublasSetStream(g->blas, g->stream);
    /* without them the q, k, v product leaves the block-type cache store to its own kernel */
    if (cudaMalloc(&g->kv_cnt, sizeof(int) * KV_CNT_MAX) != cudaSuccess ||
        cudaMemsetAsync(g->kv_cnt, 0, sizeof(int) * KV_CNT_MAX, g->stream) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(g->kv_cnt);
        g->kv_cnt = NULL;
    }
    return g;
}

extern "C" void gpu_ctx_free(gpu_ctx *g) {
    if (!g) return;
    cudaSetDevice(g->phys);
    cudaStreamSynchronize(g->stream);
    cuda_ad_probe_dump(g);
    for (int i = 0; i < SCR_COUNT; i++) cudaFree(g->scr[i]);
    if (g->graph_captures && (getenv("HEARTH_GRAPH_TIME") || getenv("HEARTH_GRAPH_COUNT")))
        fprintf(stderr, "CUDA%d: %u decode steps captured as graphs\n", g->dev, g->graph_captures);
    gpu_graph_drop(g);
    for (int i = 0; i < 2; i++) cudaFreeHost(g->host[i]);
    cudaFreeHost(g->hpos);
    cudaFree(g->dpos);
    cudaFree(g->ad_cnt);
    cudaFree(g->kv_cnt);
    cublasDestroy(g->blas);
    cudaEventDestroy(g->done);
    cudaStreamDestroy(g->stream);
    cudaGetLastError();
    free(g);
}

extern "C" int gpu_ctx_device(const gpu_ctx *g) { return g->dev; }

extern "C" int gpu_ctx_activate(gpu_ctx *g) {
    CU(g, cudaSetDevice(g->phys));
    return 0;
}

extern "C" int gpu_peer_enable(int a, int b) {
    if (a < 0 || b < 0 || a >= gpu_device_count() || b >= gpu_device_count()) return 0;
    int pa = gpu_phys(a), pb = gpu_phys(b);
    /* test-only: HEARTH_GPU_NO_P2P=1 sends activations through the host */
    const char *no = getenv("HEARTH_GPU_NO_P2P");
    if (no && *no == '1') return 0;
    if (pa == pb) return 1;
    int ab = 0, ba = 0;
    if (cudaDeviceCanAccessPeer(&ab, pa, pb) != cudaSuccess || cudaDeviceCanAccessPeer(&ba, pb, pa) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    if (!ab || !ba) return 0;
    const int from[2] = { pa, pb }, to[2] = { pb, pa };
    for (int i = 0; i < 2; i++) {
        cudaError_t e = cudaSetDevice(from[i]);
        if (e == cudaSuccess) e = cudaDeviceEnablePeerAccess(to[i], 0);
        if (e == cudaErrorPeerAccessAlreadyEnabled) { cudaGetLastError(); continue; }
        if (e != cudaSuccess) { cudaGetLastError(); return 0; }
    }
    return 1;
}

extern "C" int gpu_copy_peer(gpu_ctx *dst_g, void *dst, gpu_ctx *src_g, const void *src, size_t bytes, int direct,
                             void *host_tmp) {
    if (direct) {
        /* dst's stream waits for everything queued on src's so far, then copies */
        if (cudaSetDevice(src_g->phys) != cudaSuccess) return cuda_fail(dst_g, "cudaSetDevice(source card)", cudaGetLastError());
        CU(dst_g, cudaEventRecord(src_g->done, src_g->stream));
        CU(dst_g, cudaSetDevice(dst_g->phys));
        CU(dst_g, cudaStreamWaitEvent(dst_g->stream, src_g->done, 0));
        if (src_g->phys == dst_g->phys)
            CU(dst_g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, dst_g->stream));
        else
            CU(dst_g, cudaMemcpyPeerAsync(dst, dst_g->phys, src, src_g->phys, bytes, dst_g->stream));
        return 0;
    }
    /* through the host */
    if (cudaSetDevice(src_g->phys) != cudaSuccess) return cuda_fail(dst_g, "cudaSetDevice(source card)", cudaGetLastError());
    CU(dst_g, cudaMemcpyAsync(host_tmp, src, bytes, cudaMemcpyDeviceToHost, src_g->stream));
    CU(dst_g, cudaStreamSynchronize(src_g->stream));
    CU(dst_g, cudaSetDevice(dst_g->phys));
    CU(dst_g, cudaMemcpyAsync(dst, host_tmp, bytes, cudaMemcpyHostToDevice, dst_g->stream));
    CU(dst_g, cudaStreamSynchronize(dst_g->stream));
    return 0;
}
extern "C" const char *gpu_ctx_error(const gpu_ctx *g) { return g->err; }

void *cuda_scratch(gpu_ctx *g, int slot, size_t bytes) {
    if (bytes <= g->scr_size[slot] && g->scr[slot]) return g->scr[slot];
    /* grow by at least a quarter so a slowly rising size does not reallocate every call */
    size_t want = bytes + bytes / 4;
    if (g->scr[slot]) {
        cudaStreamSynchronize(g->stream);
        cudaFree(g->scr[slot]);
        g->scr[slot] = NULL;
        g->scr_size[slot] = 0;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        cudaGetLastError();
        e = cudaMalloc(&p, bytes);
        want = bytes;
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        cuda_fail_msg(g, "cannot allocate %.2f MiB of scratch: %s", mib(bytes), cudaGetErrorString(e));
        return NULL;
    }
    g->scr[slot] = p;
    g->scr_size[slot] = want;
    g->scr_gen++;
    return p;
}

extern "C" int gpu_to_device(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    CU(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g->stream));
    return 0;
}

extern "C" int gpu_to_host(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    CU(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g->stream));
    CU(g, cudaStreamSynchronize(g->stream));
    return 0;
}

extern "C" int gpu_to_host_async(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    CU(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g->stream));
    return 0;
}

extern "C" int gpu_copy(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    CU(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g->stream));
    return 0;
}

extern "C" int gpu_memset0(gpu_ctx *g, void *dst, size_t bytes) {
    CU(g, cudaMemsetAsync(dst, 0, bytes, g->stream));
    return 0;
}

extern "C" int gpu_sync(gpu_ctx *g) {
    CU(g, cudaStreamSynchronize(g->stream));
    return 0;
}

extern "C" double gpu_copy_bandwidth(int dev) {
    if (dev < 0 || dev >= gpu_device_count() || cudaSetDevice(gpu_phys(dev)) != cudaSuccess) return 0;
    const size_t n = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double best = 0;
    if (cudaMalloc(&a, n) == cudaSuccess && cudaMalloc(&b, n) == cudaSuccess && cudaEventCreate(&e0) == cudaSuccess &&
        cudaEventCreate(&e1) == cudaSuccess && cudaMemset(a, 1, n) == cudaSuccess) {
        for (int i = 0; i < 6; i++) {
            cudaEventRecord(e0);
            cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice);
            cudaEventRecord(e1);
            float ms = 0;
            if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) break;
            double gbs = 2.0 * (double)n / (ms * 1e-3) / 1e9;
            if (i > 0 && gbs > best) best = gbs; /* the first is a warm-up */
        }
    }
    cudaFree(a); cudaFree(b);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaGetLastError();
    return best;
}

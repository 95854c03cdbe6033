/* Cards, device memory, streams and the error messages every other CUDA file uses. */
#include "backend/cuda/common.cuh"

#include <stdarg.h>
#include <string.h>

static int g_count = -1;          /* devices found (the backend registry's one piece of state) */
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
}

extern "C" int gpu_device_count(void) { probe(); return g_count; }

extern "C" const char *gpu_unavailable_reason(void) {
    probe();
    return g_count > 0 ? "" : g_reason;
}

extern "C" int gpu_device_info(int dev, char *name, size_t n, size_t *free_b, size_t *total_b) {
    if (dev < 0 || dev >= gpu_device_count()) return -1;
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) return -1;
    if (name && n) snprintf(name, n, "%s", p.name);
    size_t f = 0, t = 0;
    if (cudaSetDevice(dev) != cudaSuccess || cudaMemGetInfo(&f, &t) != cudaSuccess) { cudaGetLastError(); return -1; }
    if (free_b) *free_b = f;
    if (total_b) *total_b = t;
    return 0;
}

static double mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

extern "C" void *gpu_malloc(int dev, size_t bytes, const char *what, char *err, size_t errlen) {
    void *p = NULL;
    if (cudaSetDevice(dev) != cudaSuccess) { cudaGetLastError(); snprintf(err, errlen, "cannot select CUDA%d", dev); return NULL; }
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
    cudaSetDevice(dev);
    cudaFree(p);
    cudaGetLastError();
}

extern "C" int gpu_upload(int dev, void *dst, const void *src, size_t bytes, char *err, size_t errlen) {
    cudaError_t e = cudaSetDevice(dev);
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
    cudaError_t e = cudaSetDevice(dev);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(err, errlen, "CUDA%d: cannot create a stream: %s", dev, cudaGetErrorString(e));
        free(g);
        return NULL;
    }
    cudaDeviceGetAttribute(&g->sm_count, cudaDevAttrMultiProcessorCount, dev);
    if (cublasCreate(&g->blas) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "CUDA%d: cannot start cuBLAS", dev);
        cudaStreamDestroy(g->stream);
        free(g);
        return NULL;
    }
    cublasSetStream(g->blas, g->stream);
    return g;
}

extern "C" void gpu_ctx_free(gpu_ctx *g) {
    if (!g) return;
    cudaSetDevice(g->dev);
    cudaStreamSynchronize(g->stream);
    for (int i = 0; i < SCR_COUNT; i++) cudaFree(g->scr[i]);
    cublasDestroy(g->blas);
    cudaStreamDestroy(g->stream);
    cudaGetLastError();
    free(g);
}

extern "C" int gpu_ctx_device(const gpu_ctx *g) { return g->dev; }
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
    if (dev < 0 || dev >= gpu_device_count() || cudaSetDevice(dev) != cudaSuccess) return 0;
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

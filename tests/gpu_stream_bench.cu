/* gpu_stream_bench: how close can a decode step's weight stream come to the card's copy
 * bandwidth, organised three ways? A design probe for issue 6's "generation >= 85% of the
 * byte limit" (a tool, not a test; it reads weights-shaped buffers and does no arithmetic).
 *
 * The step is Mistral-7B-shaped Q8_0 (BENCHMARKS.md): per layer the q, k, v product (26.8 MB),
 * wo (17.8 MB), gate + up (124.8 MB) and down (62.4 MB), 32 layers, then the output matrix
 * (139 MB). Between products sit pieces that read next to nothing but take time: the cache
 * store and attention after q, k, v, a norm before gate + up and before the next layer. They
 * are modelled as one thread spinning for a set time (--serial A,N in ns: A after q, k, v,
 * N for each norm).
 *
 *   one         one kernel reads every byte of the step: the bound
 *   kernels     a kernel a product, a one-block kernel a serial piece, replayed as a CUDA
 *               graph; each product loads its first tile, then waits for the kernel before
 *               (programmatic dependent launch, as hearth's decode step)
 *   persistent  one cooperative kernel, a grid barrier after each piece
 *   persist+pf  the same, each block issuing its first loads of the next product before the
 *               barrier, so the memory need not drain while the serial pieces run
 *
 * Then one gate + up sized product (124.8 MB) alone, dealt out as block tiles and as warp
 * tasks of whole rows (with and without the 8-bit x loads and dp4a of the real kernels).
 *
 * Usage: gpu_stream_bench [--layers N] [--serial A,N] [--reps R]
 * Prints µs, GB/s and the percentage of a device-to-device copy's (read + write) bandwidth
 * measured at start, as `hearth bench` reports it. */
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

namespace cg = cooperative_groups;

#define CK(x)                                                                                     \
    do {                                                                                          \
        cudaError_t e_ = (x);                                                                     \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "gpu_stream_bench: %s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

#define THREADS 256
#define U 4   /* 16-byte loads a thread has in flight per tile: a tile is 16 KB */
#define TILE ((size_t)THREADS * U)   /* int4 a tile */

struct phase {
    const int4 *p;   /* NULL: a serial piece */
    size_t n;        /* int4 */
    long long ns;    /* serial piece: how long one thread spins */
};

__device__ __forceinline__ void spin(long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); while ((long long)(t - t0) < ns);
}

__device__ __forceinline__ void load_tile(const phase &f, size_t t, int4 (&v)[U]) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const size_t i = t * TILE + (size_t)u * THREADS + threadIdx.x;
        v[u] = i < f.n ? __ldcs(f.p + i) : make_int4(0, 0, 0, 0);
    }
}

__device__ __forceinline__ unsigned fold(const int4 (&v)[U]) {
    unsigned a = 0;
#pragma unroll
    for (int u = 0; u < U; u++) a ^= (unsigned)(v[u].x ^ v[u].y ^ v[u].z ^ v[u].w);
    return a;
}

/* tiles b, b + grid, ... of one product, the first one already loaded (have) or not */
__device__ __forceinline__ unsigned stream(const phase &f, bool have, const int4 (&first)[U]) {
    unsigned acc = 0;
    const size_t nt = (f.n + TILE - 1) / TILE;
    size_t t = blockIdx.x;
    if (have) { acc ^= fold(first); t += gridDim.x; }
    for (; t < nt; t += gridDim.x) {
        int4 v[U];
        load_tile(f, t, v);
        acc ^= fold(v);
    }
    return acc;
}

__global__ void __launch_bounds__(THREADS) k_product(phase f, unsigned *sink) {
    int4 first[U];
    const bool have = blockIdx.x < (f.n + TILE - 1) / TILE;
    if (have) load_tile(f, blockIdx.x, first);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
    const unsigned acc = stream(f, have, first);
    if (acc == 0x9e3779b9u) *sink = acc;   /* keeps the loads; never true for zeroed buffers */
}

__global__ void k_serial(long long ns) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
    if (threadIdx.x == 0) spin(ns);
}

__global__ void __launch_bounds__(THREADS) k_persistent(const phase *ph, int nph, int prefetch, unsigned *sink) {
    cg::grid_group grid = cg::this_grid();
    unsigned acc = 0;
    int4 pre[U];
    bool have = false;
    for (int i = 0; i < nph; i++) {
        const phase f = ph[i];
        if (f.p) {
            acc ^= stream(f, have, pre);
            have = false;
        } else if (blockIdx.x == 0 && threadIdx.x == 0) {
            spin(f.ns);
        }
        if (prefetch && !have) {
            for (int j = i + 1; j < nph; j++) {
                if (!ph[j].p) continue;
                if (blockIdx.x < (ph[j].n + TILE - 1) / TILE) { load_tile(ph[j], blockIdx.x, pre); have = true; }
                break;
            }
        }
        grid.sync();
    }
    if (acc == 0x9e3779b9u) *sink = acc;
}

/* One product's bytes as warp tasks of tb bytes (a warp owns a task, tasks dealt out by warp
 * number, as hearth's gate + up kernel deals its rows): UL 16-byte loads a lane in flight per
 * step; with XD each 16 weight bytes also take 16 bytes of x and a scale from the cache and
 * four dp4a, as the real kernels do. */
template <int UL, bool XD>
__global__ void k_wtask(const uint8_t *base, size_t tb, size_t ntasks, const int4 *x, int xn, unsigned *sink) {
    const int lane = threadIdx.x & 31;
    const size_t w0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5, nw = ((size_t)gridDim.x * blockDim.x) >> 5;
    const size_t n = tb / 16;
    unsigned a = 0;
    float acc = 0.0f;
    for (size_t t = w0; t < ntasks; t += nw) {
        const int4 *p = (const int4 *)(base + t * tb);
        for (size_t i = lane; i < n; i += 32 * UL) {
            int4 v[UL];
#pragma unroll
            for (int u = 0; u < UL; u++) v[u] = i + 32 * u < n ? __ldcs(p + i + 32 * u) : make_int4(0, 0, 0, 0);
#pragma unroll
            for (int u = 0; u < UL; u++) {
                if (XD) {
                    const int j = (int)((i + 32 * u) & (size_t)(xn - 1));   /* xn: a power of two */
                    const int4 xv = __ldg(x + j);
                    const float sc = __ldg((const float *)(x + xn) + (j >> 1));
                    int d = __dp4a(v[u].x, xv.x, 0);
                    d = __dp4a(v[u].y, xv.y, d);
                    d = __dp4a(v[u].z, xv.z, d);
                    d = __dp4a(v[u].w, xv.w, d);
                    acc += sc * (float)d;
                } else {
                    a ^= (unsigned)(v[u].x ^ v[u].y ^ v[u].z ^ v[u].w);
                }
            }
        }
    }
    if (a == 0x9e3779b9u || acc == 1234.5f) *sink = a;
}

static float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char **argv) {
    int layers = 32, reps = 7;
    long long ser_attn = 4000, ser_norm = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--serial") && i + 1 < argc) {
            if (sscanf(argv[++i], "%lld,%lld", &ser_attn, &ser_norm) != 2) { fprintf(stderr, "--serial A,N\n"); return 2; }
        } else {
            fprintf(stderr, "usage: gpu_stream_bench [--layers N] [--serial A,N (ns)] [--reps R]\n");
            return 2;
        }
    }
    if (layers < 1 || reps < 1 || ser_attn < 0 || ser_norm < 0) { fprintf(stderr, "gpu_stream_bench: bad arguments\n"); return 2; }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
        fprintf(stderr, "gpu_stream_bench: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    /* bytes of each product of a layer, then the output matrix (rows x 34 bytes per 32 values) */
    const size_t E = 4096, F = 14336, KV = 1024, V = 32000;
    const size_t qkv = (E + 2 * KV) * (E / 32 * 34), wo = E * (E / 32 * 34), gu = 2 * F * (E / 32 * 34),
                 down = E * (F / 32 * 34), out = V * (E / 32 * 34);
    const size_t per_layer = qkv + wo + gu + down, total = per_layer * layers + out;
    uint8_t *buf = NULL;
    unsigned *sink = NULL;
    CK(cudaMalloc(&buf, total + 16));
    CK(cudaMalloc(&sink, sizeof(unsigned)));
    CK(cudaMemset(buf, 0, total + 16));
    /* copy bandwidth as hearth bench measures it: 2 x bytes / time of a device-to-device copy */
    float copy_gbs = 0.0f;
    {
        const size_t half = (size_t)1 << 30;
        cudaEvent_t a, b;
        CK(cudaEventCreate(&a));
        CK(cudaEventCreate(&b));
        std::vector<float> ms;
        for (int r = 0; r < 5; r++) {
            CK(cudaEventRecord(a));
            CK(cudaMemcpy(buf + half, buf, half, cudaMemcpyDeviceToDevice));
            CK(cudaEventRecord(b));
            CK(cudaEventSynchronize(b));
            float t;
            CK(cudaEventElapsedTime(&t, a, b));
            ms.push_back(t);
        }
        copy_gbs = (float)(2.0 * half / (median(ms) * 1e-3) / 1e9);
        CK(cudaEventDestroy(a));
        CK(cudaEventDestroy(b));
    }
    /* the step's pieces in order */
    std::vector<phase> ph;
    size_t off = 0;
    auto prod = [&](size_t bytes) {
        ph.push_back({ (const int4 *)(buf + off), bytes / 16, 0 });
        off += bytes;
    };
    auto ser = [&](long long ns) { if (ns > 0) ph.push_back({ NULL, 0, ns }); };
    for (int l = 0; l < layers; l++) {
        ser(ser_norm);
        prod(qkv);
        ser(ser_attn);
        prod(wo);
        ser(ser_norm);
        prod(gu);
        prod(down);
    }
    ser(ser_norm);
    prod(out);
    phase *dph = NULL;
    CK(cudaMalloc(&dph, sizeof(phase) * ph.size()));
    CK(cudaMemcpy(dph, ph.data(), sizeof(phase) * ph.size(), cudaMemcpyHostToDevice));

    int per_sm = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k_persistent, THREADS, 0));
    const int grid_p = per_sm * prop.multiProcessorCount;
    int per_sm_k = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm_k, k_product, THREADS, 0));
    const int grid_k = per_sm_k * prop.multiProcessorCount;

    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    auto timeit = [&](auto &&launch) {
        launch();   /* warm-up */
        CK(cudaStreamSynchronize(st));
        std::vector<float> ms;
        for (int r = 0; r < reps; r++) {
            CK(cudaEventRecord(a, st));
            launch();
            CK(cudaEventRecord(b, st));
            CK(cudaEventSynchronize(b));
            float t;
            CK(cudaEventElapsedTime(&t, a, b));
            ms.push_back(t);
        }
        return median(ms) * 1000.0f;   /* µs */
    };

    /* the kernels variant, captured once as a graph */
    cudaGraphExec_t gexec = NULL;
    {
        cudaGraph_t graph;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        for (const phase &f : ph) {
            cudaLaunchConfig_t cfg = {};
            cfg.stream = st;
            cfg.attrs = at;
            cfg.numAttrs = prop.major >= 9 ? 1 : 0;
            cfg.blockDim = dim3(THREADS);
            if (f.p) {
                cfg.gridDim = dim3(grid_k);
                CK(cudaLaunchKernelEx(&cfg, k_product, f, sink));
            } else {
                cfg.gridDim = dim3(1);
                cfg.blockDim = dim3(32);
                CK(cudaLaunchKernelEx(&cfg, k_serial, f.ns));
            }
        }
        CK(cudaStreamEndCapture(st, &graph));
        CK(cudaGraphInstantiate(&gexec, graph, 0));
        CK(cudaGraphDestroy(graph));
    }

    const phase whole = { (const int4 *)buf, total / 16, 0 };
    long long serial_ns = 0;
    for (const phase &f : ph) serial_ns += f.p ? 0 : f.ns;
    printf("card: %s, %d SMs; copy bandwidth (read + write) %.1f GB/s\n", prop.name, prop.multiProcessorCount, copy_gbs);
    printf("step: %d layers + output, %.3f GB read; serial pieces %lld ns after q,k,v, %lld ns a norm (%.1f us a step)\n",
           layers, total / 1e9, ser_attn, ser_norm, serial_ns / 1e3);
    printf("grids: products %d blocks (%d an SM), persistent %d blocks (%d an SM)\n\n", grid_k, per_sm_k, grid_p, per_sm);
    printf("| way | us a step | GB/s | %% of copy bw | tokens/s |\n| --- | ---: | ---: | ---: | ---: |\n");
    auto row = [&](const char *name, float us) {
        const double gbs = total / (us * 1e-6) / 1e9;
        printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", name, us, gbs, 100.0 * gbs / copy_gbs, 1e6 / us);
    };
    row("one", timeit([&] { k_product<<<grid_k, THREADS, 0, st>>>(whole, sink); CK(cudaGetLastError()); }));
    row("kernels", timeit([&] { CK(cudaGraphLaunch(gexec, st)); }));
    for (int pf = 0; pf < 2; pf++) {
        int nph = (int)ph.size();
        void *args[] = { &dph, &nph, &pf, &sink };
        row(pf ? "persist+pf" : "persistent", timeit([&] {
            CK(cudaLaunchCooperativeKernel((void *)k_persistent, dim3(grid_p), dim3(THREADS), args, 0, st));
        }));
    }
    /* one gate + up sized product (124.8 MB) dealt out in different units */
    {
        const phase gup = { (const int4 *)buf, gu / 16, 0 };
        int4 *xv = NULL;
        const int xn = (int)(E / 16);
        CK(cudaMalloc(&xv, E + E / 32 * 4 + 64));
        CK(cudaMemset(xv, 0, E + E / 32 * 4 + 64));
        printf("\none gate + up sized product (%.1f MB) dealt out in different units:\n\n", gu / 1e6);
        printf("| units | grid | us | GB/s | %% of copy bw |\n| --- | --- | ---: | ---: | ---: |\n");
        auto prow = [&](const char *units, const char *gridd, float us) {
            const double gbs = gu / (us * 1e-6) / 1e9;
            printf("| %s | %s | %.1f | %.1f | %.1f |\n", units, gridd, us, gbs, 100.0 * gbs / copy_gbs);
        };
        char gd[64];
        snprintf(gd, sizeof gd, "%d x 256", grid_k);
        prow("16 KB block tiles", gd, timeit([&] { k_product<<<grid_k, THREADS, 0, st>>>(gup, sink); CK(cudaGetLastError()); }));
        const size_t row = E / 32 * 34;
        struct v_t { int rows, ul, xd, bps, wpb; };
        const v_t vs[] = { { 4, 4, 0, 2, 16 }, { 4, 8, 0, 2, 16 }, { 4, 4, 1, 2, 16 }, { 4, 8, 1, 2, 16 }, { 2, 4, 0, 2, 16 },
                           { 2, 8, 1, 2, 16 }, { 1, 8, 1, 2, 16 }, { 4, 8, 1, 4, 8 }, { 1, 8, 1, 4, 8 } };
        for (const v_t &v : vs) {
            const size_t tb = row * v.rows, nt = gu / tb;
            const int grid = v.bps * prop.multiProcessorCount, th = 32 * v.wpb;
            char u[96];
            snprintf(u, sizeof u, "warp tasks of %d rows (%zu B), %d loads a lane%s", v.rows, tb, v.ul, v.xd ? ", x + dp4a" : "");
            snprintf(gd, sizeof gd, "%d x %d (%zu tasks, %.2f rounds)", grid, th, nt, (double)nt / (grid * v.wpb));
            prow(u, gd, timeit([&] {
                if (v.ul == 4 && !v.xd) k_wtask<4, false><<<grid, th, 0, st>>>(buf, tb, nt, xv, xn, sink);
                else if (v.ul == 4) k_wtask<4, true><<<grid, th, 0, st>>>(buf, tb, nt, xv, xn, sink);
                else if (!v.xd) k_wtask<8, false><<<grid, th, 0, st>>>(buf, tb, nt, xv, xn, sink);
                else k_wtask<8, true><<<grid, th, 0, st>>>(buf, tb, nt, xv, xn, sink);
                CK(cudaGetLastError());
            }));
        }
        CK(cudaFree(xv));
    }
    CK(cudaGraphExecDestroy(gexec));
    CK(cudaFree(dph));
    CK(cudaFree(buf));
    CK(cudaFree(sink));
    return 0;
}

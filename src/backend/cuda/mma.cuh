/* Tensor-core and async-copy helpers shared by the attention kernels (attn_prompt.cu,
 * attn_dec.cu): mma.sync m16n8k16 with f16 operands and f32 accumulators, cp.async into
 * shared memory, ldmatrix. All need sm_80 or newer; a pass for an older target compiles
 * them to nothing (the callers never launch there). */
#ifndef HEARTH_CUDA_MMA_CUH
#define HEARTH_CUDA_MMA_CUH

#include "backend/cuda/common.cuh"

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define FP_SM80 1
#else
#define FP_SM80 0
#endif

__device__ __forceinline__ uint32_t fp_pack(float a, float b) {
    __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<uint32_t *>(&h);
}

__device__ __forceinline__ float fp_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* a copy of 16 bytes; bytes < 16 zero-fill the rest (0: all zeros) */
__device__ __forceinline__ void fp_cp16(void *dst, const void *src, int bytes) {
#if FP_SM80
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(bytes));
#endif
}
/* the same to a shared-space address */
__device__ __forceinline__ void fp_cp16s(unsigned dst, const void *src, int bytes) {
#if FP_SM80
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
#endif
}
__device__ __forceinline__ void fp_commit() {
#if FP_SM80
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N> __device__ __forceinline__ void fp_wait() {
#if FP_SM80
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

__device__ __forceinline__ void fp_ldsm4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const __half *p) {
#if FP_SM80
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(s));
#endif
}
__device__ __forceinline__ void fp_ldsm4t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const __half *p) {
#if FP_SM80
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(s));
#endif
}

/* d += a b: m16n8k16, f16 operands, f32 accumulators */
__device__ __forceinline__ void fp_mma(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
#if FP_SM80
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

#endif

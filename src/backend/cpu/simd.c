/* Run-time choice of the CPU kernels. The detection runs once; the forced level is the one
 * piece of global state here (the backend registry DESIGN.md allows), an atomic so threads
 * may read it while a test flips it between runs. */
#include "backend/cpu/simd.h"
#include "quant/quant.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_int detected = -1, forced = -1;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
/* F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports has no "f16c". */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
/* the dot-product instructions (SDOT/UDOT): HWCAP_ASIMDDP, bit 20 of AT_HWCAP on Linux */
static int has_sdot(void) { return (getauxval(AT_HWCAP) & (1ul << 20)) != 0; }
#elif defined(__aarch64__)
static int has_sdot(void) { return 0; }
#endif

static int detect(void) {
    int lvl = CPU_SIMD_SCALAR;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
        lvl = CPU_SIMD_AVX2;
    if (lvl == CPU_SIMD_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        lvl = CPU_SIMD_AVX512;
#elif defined(__aarch64__) && defined(__ARM_NEON)
    lvl = CPU_SIMD_NEON; /* Advanced SIMD is part of the AArch64 base architecture */
#endif
    const char *e = getenv("HEARTH_SIMD");
    if (e && (strcmp(e, "scalar") == 0 || strcmp(e, "0") == 0)) lvl = CPU_SIMD_SCALAR;
    if (e && strcmp(e, "avx2") == 0 && lvl > CPU_SIMD_AVX2) lvl = CPU_SIMD_AVX2;
    return lvl;
}

int cpu_simd_level(void) {
    int f = atomic_load_explicit(&forced, memory_order_relaxed);
    int d = atomic_load_explicit(&detected, memory_order_relaxed);
    if (d < 0) { d = detect(); atomic_store(&detected, d); }
    /* forcing can only lower the level: never run code the CPU lacks */
    return f >= 0 && f < d ? f : d;
}

void cpu_simd_force(int level) { atomic_store(&forced, level); }

const char *cpu_simd_name(int level) {
#if defined(__aarch64__)
    return level >= CPU_SIMD_NEON ? (has_sdot() ? "neon+dotprod" : "neon") : "scalar";
#endif
    return level >= CPU_SIMD_AVX512 ? "avx512vnni" : level >= CPU_SIMD_AVX2 ? "avx2" : "scalar";
}

const mm_kernels *cpu_mm_kernels(int type) {
#if defined(__x86_64__)
    if (cpu_simd_level() >= CPU_SIMD_AVX2) return mmx_avx2_kernels(type);
#elif defined(__aarch64__) && defined(__ARM_NEON)
    if (cpu_simd_level() >= CPU_SIMD_NEON) return has_sdot() ? mmn_dot_kernels(type) : mmn_neon_kernels(type);
#endif
    (void)type;
    return NULL;
}

mm_quant_fn cpu_mm_quant(int act) {
#if defined(__x86_64__)
    if (cpu_simd_level() >= CPU_SIMD_AVX2) return mmx_avx2_quant(act);
#elif defined(__aarch64__) && defined(__ARM_NEON)
    if (cpu_simd_level() >= CPU_SIMD_NEON) return has_sdot() ? mmn_dot_quant(act) : mmn_neon_quant(act);
#endif
    (void)act;
    return NULL;
}

const mm_panel *cpu_mm_panel(int type) {
#if defined(__x86_64__)
    if (cpu_simd_level() >= CPU_SIMD_AVX512) return mmx_avx512_panel(type);
#endif
    (void)type;
    return NULL;
}

const attn_simd *cpu_attn_simd(void) {
#if defined(__x86_64__)
    int lvl = cpu_simd_level();
    if (lvl >= CPU_SIMD_AVX512) return attnx_avx512();
    if (lvl >= CPU_SIMD_AVX2) return attnx_avx2();
#elif defined(__aarch64__) && defined(__ARM_NEON)
    if (cpu_simd_level() >= CPU_SIMD_NEON) return attnn_neon();
#endif
    return NULL;
}

/* The NEON kernels of mm_neon.c compiled again with the Armv8.2 dot-product extension
 * (-march=armv8.2-a+dotprod, set for this file alone in CMakeLists.txt), so each 16-byte
 * dot product is one SDOT instead of two widening multiplies and a pairwise add. simd.c
 * calls these only when the kernel reports the feature (HWCAP_ASIMDDP). */
#if defined(__aarch64__) && defined(__ARM_NEON)
#define MMN_NAME(x) mmn_dot_##x
#include "backend/cpu/mm_neon.c"
#else
typedef int hearth_mm_neon_dot_unused;
#endif

/* Layer split across cards. Largest-remainder rounding keeps the shares as close to the
 * proportions as whole layers allow and always hands out exactly n_gpu layers; cards keep
 * consecutive ranges in card order, so activations cross from card to card once per
 * boundary, never back. */
#include "model/split.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int split_parse(const char *const *words, int n_words, float *out, char *err, size_t errlen) {
    int n = 0;
    for (int w = 0; w < n_words; w++) {
        const char *p = words[w];
        if (!*p) { snprintf(err, errlen, "--tensor_split: an empty value"); return -1; }
        while (*p) {
            char *end;
            double v = strtod(p, &end);
            if (end == p || !isfinite(v) || v < 0) {
                snprintf(err, errlen, "--tensor_split: '%s' is not a proportion (a number >= 0)", words[w]);
                return -1;
            }
            if (n == SPLIT_MAX) { snprintf(err, errlen, "--tensor_split: more than %d values", SPLIT_MAX); return -1; }
            out[n++] = (float)v;
            p = end;
            if (*p == ',' || *p == '/') {
                p++;
                if (!*p) { snprintf(err, errlen, "--tensor_split: '%s' ends with a separator", words[w]); return -1; }
            } else if (*p) {
                snprintf(err, errlen, "--tensor_split: '%s' is not a proportion (a number >= 0)", words[w]);
                return -1;
            }
        }
    }
    if (n == 0) { snprintf(err, errlen, "--tensor_split: no values"); return -1; }
    return n;
}

static int split_word(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '.' || *s == ',' || *s == '/')) return 0;
    return 1;
}

int split_count_words(char *const *argv, int argc, int from) {
    int n = 0;
    while (from + n < argc && split_word(argv[from + n])) n++;
    return n;
}

int split_layers(int n_layer, int n_gpu, const float *ratio, int n_ratio, const uint64_t *free_bytes,
                 int n_dev, int *dev_of_layer, int *out_dev, char *err, size_t errlen) {
    *out_dev = -1;
    if (n_gpu < 0 || n_gpu > n_layer) n_gpu = n_layer;
    for (int i = 0; i < n_layer; i++) dev_of_layer[i] = -1;
    if (n_dev <= 0 || n_dev > SPLIT_MAX) { snprintf(err, errlen, "no GPU to split layers across"); return -1; }
    if (n_ratio > n_dev) {
        snprintf(err, errlen, "--tensor_split has %d values but %d card%s visible", n_ratio, n_dev, n_dev == 1 ? " is" : "s are");
        return -1;
    }
    double w[SPLIT_MAX], sum = 0;
    for (int d = 0; d < n_dev; d++) {
        if (n_ratio > 0) w[d] = d < n_ratio ? ratio[d] : 0.0;
        else w[d] = free_bytes ? (double)free_bytes[d] : 1.0;
        if (!isfinite(w[d]) || w[d] < 0) { snprintf(err, errlen, "--tensor_split: value %d is not a proportion", d + 1); return -1; }
        sum += w[d];
    }
    if (!(sum > 0)) {
        snprintf(err, errlen, n_ratio > 0 ? "--tensor_split: every proportion is 0" : "no free memory on any card");
        return -1;
    }
    if (n_gpu == 0) return 0;
    int cnt[SPLIT_MAX], given = 0;
    double rem[SPLIT_MAX];
    for (int d = 0; d < n_dev; d++) {
        double exact = n_gpu * w[d] / sum;
        cnt[d] = (int)floor(exact);
        rem[d] = exact - cnt[d];
        given += cnt[d];
    }
    while (given < n_gpu) {    /* largest remainder first; ties to the earlier card */
        int best = -1;
        for (int d = 0; d < n_dev; d++)
            if (w[d] > 0 && (best < 0 || rem[d] > rem[best])) best = d;
        cnt[best]++;
        rem[best] = -1;
        given++;
    }
    int l = 0;
    for (int d = 0; d < n_dev; d++)
        for (int k = 0; k < cnt[d]; k++) dev_of_layer[l++] = d;
    if (n_gpu == n_layer) *out_dev = dev_of_layer[n_layer - 1];
    return 0;
}

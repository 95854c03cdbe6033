/* --tensor_split: parsing (both spellings, errors by name) and the layer split (shares,
 * rounding, order, the output layer, free-memory default). */
#include "testutil.h"
#include "model/split.h"

#include <string.h>

static int parse(const char *a, const char *b, float *out, char *err) {
    const char *w[2] = { a, b };
    return split_parse(w, b ? 2 : 1, out, err, 256);
}

/* Layers per card and check they are consecutive ranges in card order. */
static void counts(const int *dev, int n_layer, int n_dev, int *cnt) {
    memset(cnt, 0, sizeof(int) * (size_t)n_dev);
    int last = 0, cpu = 0;
    for (int i = 0; i < n_layer; i++) {
        if (dev[i] < 0) { cpu = 1; continue; }
        CHECK(!cpu, "layer %d on card %d after a CPU layer", i, dev[i]);
        CHECK(dev[i] >= last, "layer %d on card %d after card %d", i, dev[i], last);
        last = dev[i];
        cnt[dev[i]]++;
    }
}

int main(void) {
    float r[SPLIT_MAX];
    char err[256];
    CHECK(parse("1", "3", r, err) == 2 && r[0] == 1 && r[1] == 3, "KoboldCpp's spelling: %s", err);
    CHECK(parse("1,3", NULL, r, err) == 2 && r[1] == 3, "comma: %s", err);
    CHECK(parse("0.5/0.5", NULL, r, err) == 2 && r[0] == 0.5f, "slash: %s", err);
    CHECK(parse("1,", NULL, r, err) < 0 && strstr(err, "separator"), "trailing comma: %s", err);
    CHECK(parse("-1", NULL, r, err) < 0 && strstr(err, "'-1' is not a proportion"), "negative: %s", err);
    CHECK(parse("abc", NULL, r, err) < 0 && strstr(err, "'abc'"), "text: %s", err);
    CHECK(parse("nan", NULL, r, err) < 0, "nan: %s", err);
    CHECK(parse("1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", "1", r, err) < 0 && strstr(err, "more than 16"), "17 values: %s", err);

    int dev[64], out, cnt[SPLIT_MAX];
    /* 1:3 over 32 layers: 8 and 24; output on card 1 */
    float a[2] = { 1, 3 };
    CHECK(split_layers(32, 32, a, 2, NULL, 2, dev, &out, err, sizeof err) == 0, "%s", err);
    counts(dev, 32, 2, cnt);
    CHECK(cnt[0] == 8 && cnt[1] == 24 && out == 1, "1:3 -> %d/%d, out %d", cnt[0], cnt[1], out);
    /* one value on one card is the same as no split */
    float one = 1;
    CHECK(split_layers(22, 22, &one, 1, NULL, 1, dev, &out, err, sizeof err) == 0, "%s", err);
    counts(dev, 22, 1, cnt);
    CHECK(cnt[0] == 22 && out == 0, "--tensor_split 1: %d layers, out %d", cnt[0], out);
    /* partial offload: only the first n_gpu layers, no output layer on a card */
    CHECK(split_layers(32, 10, a, 2, NULL, 2, dev, &out, err, sizeof err) == 0, "%s", err);
    counts(dev, 32, 2, cnt);
    CHECK(cnt[0] + cnt[1] == 10 && dev[10] == -1 && out == -1, "10 of 32: %d+%d, out %d", cnt[0], cnt[1], out);
    /* rounding: 3 equal cards, 22 layers -> 8/7/7, always summing to n_gpu */
    float e3[3] = { 1, 1, 1 };
    CHECK(split_layers(22, 22, e3, 3, NULL, 3, dev, &out, err, sizeof err) == 0, "%s", err);
    counts(dev, 22, 3, cnt);
    CHECK(cnt[0] == 8 && cnt[1] == 7 && cnt[2] == 7 && out == 2, "1:1:1 of 22 -> %d/%d/%d", cnt[0], cnt[1], cnt[2]);
    for (int n = 1; n <= 40; n++) {
        float q[4] = { 0.3f, 0.0f, 2.5f, 1.0f };
        CHECK(split_layers(n, n, q, 4, NULL, 4, dev, &out, err, sizeof err) == 0, "%s", err);
        counts(dev, n, 4, cnt);
        CHECK(cnt[0] + cnt[1] + cnt[2] + cnt[3] == n && cnt[1] == 0, "n %d: %d %d %d %d", n, cnt[0], cnt[1], cnt[2], cnt[3]);
        CHECK(out == dev[n - 1] && out >= 0, "n %d: output on card %d", n, out);
    }
    /* a card with a zero share gets nothing; fewer values than cards: the rest get 0 */
    float z[2] = { 0, 1 };
    CHECK(split_layers(8, 8, z, 2, NULL, 3, dev, &out, err, sizeof err) == 0, "%s", err);
    counts(dev, 8, 3, cnt);
    CHECK(cnt[0] == 0 && cnt[1] == 8 && cnt[2] == 0 && out == 1, "0 1 over 3 cards: %d/%d/%d", cnt[0], cnt[1], cnt[2]);
    /* default: by free memory */
    uint64_t fb[2] = { 30ull << 30, 10ull << 30 };
    CHECK(split_layers(32, 32, NULL, 0, fb, 2, dev, &out, err, sizeof err) == 0, "%s", err);
    counts(dev, 32, 2, cnt);
    CHECK(cnt[0] == 24 && cnt[1] == 8, "by free memory 30:10 -> %d/%d", cnt[0], cnt[1]);
    /* errors name the problem */
    CHECK(split_layers(32, 32, e3, 3, NULL, 2, dev, &out, err, sizeof err) < 0 && strstr(err, "3 values but 2 cards"), "%s", err);
    float zz[2] = { 0, 0 };
    CHECK(split_layers(32, 32, zz, 2, NULL, 2, dev, &out, err, sizeof err) < 0 && strstr(err, "every proportion is 0"), "%s", err);
    CHECK(split_layers(32, 32, NULL, 0, NULL, 0, dev, &out, err, sizeof err) < 0 && strstr(err, "no GPU"), "%s", err);
    return test_done("test_split");
}

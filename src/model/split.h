/* Splitting layers across several GPUs (KoboldCpp's --tensor_split): which card each
 * offloaded layer goes to. Pure arithmetic, so it is tested without a card. */
#ifndef HEARTH_SPLIT_H
#define HEARTH_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#define SPLIT_MAX 16

/* Proportions from words such as {"1", "3"} (KoboldCpp: --tensor_split 1 3) or {"1,3"} /
 * {"1/3"} (llama.cpp). Returns how many (1..SPLIT_MAX), or -1 with a message. */
int split_parse(const char *const *words, int n_words, float *out, char *err, size_t errlen);
/* How many of argv[from..argc-1] are values of --tensor_split: words of digits, '.', ','
 * and '/' only, up to the first other word (the next option). */
int split_count_words(char *const *argv, int argc, int from);

/* Layers 0..n_gpu-1 go to cards 0..n_dev-1 in order, card d taking a share proportional
 * to ratio[d] (n_ratio of them; 0 values: by free memory, free_bytes[d]), rounded so the
 * counts add up to n_gpu (largest remainders first). dev_of_layer[i] gets the card of
 * layer i, or -1 for layers n_gpu.. (CPU). *out_dev gets the card for the output layer:
 * the last card holding a layer when every layer is offloaded, else -1. Returns 0, or -1
 * with a message (more proportions than cards, a negative or non-finite value, all zero). */
int split_layers(int n_layer, int n_gpu, const float *ratio, int n_ratio, const uint64_t *free_bytes,
                 int n_dev, int *dev_of_layer, int *out_dev, char *err, size_t errlen);

#endif

/* hearth: one binary, subcommands. Without one it starts the server. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HEARTH_HAVE_SERVER
#include "server.h"
#endif

static void usage(FILE *f) {
    fprintf(f,
        "usage: hearth [serve] [server options]     start the server (KoboldAI + OpenAI APIs, web page)\n"
        "       hearth run [-m MODEL] [-p PROMPT] [-n N] [-c N] [--temp T] [--seed S] [-t THREADS]\n"
        "       hearth logits -m MODEL --text FILE [--gen N] [--ubatch N] -o OUT.hlog\n"
        "       hearth perplexity -m MODEL -f TEXT [--cache-types f16,q8_0,...] [-c N]\n"
        "       hearth tokenize -m VOCAB.gguf --suite FILE.inp\n"
        "       hearth inspect MODEL [-c N]\n"
        "       hearth bench [-m MODEL] [-p N,..] [-n N,..] [-d D,..] [-t T,..] [-r REPS] [-ctk T,..] [-ctv T,..]\n"
        "                    [-fa 0|1] [-o md|json|csv]\n"
        "       hearth synth OUT.gguf --shape NAME --type T [--seed S] [--vocab VOCAB.gguf] [--dim N ...]\n"
        "context options: --cache-type-k T --cache-type-v T --quantkv 0|1|2 --flash-attn on|off\n"
        "                 --ubatch N --keep N --noshift -t THREADS\n"
        "                 --gpulayers N (-ngl N): the first N layers on the GPU (-1: all)\n"
        "                 --tensor_split R1 R2 ... (-ts R1,R2): their shares per card (default: by free memory)\n"
        "cache types: %s\n", hearth_cache_type_list());
}

static int cmd_tokenize(int argc, char **argv) {
    cli_opts o;
    if (cli_parse(argc, argv, &o)) return 2;
    if (!o.model || !o.suite) { fprintf(stderr, "hearth tokenize: needs -m VOCAB.gguf --suite FILE.inp\n"); return 2; }
    char err[1024];
    if (hearth_tokenize_suite(o.model, o.suite, stdout, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); return 1; }
    return 0;
}

static int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int n_ctx = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--contextsize")) && i + 1 < argc) n_ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) path = argv[++i];
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else { fprintf(stderr, "hearth inspect: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!path) { fprintf(stderr, "hearth inspect: needs a model file\n"); return 2; }
    char err[1024];
    if (hearth_inspect(path, n_ctx, stdout, err, sizeof err)) { fprintf(stderr, "hearth: %s\n", err); return 1; }
    return 0;
}

int main(int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "";
    if (!strcmp(sub, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(sub, "logits")) return cmd_logits(argc - 2, argv + 2);
    if (!strcmp(sub, "perplexity")) return cmd_perplexity(argc - 2, argv + 2);
    if (!strcmp(sub, "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(sub, "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(sub, "synth")) return cmd_synth(argc - 2, argv + 2);
    if (!strcmp(sub, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(sub, "help") || !strcmp(sub, "--help") || !strcmp(sub, "-h")) { usage(stdout); return 0; }
#ifdef HEARTH_HAVE_SERVER
    if (!strcmp(sub, "serve")) return hearth_serve_main(argc - 1, argv + 1);
    return hearth_serve_main(argc, argv);
#else
    fprintf(stderr, "hearth: this build has no server (configure with -DHEARTH_SERVER=ON)\n");
    usage(stderr);
    return 2;
#endif
}

/* serve_main.c: KoboldCpp's command line, loading, and the one-shot modes.
 *
 * Flags take "--flag value" or "--flag=value". KoboldCpp flags hearth has no use for (GPU
 * back-end pickers, the launcher) are accepted with a note, so existing launch scripts
 * work; anything else unknown is an error, so a typo is not silently ignored. */
#include "server.h"
#include "srv.h"
#include "model/split.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: hearth [serve] [MODEL [PORT]] [options]\n"
        "  --model FILE             GGUF model (default: the bundled stories260K)\n"
        "  --port N                 port (default 5001)\n"
        "  --host ADDR              address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)\n"
        "  --contextsize N          context size in tokens (default: the model's, at most 4096)\n"
        "  --threads N              CPU threads (default: all cores)\n"
        "  --gpulayers N            layers to offload to the GPU\n"
        "  --tensor_split R1 R2 ... shares of those layers per card (-ts 1,3; default: by free memory)\n"
        "  --flashattention         online-softmax attention over the cache (hearth's default)\n"
        "  --quantkv 0|1|2          KV cache f16, q8_0 or q4_0 (K and V)\n"
        "  --cache-type-k T, --cache-type-v T   K and V cache types: %s\n"
        "  --password X             require 'Authorization: Bearer X' on the API\n"
        "  --multiuser [N]          queue up to N-1 waiting requests (1: 6, 0: none; default 1)\n"
        "  --noshift                no context shifting\n"
        "  --chatcompletionsadapter NAME|FILE.json   chat format for /v1/chat/completions\n"
        "                           (alpaca, chatml, llama-2, mistral, llama-3, gemma, vicuna; default: from the model)\n"
        "  --prompt TEXT            generate once, print, exit (--promptlimit N tokens, default 100)\n"
        "  --benchmark [FILE.csv]   fill the context, print processing and generation speed, exit\n"
        "  --defaultgenamt N        tokens to generate when a request names no max_length (default 200)\n"
        "  --quiet                  log less\n", hearth_cache_type_list());
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v ? v : "", &end, 10);
    if (!v || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "hearth: %s needs a whole number from %d to %d (got '%s')\n", flag, lo, hi, v ? v : "");
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int is_number(const char *s) {
    if (!s || !*s) return 0;
    if (*s == '-') s++;
    for (; *s; s++) if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* A percentage on one terminal line while the weights are read in. */
static void load_progress(float frac, void *ud) {
    (void)ud;
    fprintf(stderr, "\rhearth: reading weights %3d%%%s", (int)(frac * 100.0f + 0.5f), frac >= 1.0f ? "\n" : "");
    fflush(stderr);
}

static const char *default_model(char *buf, size_t n) {
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l > 0) {
        exe[l] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        static const char *rel[] = { "/../share/hearth/stories260K.gguf", "/../models/stories260K.gguf",
                                     "/../../models/stories260K.gguf" };
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(buf, n, "%s%s", exe, rel[i]);
            if (access(buf, R_OK) == 0) return buf;
        }
    }
#ifdef HEARTH_SOURCE_DIR
    snprintf(buf, n, "%s/models/stories260K.gguf", HEARTH_SOURCE_DIR);
    if (access(buf, R_OK) == 0) return buf;
#endif
    return "models/stories260K.gguf";
}

/* KoboldCpp flags accepted and ignored: name and how many values follow (-1: any number
 * of values not starting with "--"). */
static const struct { const char *name; int nval; } ignored[] = {
    { "--usecublas", -1 }, { "--usevulkan", -1 }, { "--useclblast", -1 }, { "--usecpu", 0 },
    { "--usemlock", 0 }, { "--nommap", 0 }, { "--launch", 0 }, { "--skiplauncher", 0 },
    { "--smartcontext", 0 }, { "--blasbatchsize", 1 }, { "--blasthreads", 1 }, { "--ropeconfig", -1 },
    { "--highpriority", 0 }, { "--foreground", 0 }, { "--nocertify", 0 }, { "--remotetunnel", 0 },
    { "--hordeconfig", -1 }, { "--onready", 1 }, { "--preloadstory", 1 }, { "--tensor_split", -1 },
    { "--mmproj", 1 }, { "--sdmodel", 1 }, { "--whispermodel", 1 }, { "--ignoremissing", 0 },
    { "--nofastforward", 0 }, { "--config", 1 }, { "--showgui", 0 }, { "--debugmode", -1 },
};

static int run_once(srv *s, const char *prompt, int max_len) {
    srv_job *j = job_new();
    j->prompt = strdup(prompt);
    j->max_length = max_len;
    j->samp.temp = 0.75f; j->samp.top_k = 100; j->samp.top_p = 0.92f;
    srv_run_job(s, j);
    int rc = 0;
    if (j->finish == FIN_ERROR) { fprintf(stderr, "hearth: %s\n", j->err); rc = 1; }
    else { fwrite(j->text ? j->text : "", 1, j->final_len, stdout); fputc('\n', stdout); }
    job_unref(j);
    return rc;
}

static int run_benchmark(srv *s, const char *csv) {
    int gen = 100 < s->n_ctx / 2 ? 100 : s->n_ctx / 2;
    /* enough text to overflow the context; the trimming keeps its end */
    size_t cap = (size_t)s->n_ctx * 24 + 64, n = 0;
    char *text = malloc(cap);
    if (!text) return 1;
    const char *unit = "Once upon a time, there was a little robot who liked to count the stars. ";
    while (n + strlen(unit) + 1 < cap) { memcpy(text + n, unit, strlen(unit)); n += strlen(unit); }
    text[n] = 0;
    srv_job *j = job_new();
    j->prompt = text;
    j->max_length = gen;
    j->ban_eos = 1;
    j->seed_given = 1; j->samp.seed = 1;
    int saved = s->o.quiet;
    s->o.quiet = 1;
    srv_run_job(s, j);
    s->o.quiet = saved;
    int rc = 0;
    if (j->finish == FIN_ERROR) { fprintf(stderr, "hearth: benchmark failed: %s\n", j->err); rc = 1; }
    else {
        double pp = j->t_process > 0 ? j->n_prompt_tokens / j->t_process : 0;
        double tg = j->t_gen > 0 ? j->n_gen_tokens / j->t_gen : 0;
        printf("Benchmark: %s, context %d, %s\n", s->info->name, s->n_ctx, hearth_ctx_kv_line(s->ctx));
        printf("ProcessingTime: %.3fs\nProcessingSpeed: %.2fT/s\nGenerationTime: %.3fs\nGenerationSpeed: %.2fT/s\nTotalTime: %.3fs\n",
               j->t_process, pp, j->t_gen, tg, j->t_process + j->t_gen);
        printf("Prompt: %d tokens, generated: %d tokens\n", j->n_prompt_tokens, j->n_gen_tokens);
        if (csv) {
            FILE *f = fopen(csv, "a");
            if (!f) { fprintf(stderr, "hearth: cannot write %s\n", csv); rc = 1; }
            else {
                if (ftell(f) == 0) fprintf(f, "Model,ContextSize,ProcessingTime,ProcessingSpeed,GenerationTime,GenerationSpeed,TotalTime\n");
                fprintf(f, "%s,%d,%.3f,%.2f,%.3f,%.2f,%.3f\n", s->info->name, s->n_ctx, j->t_process, pp, j->t_gen, tg,
                        j->t_process + j->t_gen);
                fclose(f);
            }
        }
    }
    job_unref(j);
    return rc;
}

int hearth_serve_main(int argc, char **argv) {
    srv S;
    memset(&S, 0, sizeof S);
    srv *s = &S;
    srv_opts *o = &s->o;
    o->host = "127.0.0.1";
    o->port = 5001;
    o->multiuser = 1;
    o->type_k = o->type_v = -1;
    o->gen_default = 200;
    o->max_body = 8u << 20;
    o->flash_attn = -1;
    int prompt_limit = 100, quantkv = -1, npos = 0;

    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *val = NULL, flag[64];
        if (a[0] == '-' && a[1] == '-' && strchr(a, '=')) {
            size_t l = (size_t)(strchr(a, '=') - a);
            if (l >= sizeof flag) l = sizeof flag - 1;
            memcpy(flag, a, l); flag[l] = 0;
            val = strchr(a, '=') + 1;
            a = flag;
        }
#define VAL() (val ? val : (i + 1 < argc ? argv[++i] : NULL))
#define NEED(v) do { if (!(v)) { fprintf(stderr, "hearth: %s needs a value\n", a); return 2; } } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--model") || !strcmp(a, "-m")) { o->model_path = VAL(); NEED(o->model_path); }
        else if (!strcmp(a, "--port")) { if (parse_int(a, VAL(), 1, 65535, &o->port)) return 2; }
        else if (!strcmp(a, "--host")) { o->host = VAL(); NEED(o->host); }
        else if (!strcmp(a, "--contextsize") || !strcmp(a, "-c")) { if (parse_int(a, VAL(), 16, 1 << 24, &o->n_ctx)) return 2; }
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) { if (parse_int(a, VAL(), 0, 4096, &o->n_threads)) return 2; }
        else if (!strcmp(a, "--gpulayers") || !strcmp(a, "-ngl")) { if (parse_int(a, VAL(), -1, 100000, &o->n_gpu_layers)) return 2; }
        else if (!strcmp(a, "--tensor_split") || !strcmp(a, "--tensor-split") || !strcmp(a, "-ts")) {
            char err[256];
            if (val) {
                const char *w[1] = { val };
                o->n_tensor_split = split_parse(w, 1, o->tensor_split, err, sizeof err);
            } else {
                int n = split_count_words(argv, argc, i + 1);
                o->n_tensor_split = split_parse((const char *const *)(argv + i + 1), n, o->tensor_split, err, sizeof err);
                i += n;
            }
            if (o->n_tensor_split < 0) { fprintf(stderr, "hearth: %s\n", err); return 2; }
        }
        else if (!strcmp(a, "--flashattention") || !strcmp(a, "--flash-attn")) o->flash_attn = 1;
        else if (!strcmp(a, "--noflashattention")) o->flash_attn = 0;
        else if (!strcmp(a, "--quantkv")) { if (parse_int(a, VAL(), 0, 2, &quantkv)) return 2; }
        else if (!strcmp(a, "--cache-type-k") || !strcmp(a, "-ctk") || !strcmp(a, "--cache-type-v") || !strcmp(a, "-ctv")) {
            const char *v = VAL();
            NEED(v);
            int t = hearth_cache_type_from_name(v);
            if (t < 0) { fprintf(stderr, "hearth: %s: unknown cache type '%s' (one of: %s)\n", a, v, hearth_cache_type_list()); return 2; }
            if (!strcmp(a, "--cache-type-k") || !strcmp(a, "-ctk")) o->type_k = t; else o->type_v = t;
        }
        else if (!strcmp(a, "--password")) { o->password = VAL(); NEED(o->password); }
        else if (!strcmp(a, "--multiuser")) {
            if (val) { if (parse_int(a, val, 0, 100000, &o->multiuser)) return 2; }
            else if (i + 1 < argc && is_number(argv[i + 1])) { if (parse_int(a, argv[++i], 0, 100000, &o->multiuser)) return 2; }
            else o->multiuser = 1;
        }
        else if (!strcmp(a, "--noshift")) o->noshift = 1;
        else if (!strcmp(a, "--chatcompletionsadapter")) { o->chat_adapter = VAL(); NEED(o->chat_adapter); }
        else if (!strcmp(a, "--prompt")) { o->prompt = VAL(); NEED(o->prompt); }
        else if (!strcmp(a, "--promptlimit")) { if (parse_int(a, VAL(), 1, 1 << 20, &prompt_limit)) return 2; }
        else if (!strcmp(a, "--benchmark")) {
            o->benchmark = 1;
            if (val) o->benchmark_file = val;
            else if (i + 1 < argc && argv[i + 1][0] != '-' && strstr(argv[i + 1], ".gguf") == NULL) o->benchmark_file = argv[++i];
        }
        else if (!strcmp(a, "--defaultgenamt")) { if (parse_int(a, VAL(), 1, 1 << 20, &o->gen_default)) return 2; }
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else if (!strcmp(a, "--test-token-delay-ms")) { if (parse_int(a, VAL(), 0, 10000, &o->token_delay_ms)) return 2; }
        else if (!strcmp(a, "--test-max-body")) { int mb; if (parse_int(a, VAL(), 1, 1 << 30, &mb)) return 2; o->max_body = (size_t)mb; }
        else if (a[0] == '-' && a[1] == '-') {
            size_t k;
            for (k = 0; k < sizeof ignored / sizeof ignored[0]; k++) if (!strcmp(a, ignored[k].name)) break;
            if (k == sizeof ignored / sizeof ignored[0]) {
                fprintf(stderr, "hearth: unknown flag '%s' (hearth serve --help lists the flags)\n", a);
                return 2;
            }
            fprintf(stderr, "hearth: note: %s is a KoboldCpp flag hearth does not need; ignored\n", a);
            if (!val) {
                if (ignored[k].nval == 1 && i + 1 < argc) i++;
                else if (ignored[k].nval < 0) while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) i++;
            }
        }
        else if (npos == 0) { o->model_path = a; npos++; }
        else if (npos == 1) { if (parse_int("PORT", a, 1, 65535, &o->port)) return 2; npos++; }
        else { fprintf(stderr, "hearth: unexpected argument '%s'\n", a); return 2; }
#undef VAL
#undef NEED
    }
    if (quantkv >= 0) {
        static const char *qn[] = { "f16", "q8_0", "q4_0" };
        int t = hearth_cache_type_from_name(qn[quantkv]);
        if (o->type_k < 0) o->type_k = t;
        if (o->type_v < 0) o->type_v = t;
    }
    /* KoboldCpp: --multiuser N lets N requests in at once (one running, N-1 waiting);
     * 1, the default, means 6 waiting; 0 means none: a busy server answers 503 */
    s->max_waiting = o->multiuser > 1 ? o->multiuser - 1 : o->multiuser == 1 ? 6 : 0;

    char defpath[PATH_MAX + 64];
    if (!o->model_path) o->model_path = default_model(defpath, sizeof defpath);
    int one_shot = o->prompt || o->benchmark;
    if (!one_shot) {
        const char *h = !strcmp(o->host, "0.0.0.0") || !*o->host ? "localhost" : o->host;
        fprintf(stderr, "hearth: loading %s; the page will be at http://%s%s%s:%d/\n", o->model_path,
                strchr(h, ':') ? "[" : "", h, strchr(h, ':') ? "]" : "", o->port);
    }
    if (o->quiet) hearth_log_set_level(HEARTH_LOG_WARN);

    char err[1024];
    hearth_model_params mp = hearth_model_default_params();
    mp.n_threads = o->n_threads;
    mp.n_gpu_layers = o->n_gpu_layers;
    memcpy(mp.tensor_split, o->tensor_split, sizeof mp.tensor_split);
    mp.n_tensor_split = o->n_tensor_split;
    if (!one_shot && isatty(STDERR_FILENO)) mp.progress = load_progress;
    if (hearth_model_load(o->model_path, &mp, &s->model, err, sizeof err) != 0) {
        fprintf(stderr, "hearth: %s\n", err);
        return 1;
    }
    s->info = hearth_model_get_info(s->model);
    hearth_ctx_params cp = hearth_ctx_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    if (o->type_k >= 0) cp.type_k = o->type_k;
    if (o->type_v >= 0) cp.type_v = o->type_v;
    if (o->flash_attn >= 0) cp.flash_attn = o->flash_attn;
    if (hearth_ctx_new(s->model, &cp, &s->ctx, err, sizeof err) != 0) {
        fprintf(stderr, "hearth: %s\n", err);
        hearth_model_free(s->model);
        return 1;
    }
    s->n_ctx = hearth_ctx_n_ctx(s->ctx);
    if (!o->quiet) fprintf(stderr, "hearth: model %s (%s), context %d tokens\n", s->info->name, s->info->arch, s->n_ctx);

    /* what clients are shown: KoboldCpp's "koboldcpp/<file name without .gguf>" */
    const char *base = strrchr(o->model_path, '/');
    base = base ? base + 1 : o->model_path;
    snprintf(s->model_name, sizeof s->model_name, "koboldcpp/%s", base);
    size_t ml = strlen(s->model_name);
    if (ml > 5 && !strcmp(s->model_name + ml - 5, ".gguf")) s->model_name[ml - 5] = 0;

    s->eog = malloc(sizeof(int32_t) * (size_t)(s->info->n_vocab > 0 ? s->info->n_vocab : 1));
    for (int t = 0; s->eog && t < s->info->n_vocab; t++) if (hearth_token_is_eog(s->model, t)) s->eog[s->n_eog++] = t;

    s->adapter = chat_adapter_pick(s, o->chat_adapter, err, sizeof err);
    if (!s->adapter) {
        fprintf(stderr, "hearth: %s\n", err);
        free(s->eog); hearth_ctx_free(s->ctx); hearth_model_free(s->model);
        return 2;
    }
    if (!o->quiet && !one_shot) fprintf(stderr, "hearth: chat format: %s\n", s->adapter->name);

    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    s->t_start = s->idle_since = srv_now();
    int rc;
    if (o->benchmark) rc = run_benchmark(s, o->benchmark_file);
    else if (o->prompt) rc = run_once(s, o->prompt, prompt_limit);
    else if (srv_start_worker(s) != 0) { fprintf(stderr, "hearth: cannot start the worker thread\n"); rc = 1; }
    else rc = http_run(s);
    chat_adapter_free(s->adapter);
    free(s->queue);
    free(s->eog);
    hearth_ctx_free(s->ctx);
    hearth_model_free(s->model);
    return rc;
}

/* params.c: request fields -> a job, checking every type.
 *
 * Both APIs read KoboldCpp's field names (clients send top_k or rep_pen to the OpenAI
 * endpoints too); OpenAI requests also read OpenAI's names. A field of the wrong type is a
 * 400 that names it: KoboldCpp answers such requests with `null`. */
#include "srv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

/* Each getter: 0 when absent or null (out untouched), 1 when set, -1 on a wrong type. */
static int get_num(json_t *o, const char *k, float *out, char *err, size_t errlen) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) FAIL("field '%s' must be a number, not %s", k, type_name(v));
    double d = json_number_value(v);
    if (!isfinite(d)) FAIL("field '%s' must be finite", k);
    *out = (float)d;
    return 1;
}

static int get_int(json_t *o, const char *k, int lo, int hi, int *out, char *err, size_t errlen) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return 0;
    double d;
    if (json_is_integer(v)) d = (double)json_integer_value(v);
    else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v)) d = json_real_value(v);
    else FAIL("field '%s' must be an integer, not %s", k, type_name(v));
    if (d < lo) FAIL("field '%s' must be at least %d", k, lo);
    if (d > hi) d = hi;
    *out = (int)d;
    return 1;
}

static int get_bool(json_t *o, const char *k, int *out, char *err, size_t errlen) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return 0;
    if (json_is_boolean(v)) *out = json_is_true(v);
    else if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) *out = (int)json_integer_value(v);
    else FAIL("field '%s' must be true or false, not %s", k, type_name(v));
    return 1;
}

static int get_str(json_t *o, const char *k, const char **out, char *err, size_t errlen) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) FAIL("field '%s' must be a string, not %s", k, type_name(v));
    *out = json_string_value(v);
    return 1;
}

/* A string or an array of strings (stop_sequence, stop, dry_sequence_breakers). */
static int get_strs_max(json_t *o, const char *k, char **dst, int *n, int max, char *err, size_t errlen) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        if (*n < max && json_string_length(v) > 0) dst[(*n)++] = strdup(json_string_value(v));
        return 1;
    }
    if (!json_is_array(v)) FAIL("field '%s' must be an array of strings, not %s", k, type_name(v));
    size_t i; json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) FAIL("field '%s' must hold strings only; item %zu is %s", k, i, type_name(e));
    }
    json_array_foreach(v, i, e) {
        if (*n >= max) FAIL("field '%s' holds more than %d strings", k, max);
        if (json_string_length(e) > 0) dst[(*n)++] = strdup(json_string_value(e));
    }
    return 1;
}

static int get_strs(json_t *o, const char *k, char **dst, int *n, char *err, size_t errlen) {
    return get_strs_max(o, k, dst, n, SRV_MAX_STOP, err, errlen);
}

#define TRY(x) do { if ((x) < 0) return -1; } while (0)

/* JSON (RFC 8259) as GBNF, for OpenAI's response_format json_object: an object at the top. */
static const char JSON_GRAMMAR[] =
    "root ::= ws object ws\n"
    "value ::= object | array | string | number | (\"true\" | \"false\" | \"null\")\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} ) )* \"\\\"\"\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
    "ws ::= [ \\t\\n]{0,8}\n";

int params_from_json(srv *s, json_t *b, srv_job *j, int openai, char *err, size_t errlen) {
    hearth_sampling *sp = &j->samp;
    /* KoboldCpp's defaults */
    sp->temp = 0.75f; sp->top_k = 100; sp->top_p = 0.92f; sp->min_p = 0.0f; sp->top_a = 0.0f;
    sp->typical = 1.0f; sp->tfs = 1.0f; sp->rep_pen = 1.0f; sp->rep_pen_range = 320; sp->rep_pen_slope = 1.0f;
    j->max_length = s->o.gen_default;

    const char *str = NULL;
    if (openai) {
        json_t *p = json_object_get(b, "prompt");
        if (p && json_is_array(p)) {
            /* OpenAI allows a list of prompts; hearth answers one (n = 1) */
            if (json_array_size(p) != 1 || !json_is_string(json_array_get(p, 0)))
                FAIL("field 'prompt' must be a string or an array of one string");
            j->prompt = strdup(json_string_value(json_array_get(p, 0)));
        }
    }
    if (!j->prompt) {
        TRY(get_str(b, "prompt", &str, err, errlen));
        if (str) j->prompt = strdup(str);
    }
    str = NULL;
    TRY(get_str(b, "memory", &str, err, errlen));
    if (str) j->memory = strdup(str);
    TRY(get_int(b, "max_context_length", 1, 1 << 30, &j->max_context, err, errlen));
    TRY(get_int(b, "max_length", 0, 1 << 30, &j->max_length, err, errlen));
    TRY(get_num(b, "temperature", &sp->temp, err, errlen));
    TRY(get_int(b, "top_k", -1, 1 << 30, &sp->top_k, err, errlen));
    TRY(get_num(b, "top_p", &sp->top_p, err, errlen));
    TRY(get_num(b, "min_p", &sp->min_p, err, errlen));
    TRY(get_num(b, "top_a", &sp->top_a, err, errlen));
    TRY(get_num(b, "typical", &sp->typical, err, errlen));
    TRY(get_num(b, "tfs", &sp->tfs, err, errlen));
    TRY(get_num(b, "rep_pen", &sp->rep_pen, err, errlen));
    TRY(get_int(b, "rep_pen_range", 0, 1 << 30, &sp->rep_pen_range, err, errlen));
    TRY(get_num(b, "rep_pen_slope", &sp->rep_pen_slope, err, errlen));
    TRY(get_num(b, "presence_penalty", &sp->presence_penalty, err, errlen));
    TRY(get_num(b, "frequency_penalty", &sp->frequency_penalty, err, errlen));
    TRY(get_num(b, "dynatemp_range", &sp->dynatemp_range, err, errlen));
    TRY(get_num(b, "dynatemp_exponent", &sp->dynatemp_exponent, err, errlen));
    TRY(get_num(b, "smoothing_factor", &sp->smoothing_factor, err, errlen));
    TRY(get_num(b, "dry_multiplier", &sp->dry_multiplier, err, errlen));
    TRY(get_num(b, "dry_base", &sp->dry_base, err, errlen));
    TRY(get_int(b, "dry_allowed_length", 0, 1 << 20, &sp->dry_allowed_length, err, errlen));
    TRY(get_int(b, "dry_penalty_last_n", 0, 1 << 30, &sp->dry_penalty_last_n, err, errlen));
    TRY(get_strs(b, "dry_sequence_breakers", j->dry_breakers, &j->n_dry_breakers, err, errlen));
    TRY(get_num(b, "xtc_threshold", &sp->xtc_threshold, err, errlen));
    TRY(get_num(b, "xtc_probability", &sp->xtc_probability, err, errlen));
    TRY(get_int(b, "mirostat", 0, 2, &sp->mirostat, err, errlen));
    TRY(get_num(b, "mirostat_tau", &sp->mirostat_tau, err, errlen));
    TRY(get_num(b, "mirostat_eta", &sp->mirostat_eta, err, errlen));
    TRY(get_strs(b, "stop_sequence", j->stop, &j->n_stop, err, errlen));
    TRY(get_bool(b, "trim_stop", &j->trim_stop, err, errlen));
    /* KoboldCpp's phrase bans (banned_strings is SillyTavern's name for them) */
    TRY(get_strs_max(b, "banned_tokens", j->banned, &j->n_banned, SRV_MAX_BANNED, err, errlen));
    TRY(get_strs_max(b, "banned_strings", j->banned, &j->n_banned, SRV_MAX_BANNED, err, errlen));
    for (int i = 0; i < j->n_banned; i++)
        if (strlen(j->banned[i]) > 256) FAIL("a banned phrase is longer than 256 bytes");
    /* three spellings of "never stop at end-of-text": any one of them set bans it */
    int ban1 = 0, ban2 = 0, ban3 = 0;
    TRY(get_bool(b, "ban_eos_token", &ban1, err, errlen));
    TRY(get_bool(b, "use_default_badwordsids", &ban2, err, errlen));
    TRY(get_bool(b, "bypass_eos", &ban3, err, errlen));
    j->ban_eos = ban1 || ban2 || ban3;
    str = NULL;
    TRY(get_str(b, "genkey", &str, err, errlen));
    if (str) snprintf(j->genkey, sizeof j->genkey, "%s", str);

    int seed = -1;
    json_t *sv = json_object_get(b, "sampler_seed");
    if (openai && (!sv || json_is_null(sv))) sv = json_object_get(b, "seed");
    if (sv && !json_is_null(sv)) {
        if (!json_is_integer(sv)) FAIL("field '%s' must be an integer, not %s",
                                       json_object_get(b, "sampler_seed") ? "sampler_seed" : "seed", type_name(sv));
        json_int_t v = json_integer_value(sv);
        if (v >= 0) { sp->seed = (uint64_t)v; j->seed_given = 1; }
        (void)seed;
    }

    json_t *ord = json_object_get(b, "sampler_order");
    if (ord && !json_is_null(ord)) {
        if (!json_is_array(ord)) FAIL("field 'sampler_order' must be an array of integers, not %s", type_name(ord));
        size_t i; json_t *e;
        int max = (int)(sizeof sp->sampler_order / sizeof sp->sampler_order[0]);
        if ((int)json_array_size(ord) > max) FAIL("field 'sampler_order' holds more than %d items", max);
        json_array_foreach(ord, i, e) {
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 6)
                FAIL("field 'sampler_order' must hold integers 0..6; item %zu is not", i);
            sp->sampler_order[i] = (int)json_integer_value(e);
        }
        sp->n_sampler_order = (int)json_array_size(ord);
        if (sp->n_sampler_order == 0) { sp->n_sampler_order = 1; sp->sampler_order[0] = 5; }
    }

    json_t *lb = json_object_get(b, "logit_bias");
    if (lb && !json_is_null(lb)) {
        if (!json_is_object(lb)) FAIL("field 'logit_bias' must be an object of token id -> bias, not %s", type_name(lb));
        size_t n = json_object_size(lb);
        j->bias_tok = malloc(sizeof(int32_t) * (n + 1));
        j->bias_val = malloc(sizeof(float) * (n + 1));
        if (!j->bias_tok || !j->bias_val) FAIL("out of memory");
        const char *key; json_t *val;
        json_object_foreach(lb, key, val) {
            char *end;
            long id = strtol(key, &end, 10);
            if (!*key || *end || id < 0 || id >= s->info->n_vocab)
                FAIL("field 'logit_bias': key '%s' is not a token id (0..%d)", key, s->info->n_vocab - 1);
            if (!json_is_number(val)) FAIL("field 'logit_bias': the bias of token %ld must be a number, not %s", id, type_name(val));
            double d = json_number_value(val);
            j->bias_tok[j->n_bias] = (int32_t)id;
            /* OpenAI's -100 means "never" */
            j->bias_val[j->n_bias++] = d <= -100.0 ? -INFINITY : (float)d;
        }
    }

    if (openai) {
        TRY(get_int(b, "max_tokens", 0, 1 << 30, &j->max_length, err, errlen));
        TRY(get_int(b, "max_completion_tokens", 0, 1 << 30, &j->max_length, err, errlen));
        TRY(get_strs(b, "stop", j->stop, &j->n_stop, err, errlen));
        int nn = 1;
        TRY(get_int(b, "n", 1, 1 << 30, &nn, err, errlen));
        if (nn != 1) FAIL("field 'n': hearth generates one choice per request");
    }
    if (j->n_stop > 0) {
        for (int i = 0; i < j->n_stop; i++)
            if (strlen(j->stop[i]) > 1024) FAIL("a stop string is longer than 1024 bytes");
    }

    /* a GBNF grammar (KoboldCpp's and llama.cpp's field); OpenAI's JSON mode is one too */
    str = NULL;
    TRY(get_str(b, "grammar", &str, err, errlen));
    int retain = 0;
    TRY(get_bool(b, "grammar_retain_state", &retain, err, errlen));  /* accepted; each request starts afresh */
    json_t *rf = openai ? json_object_get(b, "response_format") : NULL;
    if ((!str || !*str) && rf && !json_is_null(rf)) {
        json_t *ty = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        if (!ty || !json_is_string(ty)) FAIL("field 'response_format' must be an object with a string 'type'");
        if (!strcmp(json_string_value(ty), "json_object")) str = JSON_GRAMMAR;
        else if (strcmp(json_string_value(ty), "text") != 0)
            FAIL("field 'response_format': type '%s' is not supported (text, json_object)", json_string_value(ty));
    }
    if (str && *str) {
        if (strlen(str) > 65536) FAIL("the grammar is longer than 64 KiB");
        char gerr[200];
        j->grammar = hearth_grammar_new(s->model, str, gerr, sizeof gerr);
        if (!j->grammar) FAIL("field 'grammar': %s", gerr);
    }
    return 0;
}

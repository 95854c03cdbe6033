/* api_kobold.c: the KoboldAI API as KoboldCpp serves it (shapes in ../shared/kcpp-api). */
#include "srv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEARTH_VERSION "0.1.0"

static int is(http_req *r, const char *method, const char *path) {
    return !strcmp(req_path(r), path) && !strcmp(req_method(r), method);
}

static void reply_busy(http_req *r) {
    reply_error(r, 503, "service_unavailable", "Server is busy; please try again later.");
}

/* Parse a generate request into a queued job; NULL when it already answered. */
srv_job *kobold_job(srv *s, http_req *r, int openai, json_t **body_out) {
    json_t *b = req_json(r);
    if (!b) return NULL;
    if (body_out) *body_out = b;
    srv_job *j = job_new();
    if (!j) { reply_error(r, 500, "server_error", "out of memory"); return NULL; }
    char err[512];
    if (params_from_json(s, b, j, openai, err, sizeof err) != 0) {
        reply_error(r, 400, "bad_input", "%s", err);
        job_unref(j);
        return NULL;
    }
    return j;
}

static char *kobold_event(srv *s, srv_job *j, const char *piece, size_t n, srv_finish fin, void *ud) {
    (void)s; (void)ud;
    json_t *o = json_pack("{s:o,s:o}", "token", json_text(piece, n),
                          "finish_reason", fin == FIN_NONE ? json_null() : json_string(finish_name(fin)));
    if (fin == FIN_ERROR) json_object_set_new(o, "error", json_string(j->err));
    char *d = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!d) return NULL;
    size_t l = strlen(d) + 32;
    char *e = malloc(l);
    if (e) snprintf(e, l, "event: message\ndata: %s\n\n", d);
    free(d);
    return e;
}

static json_t *job_text(srv_job *j, int final) {
    pthread_mutex_lock(&j->mu);
    json_t *t = json_text(j->text ? j->text : "", final ? j->final_len : j->committed);
    pthread_mutex_unlock(&j->mu);
    return t;
}

static void gen_check(srv *s, http_req *r) {
    const char *key = "";
    json_t *b = NULL;
    if (!strcmp(req_method(r), "POST")) {
        if (req_has_body(r)) {   /* the body is optional here */
            b = req_json(r);
            if (!b) return;
            json_t *k = json_object_get(b, "genkey");
            if (k && !json_is_null(k) && !json_is_string(k)) { reply_error(r, 400, "bad_input", "field 'genkey' must be a string"); return; }
            if (json_is_string(k)) key = json_string_value(k);
        }
    }
    pthread_mutex_lock(&s->qmu);
    srv_job *j = NULL;
    if (s->current && (!*key || !strcmp(key, s->current->genkey))) j = s->current;
    else if (s->last_done && (!*key || !strcmp(key, s->last_done->genkey))) j = s->last_done;
    if (j) job_ref(j);
    pthread_mutex_unlock(&s->qmu);
    json_t *text = j ? job_text(j, j->state == JOB_DONE) : json_string("");
    json_t *res = json_pack("{s:[{s:o}]}", "results", "text", text);
    job_unref(j);
    reply_json(r, 200, res);
}

int api_kobold(srv *s, http_req *r) {
    const char *path = req_path(r);
    if (strncmp(path, "/api", 4) != 0) return 0;

    if (is(r, "GET", "/api/v1/model")) {
        reply_json(r, 200, json_pack("{s:s}", "result", s->model_name));
    } else if (is(r, "GET", "/api/v1/info/version")) {
        reply_json(r, 200, json_pack("{s:s}", "result", "1.2.5"));
    } else if (is(r, "GET", "/api/v1/config/max_context_length") || is(r, "GET", "/api/extra/true_max_context_length")) {
        reply_json(r, 200, json_pack("{s:i}", "value", s->n_ctx));
    } else if (is(r, "GET", "/api/v1/config/max_length")) {
        reply_json(r, 200, json_pack("{s:i}", "value", s->o.gen_default));
    } else if (is(r, "GET", "/api/extra/version")) {
        /* "KoboldCpp" is what Kobold Lite and other clients look for to use the extra API */
        reply_json(r, 200, json_pack("{s:s,s:s,s:b,s:b,s:b,s:b,s:s}", "result", "KoboldCpp", "version", "1.76",
                                     "protected", s->o.password && *s->o.password, "txt2img", 0, "vision", 0,
                                     "transcribe", 0, "hearth", HEARTH_VERSION));
    } else if (is(r, "GET", "/api/extra/perf")) {
        pthread_mutex_lock(&s->qmu);
        double now = srv_now();
        json_t *o = json_pack("{s:f,s:f,s:i,s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:b,s:i,s:i,s:i}",
            "last_process", s->perf.last_process, "last_eval", s->perf.last_eval,
            "last_token_count", s->perf.last_token_count, "last_seed", (json_int_t)s->perf.last_seed,
            "total_gens", s->perf.total_gens, "stop_reason", s->perf.stop_reason,
            "total_img_gens", 0, "queue", s->q_n, "idle", s->current ? 0 : 1, "hordeexitcounter", -1,
            "uptime", now - s->t_start, "idletime", s->current ? 0.0 : now - s->idle_since, "quiet", s->o.quiet,
            "last_prompt_tokens", s->perf.last_prompt_tokens, "last_reused_tokens", s->perf.last_reused,
            "last_trimmed_tokens", s->perf.last_trimmed);
        pthread_mutex_unlock(&s->qmu);
        reply_json(r, 200, o);
    } else if (is(r, "GET", "/api/tags")) {
        /* KoboldCpp's Ollama emulation */
        json_t *m = json_pack("{s:s,s:s,s:s,s:I,s:s,s:{s:s,s:s,s:s,s:[s],s:s,s:s}}",
            "name", "koboldcpp", "model", s->model_name, "modified_at", "1970-01-01T00:00:00Z",
            "size", (json_int_t)s->info->file_bytes, "digest", "",
            "details", "parent_model", "", "format", "gguf", "family", s->info->arch,
            "families", s->info->arch, "parameter_size", "", "quantization_level", "");
        reply_json(r, 200, json_pack("{s:[o]}", "models", m));
    } else if (is(r, "GET", "/api/extra/preloadstory")) {
        reply_json(r, 200, json_object());   /* Kobold Lite asks; hearth preloads none */
    } else if (is(r, "POST", "/api/v1/generate")) {
        srv_job *j = kobold_job(s, r, 0, NULL);
        if (!j) return 1;
        if (srv_submit(s, j) != 0) { job_unref(j); reply_busy(r); return 1; }
        req_wait_job(r, j);
        if (j->finish == FIN_ERROR) reply_error(r, 500, "server_error", "%s", j->err);
        else reply_json(r, 200, json_pack("{s:[{s:o,s:s}]}", "results", "text", job_text(j, 1),
                                          "finish_reason", finish_name(j->finish)));
        job_unref(j);
    } else if (is(r, "POST", "/api/extra/generate/stream")) {
        srv_job *j = kobold_job(s, r, 0, NULL);
        if (!j) return 1;
        if (srv_submit(s, j) != 0) { job_unref(j); reply_busy(r); return 1; }
        reply_sse(r, j, kobold_event, NULL, NULL, NULL);
        job_unref(j);
    } else if (is(r, "GET", "/api/extra/generate/check") || is(r, "POST", "/api/extra/generate/check")) {
        gen_check(s, r);
    } else if (is(r, "POST", "/api/extra/abort")) {
        const char *key = "";
        if (req_has_body(r)) {
            json_t *b = req_json(r);
            if (!b) return 1;
            json_t *k = json_object_get(b, "genkey");
            if (k && !json_is_null(k) && !json_is_string(k)) { reply_error(r, 400, "bad_input", "field 'genkey' must be a string"); return 1; }
            if (json_is_string(k)) key = json_string_value(k);
        }
        int ok = srv_abort(s, key);
        reply_json(r, 200, json_pack("{s:s,s:s}", "success", ok ? "true" : "false", "done", "true"));
    } else if (is(r, "POST", "/api/extra/tokencount")) {
        json_t *b = req_json(r);
        if (!b) return 1;
        json_t *p = json_object_get(b, "prompt");
        if (!json_is_string(p)) { reply_error(r, 400, "bad_input", "field 'prompt' must be a string"); return 1; }
        int32_t *ids = NULL;
        int n = srv_tokenize(s, json_string_value(p), s->info->add_bos && s->info->bos >= 0, 1, &ids);
        if (n < 0) { reply_error(r, 500, "server_error", "tokenization failed"); return 1; }
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(arr, json_integer(ids[i]));
        free(ids);
        reply_json(r, 200, json_pack("{s:i,s:o}", "value", n, "ids", arr));
    } else {
        static const char *known[] = { "/api/v1/model", "/api/v1/info/version", "/api/v1/config/max_context_length",
            "/api/v1/config/max_length", "/api/extra/version", "/api/extra/true_max_context_length", "/api/extra/perf",
            "/api/tags", "/api/extra/preloadstory", "/api/v1/generate", "/api/extra/generate/stream", "/api/extra/generate/check",
            "/api/extra/abort", "/api/extra/tokencount" };
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (!strcmp(path, known[i])) {
                reply_error(r, 405, "bad_method", "%s does not take %s", path, req_method(r));
                return 1;
            }
        return 0;
    }
    return 1;
}

/* api_openai.c: /v1/completions, /v1/chat/completions and /v1/models, over the same jobs
 * as the KoboldAI API. usage counts real tokens (KoboldCpp always says 100/100/200). */
#include "srv.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct oai_stream {
    int chat;
    int include_usage;
    char id[48];
    long created;
    int role_sent;
} oai_stream;

static atomic_uint g_ids;

static json_t *usage_of(srv_job *j) {
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", j->n_prompt_tokens, "completion_tokens", j->n_gen_tokens,
                     "total_tokens", j->n_prompt_tokens + j->n_gen_tokens);
}

static char *data_line(json_t *o) {
    char *d = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!d) return NULL;
    size_t l = strlen(d) + 16;
    char *e = malloc(l);
    if (e) snprintf(e, l, "data: %s\n\n", d);
    free(d);
    return e;
}

static char *oai_event(srv *s, srv_job *j, const char *piece, size_t n, srv_finish fin, void *ud) {
    oai_stream *st = ud;
    json_t *reason = fin == FIN_NONE ? json_null() : json_string(finish_name(fin) ? finish_name(fin) : "stop");
    json_t *choice;
    if (st->chat) {
        json_t *delta = json_object();
        if (!st->role_sent) { json_object_set_new(delta, "role", json_string("assistant")); st->role_sent = 1; }
        json_object_set_new(delta, "content", json_text(piece, n));
        choice = json_pack("{s:i,s:o,s:o}", "index", 0, "finish_reason", reason, "delta", delta);
    } else {
        choice = json_pack("{s:i,s:o,s:o}", "index", 0, "finish_reason", reason, "text", json_text(piece, n));
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", st->id,
                          "object", st->chat ? "chat.completion.chunk" : "text_completion",
                          "created", (json_int_t)st->created, "model", s->model_name, "choices", choice);
    if (fin == FIN_ERROR) json_object_set_new(o, "error", json_pack("{s:s,s:s}", "message", j->err, "type", "server_error"));
    char *e = data_line(o);
    if (fin != FIN_NONE && st->include_usage && e) {
        json_t *u = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", st->id,
                              "object", st->chat ? "chat.completion.chunk" : "text_completion",
                              "created", (json_int_t)st->created, "model", s->model_name, "choices", "usage", usage_of(j));
        char *e2 = data_line(u);
        if (e2) {
            char *both = malloc(strlen(e) + strlen(e2) + 1);
            if (both) { strcpy(both, e); strcat(both, e2); free(e); e = both; }
            free(e2);
        }
    }
    return e;
}

static int completion(srv *s, http_req *r, int chat) {
    json_t *b = NULL;
    srv_job *j = kobold_job(s, r, 1, &b);
    if (!j) return 1;
    char err[512];
    if (chat) {
        json_t *msgs = json_object_get(b, "messages");
        if (!msgs) { job_unref(j); reply_error(r, 400, "bad_input", "field 'messages' is required"); return 1; }
        if (chat_build_prompt(s->adapter, msgs, j, err, sizeof err) != 0) {
            job_unref(j); reply_error(r, 400, "bad_input", "%s", err); return 1;
        }
    } else if (!json_object_get(b, "prompt")) {
        job_unref(j); reply_error(r, 400, "bad_input", "field 'prompt' is required"); return 1;
    }
    int stream = 0, include_usage = 0;
    json_t *sv = json_object_get(b, "stream");
    if (sv && !json_is_null(sv)) {
        if (!json_is_boolean(sv)) { job_unref(j); reply_error(r, 400, "bad_input", "field 'stream' must be true or false"); return 1; }
        stream = json_is_true(sv);
    }
    json_t *so = json_object_get(b, "stream_options");
    if (so && json_is_object(so)) include_usage = json_is_true(json_object_get(so, "include_usage"));

    if (srv_submit(s, j) != 0) {
        job_unref(j);
        reply_error(r, 503, "service_unavailable", "Server is busy; please try again later.");
        return 1;
    }
    unsigned id = atomic_fetch_add(&g_ids, 1) + 1;
    long created = (long)time(NULL);
    if (stream) {
        oai_stream *st = calloc(1, sizeof *st);
        if (!st) { srv_cancel(s, j); job_unref(j); reply_error(r, 500, "server_error", "out of memory"); return 1; }
        st->chat = chat; st->include_usage = include_usage; st->created = created;
        snprintf(st->id, sizeof st->id, "%s-%u", chat ? "chatcmpl" : "cmpl", id);
        reply_sse(r, j, oai_event, "data: [DONE]\n\n", st, free);
        job_unref(j);
        return 1;
    }
    req_wait_job(r, j);
    if (j->finish == FIN_ERROR) { reply_error(r, 500, "server_error", "%s", j->err); job_unref(j); return 1; }
    pthread_mutex_lock(&j->mu);
    json_t *text = json_text(j->text ? j->text : "", j->final_len);
    pthread_mutex_unlock(&j->mu);
    char ids[48];
    snprintf(ids, sizeof ids, "%s-%u", chat ? "chatcmpl" : "cmpl", id);
    json_t *choice = chat
        ? json_pack("{s:i,s:{s:s,s:o,s:[]},s:s}", "index", 0, "message", "role", "assistant", "content", text,
                    "tool_calls", "finish_reason", finish_name(j->finish))
        : json_pack("{s:o,s:i,s:s}", "text", text, "index", 0, "finish_reason", finish_name(j->finish));
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:o,s:[o]}", "id", ids, "object", chat ? "chat.completion" : "text_completion",
                          "created", (json_int_t)created, "model", s->model_name, "usage", usage_of(j), "choices", choice);
    job_unref(j);
    reply_json(r, 200, o);
    return 1;
}

int api_openai(srv *s, http_req *r) {
    const char *p = req_path(r), *m = req_method(r);
    if (!strcmp(p, "/v1/models")) {
        if (strcmp(m, "GET")) { reply_error(r, 405, "bad_method", "/v1/models takes GET"); return 1; }
        reply_json(r, 200, json_pack("{s:s,s:[{s:s,s:s,s:I,s:s,s:[],s:s}]}", "object", "list", "data",
                                     "id", s->model_name, "object", "model", "created", (json_int_t)time(NULL),
                                     "owned_by", "koboldcpp", "permission", "root", "koboldcpp"));
        return 1;
    }
    int chat = !strcmp(p, "/v1/chat/completions");
    if (chat || !strcmp(p, "/v1/completions")) {
        if (strcmp(m, "POST")) { reply_error(r, 405, "bad_method", "%s takes POST", p); return 1; }
        return completion(s, r, chat);
    }
    return 0;
}

/* chat.c: OpenAI chat messages -> one prompt, through a chat format ("adapter").
 *
 * An adapter is KoboldCpp's six strings around each role's turn. The built-in ones cover
 * the common families; --chatcompletionsadapter picks one by name or reads KoboldCpp's
 * adapter JSON; without it the model's tokenizer.chat_template is recognised by its
 * marker tokens, and a model without a template gets Alpaca (KoboldCpp's default). */
#include "srv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const chat_adapter builtin[] = {
    { "alpaca", "", "\n\n", "\n### Instruction:\n", "\n", "\n### Response:\n", "\n" },
    { "chatml", "<|im_start|>system\n", "<|im_end|>\n", "<|im_start|>user\n", "<|im_end|>\n",
      "<|im_start|>assistant\n", "<|im_end|>\n" },
    { "llama-2", "[INST] <<SYS>>\n", "\n<</SYS>>\n\n", "[INST] ", " [/INST]", " ", " </s>" },
    { "mistral", "[INST] ", " [/INST]", "[INST] ", " [/INST]", "", "</s>" },
    { "llama-3", "<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>",
      "<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>",
      "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>" },
    { "gemma", "<start_of_turn>user\n", "<end_of_turn>\n", "<start_of_turn>user\n", "<end_of_turn>\n",
      "<start_of_turn>model\n", "<end_of_turn>\n" },
    { "vicuna", "", "\n\n", "USER: ", "\n", "ASSISTANT: ", "\n" },
};

static const chat_adapter *by_name(const char *name) {
    /* KoboldCpp's spellings too ("ChatML", "Llama 3 Chat", "Mistral-V7"...): compare the
     * letters and digits only, and accept a name that starts with a built-in one */
    char a[64] = {0};
    int n = 0;
    for (const char *p = name; *p && n < 63; p++) if (isalnum((unsigned char)*p)) a[n++] = (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        char b[64] = {0};
        int m = 0;
        for (const char *p = builtin[i].name; *p; p++) if (isalnum((unsigned char)*p)) b[m++] = *p;
        if (strncmp(a, b, (size_t)m) == 0) return &builtin[i];
    }
    if (strncmp(a, "llama2", 6) == 0) return &builtin[2];
    return NULL;
}

static const chat_adapter *from_file(const char *path, char *err, size_t errlen) {
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) { snprintf(err, errlen, "%s: %s (line %d)", path, je.text, je.line); return NULL; }
    if (!json_is_object(o)) { snprintf(err, errlen, "%s: an adapter is a JSON object", path); json_decref(o); return NULL; }
    static const char *keys[] = { "system_start", "system_end", "user_start", "user_end", "assistant_start", "assistant_end" };
    const char *v[6];
    for (int i = 0; i < 6; i++) {
        json_t *e = json_object_get(o, keys[i]);
        if (e && !json_is_string(e)) {
            snprintf(err, errlen, "%s: '%s' must be a string", path, keys[i]);
            json_decref(o); return NULL;
        }
        v[i] = strdup(e ? json_string_value(e) : "");
    }
    chat_adapter *a = malloc(sizeof *a);
    const char *slash = strrchr(path, '/');
    a->name = strdup(slash ? slash + 1 : path);
    a->system_start = v[0]; a->system_end = v[1]; a->user_start = v[2];
    a->user_end = v[3]; a->assistant_start = v[4]; a->assistant_end = v[5];
    json_decref(o);
    return a;   /* lives as long as the server */
}

const chat_adapter *chat_adapter_pick(srv *s, const char *name, char *err, size_t errlen) {
    if (name && *name && strcasecmp(name, "AutoGuess") != 0) {
        size_t l = strlen(name);
        if (l > 5 && strcasecmp(name + l - 5, ".json") == 0) return from_file(name, err, errlen);
        const chat_adapter *a = by_name(name);
        if (!a) {
            snprintf(err, errlen, "unknown chat adapter '%s': use alpaca, chatml, llama-2, mistral, llama-3, "
                     "gemma, vicuna or a KoboldCpp adapter .json file", name);
        }
        return a;
    }
    char *t = s->model ? hearth_model_meta_str(s->model, "tokenizer.chat_template") : NULL;
    const chat_adapter *a = &builtin[0];
    if (t) {
        if (strstr(t, "<|im_start|>")) a = &builtin[1];
        else if (strstr(t, "<|start_header_id|>")) a = &builtin[4];
        else if (strstr(t, "<start_of_turn>")) a = &builtin[5];
        else if (strstr(t, "<<SYS>>")) a = &builtin[2];
        else if (strstr(t, "[INST]")) a = &builtin[3];
        free(t);
    }
    return a;
}

void chat_adapter_free(const chat_adapter *a) {
    if (!a || (a >= builtin && a < builtin + sizeof builtin / sizeof builtin[0])) return;
    free((char *)a->name); free((char *)a->system_start); free((char *)a->system_end);
    free((char *)a->user_start); free((char *)a->user_end); free((char *)a->assistant_start);
    free((char *)a->assistant_end);
    free((chat_adapter *)a);
}

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np; b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void add_stop(srv_job *j, const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (!n || j->n_stop >= SRV_MAX_STOP) return;
    for (int i = 0; i < j->n_stop; i++) if (strlen(j->stop[i]) == n && !memcmp(j->stop[i], s, n)) return;
    j->stop[j->n_stop++] = strndup(s, n);
}

int chat_build_prompt(const chat_adapter *a, json_t *messages, srv_job *j, char *err, size_t errlen) {
    if (!json_is_array(messages)) { snprintf(err, errlen, "field 'messages' must be an array of messages"); return -1; }
    if (json_array_size(messages) == 0) { snprintf(err, errlen, "field 'messages' is empty"); return -1; }
    sbuf mem = {0}, b = {0};
    sb_str(&b, "");
    int leading = 1;   /* leading system messages become memory: trimming keeps them */
    size_t i; json_t *m;
    json_array_foreach(messages, i, m) {
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role)) {
            snprintf(err, errlen, "messages[%zu] must be an object with a string 'role'", i);
            free(b.p); return -1;
        }
        const char *r = json_string_value(role), *st, *en;
        if (!strcmp(r, "system") || !strcmp(r, "developer")) { st = a->system_start; en = a->system_end; }
        else if (!strcmp(r, "user") || !strcmp(r, "tool")) { st = a->user_start; en = a->user_end; }
        else if (!strcmp(r, "assistant")) { st = a->assistant_start; en = a->assistant_end; }
        else { snprintf(err, errlen, "messages[%zu]: unknown role '%s'", i, r); free(b.p); free(mem.p); return -1; }
        if (strcmp(r, "system") && strcmp(r, "developer")) leading = 0;
        sbuf *out = leading ? &mem : &b;
        sb_str(out, st);
        if (json_is_string(content)) sb_str(out, json_string_value(content));
        else if (json_is_array(content)) {
            size_t k; json_t *part;
            json_array_foreach(content, k, part) {
                json_t *text = json_object_get(part, "text");
                if (json_is_string(text)) sb_str(out, json_string_value(text));
            }
        } else if (content && !json_is_null(content)) {
            snprintf(err, errlen, "messages[%zu].content must be a string or an array of parts", i);
            free(b.p); free(mem.p); return -1;
        }
        sb_str(out, en);
    }
    if (mem.p) { free(j->memory); j->memory = mem.p; }
    sb_str(&b, a->assistant_start);
    free(j->prompt);
    j->prompt = b.p;
    add_stop(j, a->user_start);
    add_stop(j, a->assistant_end);
    return 0;
}

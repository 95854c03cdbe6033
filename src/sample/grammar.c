/* Grammar-constrained sampling with GBNF (the grammar notation KoboldCpp and llama.cpp take
 * in a request's "grammar" field).
 *
 * Parsing turns the text into rules; each rule is a list of alternatives and each
 * alternative a sequence of elements ending in G_END. An element is a character set (a
 * list of code-point ranges, maybe negated) or a reference to a rule. Groups, repetition
 * (* + ? {m,n}) and literals are lowered to plain rules at parse time, so matching sees
 * only sets and references.
 *
 * Matching keeps a set of stacks. A stack lists, innermost last, where each open
 * alternative continues; its top always points at a character set (references are
 * expanded as soon as they reach the top). A code point moves every stack whose top set
 * holds it; the grammar may end where a stack is empty. To mask the logits, each token's
 * text is run through a copy of the stacks, which is cheap next to a forward pass. */
#include "sample/grammar.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { G_END = 0, G_SET = 1, G_REF = 2 };

typedef struct g_elem {
    int type;
    int rule;              /* G_REF */
    int neg, n_ranges;     /* G_SET: ranges at ranges[2i], ranges[2i+1] (inclusive) */
    uint32_t *ranges;
} g_elem;

typedef struct g_rule {
    char *name;
    int defined;
    g_elem **alts;         /* each alternative: elements up to a G_END */
    int n_alts;
} g_rule;

typedef struct g_stack { const g_elem **e; int n; } g_stack;
typedef struct g_set { g_stack *s; int n, cap; } g_set;

struct grammar {
    g_rule *rules; int n_rules;
    g_set cur;
    uint8_t pending[4]; int n_pending;   /* bytes of a code point split across tokens */
    char **pieces; int *piece_len; int n_vocab; int32_t eos;
};

#define MAX_DEPTH 256      /* nesting of references while expanding (left recursion stops here) */
#define MAX_STACKS 4096

/* ---- parsing ---- */

typedef struct parser {
    grammar *g;
    const char *p, *start;
    char *err; size_t errlen;
    int failed;
} parser;

static void perr(parser *P, const char *msg) {
    if (P->failed) return;
    int line = 1;
    for (const char *q = P->start; q < P->p; q++) line += *q == '\n';
    snprintf(P->err, P->errlen, "grammar: %s at line %d near '%.12s'", msg, line, P->p);
    P->failed = 1;
}

static void skip_space(parser *P, int newlines) {
    for (;;) {
        char c = *P->p;
        if (c == '#') { while (*P->p && *P->p != '\n') P->p++; continue; }
        if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) { P->p++; continue; }
        /* a newline followed by indentation continues the rule */
        if (c == '\n' && (P->p[1] == ' ' || P->p[1] == '\t')) { P->p++; continue; }
        return;
    }
}

static int is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int rule_id(parser *P, const char *name, size_t n) {
    grammar *g = P->g;
    for (int i = 0; i < g->n_rules; i++)
        if (strlen(g->rules[i].name) == n && !memcmp(g->rules[i].name, name, n)) return i;
    g_rule *r = realloc(g->rules, sizeof *r * (size_t)(g->n_rules + 1));
    if (!r) { perr(P, "out of memory"); return -1; }
    g->rules = r;
    memset(&r[g->n_rules], 0, sizeof *r);
    r[g->n_rules].name = strndup(name, n);
    if (!r[g->n_rules].name) { perr(P, "out of memory"); return -1; }
    return g->n_rules++;
}

static int new_rule(parser *P) {
    char name[32];
    snprintf(name, sizeof name, " %d", P->g->n_rules);   /* a space: no user rule has it */
    return rule_id(P, name, strlen(name));
}

/* An alternative under construction. */
typedef struct alt { g_elem *e; int n, cap; } alt;

static int alt_push(parser *P, alt *a, g_elem el) {
    if (a->n == a->cap) {
        int nc = a->cap ? a->cap * 2 : 8;
        g_elem *ne = realloc(a->e, sizeof *ne * (size_t)nc);
        if (!ne) { perr(P, "out of memory"); free(el.ranges); return -1; }
        a->e = ne; a->cap = nc;
    }
    a->e[a->n++] = el;
    return 0;
}

static void alt_free(alt *a) {
    for (int i = 0; i < a->n; i++) free(a->e[i].ranges);
    free(a->e);
    a->e = NULL; a->n = a->cap = 0;
}

static int add_alt(parser *P, int rule, alt *a) {
    g_elem end = { G_END, 0, 0, 0, NULL };
    if (alt_push(P, a, end)) return -1;
    g_rule *r = &P->g->rules[rule];
    g_elem **na = realloc(r->alts, sizeof *na * (size_t)(r->n_alts + 1));
    if (!na) { perr(P, "out of memory"); return -1; }
    r->alts = na;
    r->alts[r->n_alts++] = a->e;
    a->e = NULL; a->n = a->cap = 0;
    return 0;
}

static g_elem copy_elem(parser *P, const g_elem *e) {
    g_elem c = *e;
    if (e->type == G_SET) {
        c.ranges = malloc(sizeof(uint32_t) * 2 * (size_t)(e->n_ranges ? e->n_ranges : 1));
        if (!c.ranges) { perr(P, "out of memory"); c.n_ranges = 0; return c; }
        memcpy(c.ranges, e->ranges, sizeof(uint32_t) * 2 * (size_t)e->n_ranges);
    }
    return c;
}

static g_elem ref_elem(int rule) { g_elem e = { G_REF, rule, 0, 0, NULL }; return e; }

/* One UTF-8 code point from the grammar text (or an escape). */
static uint32_t read_char(parser *P) {
    const unsigned char *s = (const unsigned char *)P->p;
    if (*s == '\\') {
        P->p += 2;
        switch (s[1]) {
        case 'n': return '\n';
        case 't': return '\t';
        case 'r': return '\r';
        case '\\': case '"': case '\'': case ']': case '[': case '-': case '^': return s[1];
        case 'x': case 'u': case 'U': {
            int n = s[1] == 'x' ? 2 : s[1] == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (int i = 0; i < n; i++) {
                char c = P->p[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (d < 0) { perr(P, "bad hex escape"); return 0; }
                v = v * 16 + (uint32_t)d;
            }
            P->p += n;
            return v;
        }
        default: perr(P, "unknown escape"); return 0;
        }
    }
    if (*s < 0x80) { P->p++; return *s; }
    int n = (*s & 0xE0) == 0xC0 ? 2 : (*s & 0xF0) == 0xE0 ? 3 : (*s & 0xF8) == 0xF0 ? 4 : 0;
    if (!n) { perr(P, "invalid UTF-8"); return 0; }
    uint32_t v = *s & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { perr(P, "invalid UTF-8"); return 0; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    P->p += n;
    return v;
}

static int parse_alts(parser *P, int rule, int nested);

/* A sequence of items up to '|', ')' or the end of the rule. */
static int parse_seq(parser *P, alt *a, int nested) {
    for (;;) {
        skip_space(P, nested);
        char c = *P->p;
        int first = a->n;     /* where the last item starts, for repetition */
        if (c == '"') {
            P->p++;
            while (*P->p && *P->p != '"') {
                uint32_t v = read_char(P);
                if (P->failed) return -1;
                g_elem e = { G_SET, 0, 0, 1, malloc(sizeof(uint32_t) * 2) };
                if (!e.ranges) { perr(P, "out of memory"); return -1; }
                e.ranges[0] = e.ranges[1] = v;
                if (alt_push(P, a, e)) return -1;
            }
            if (*P->p != '"') { perr(P, "unterminated string"); return -1; }
            P->p++;
        } else if (c == '[' || c == '.') {
            g_elem e = { G_SET, 0, 0, 0, NULL };
            int cap = 4;
            e.ranges = malloc(sizeof(uint32_t) * 2 * (size_t)cap);
            if (!e.ranges) { perr(P, "out of memory"); return -1; }
            if (c == '.') { P->p++; e.neg = 1; }   /* anything: the complement of nothing */
            else {
                P->p++;
                if (*P->p == '^') { e.neg = 1; P->p++; }
                while (*P->p && *P->p != ']') {
                    uint32_t lo = read_char(P), hi = lo;
                    if (*P->p == '-' && P->p[1] && P->p[1] != ']') { P->p++; hi = read_char(P); }
                    if (P->failed) { free(e.ranges); return -1; }
                    if (e.n_ranges == cap) {
                        cap *= 2;
                        uint32_t *nr = realloc(e.ranges, sizeof(uint32_t) * 2 * (size_t)cap);
                        if (!nr) { free(e.ranges); perr(P, "out of memory"); return -1; }
                        e.ranges = nr;
                    }
                    e.ranges[2 * e.n_ranges] = lo; e.ranges[2 * e.n_ranges + 1] = hi;
                    e.n_ranges++;
                }
                if (*P->p != ']') { free(e.ranges); perr(P, "unterminated character class"); return -1; }
                P->p++;
            }
            if (alt_push(P, a, e)) return -1;
        } else if (c == '(') {
            P->p++;
            int r = new_rule(P);
            if (r < 0 || parse_alts(P, r, 1)) return -1;
            skip_space(P, 1);
            if (*P->p != ')') { perr(P, "expected ')'"); return -1; }
            P->p++;
            if (alt_push(P, a, ref_elem(r))) return -1;
        } else if (is_name_char(c)) {
            const char *s = P->p;
            while (is_name_char(*P->p)) P->p++;
            const char *q = P->p;
            skip_space(P, 0);
            if (P->p[0] == ':' && P->p[1] == ':' && P->p[2] == '=') { P->p = s; return 0; } /* next rule */
            P->p = q;
            int r = rule_id(P, s, (size_t)(q - s));
            if (r < 0 || alt_push(P, a, ref_elem(r))) return -1;
        } else {
            return 0;   /* '|', ')', newline, end */
        }
        /* repetition of the item just read */
        char op = *P->p;
        if (op != '*' && op != '+' && op != '?' && op != '{') continue;
        int mn = 0, mx = -1;
        if (op == '{') {
            P->p++;
            char *e;
            long v = strtol(P->p, &e, 10);
            if (e == P->p || v < 0 || v > 1000) { perr(P, "bad repetition count"); return -1; }
            mn = (int)v; mx = mn; P->p = e;
            if (*P->p == ',') {
                P->p++;
                if (*P->p == '}') mx = -1;
                else {
                    v = strtol(P->p, &e, 10);
                    if (e == P->p || v < mn || v > 1000) { perr(P, "bad repetition count"); return -1; }
                    mx = (int)v; P->p = e;
                }
            }
            if (*P->p != '}') { perr(P, "expected '}'"); return -1; }
        } else {
            mn = op == '+' ? 1 : 0;
            mx = op == '?' ? 1 : -1;
        }
        P->p++;
        /* the item becomes a rule of its own */
        int item = new_rule(P);
        if (item < 0) return -1;
        alt it = { 0 };
        for (int i = first; i < a->n; i++) if (alt_push(P, &it, copy_elem(P, &a->e[i]))) { alt_free(&it); return -1; }
        if (add_alt(P, item, &it)) { alt_free(&it); return -1; }
        for (int i = first; i < a->n; i++) free(a->e[i].ranges);
        a->n = first;
        for (int i = 0; i < mn; i++) if (alt_push(P, a, ref_elem(item))) return -1;
        if (mx < 0) {
            /* star ::= item star | empty */
            int star = new_rule(P);
            if (star < 0) return -1;
            alt s1 = { 0 }, s2 = { 0 };
            if (alt_push(P, &s1, ref_elem(item)) || alt_push(P, &s1, ref_elem(star)) || add_alt(P, star, &s1) || add_alt(P, star, &s2)) {
                alt_free(&s1); return -1;
            }
            if (alt_push(P, a, ref_elem(star))) return -1;
        } else {
            /* up to mx - mn more: opt_k ::= item opt_{k-1} | empty */
            int prev = -1;
            for (int k = 0; k < mx - mn; k++) {
                int o = new_rule(P);
                if (o < 0) return -1;
                alt s1 = { 0 }, s2 = { 0 };
                if (alt_push(P, &s1, ref_elem(item)) || (prev >= 0 && alt_push(P, &s1, ref_elem(prev))) ||
                    add_alt(P, o, &s1) || add_alt(P, o, &s2)) { alt_free(&s1); return -1; }
                prev = o;
            }
            if (prev >= 0 && alt_push(P, a, ref_elem(prev))) return -1;
        }
    }
}

static int parse_alts(parser *P, int rule, int nested) {
    for (;;) {
        alt a = { 0 };
        if (parse_seq(P, &a, nested) || add_alt(P, rule, &a)) { alt_free(&a); return -1; }
        skip_space(P, nested);
        if (*P->p != '|') return 0;
        P->p++;
    }
}

static int parse(parser *P) {
    for (;;) {
        skip_space(P, 1);
        if (!*P->p) break;
        const char *s = P->p;
        while (is_name_char(*P->p)) P->p++;
        if (P->p == s) { perr(P, "expected a rule name"); return -1; }
        int r = rule_id(P, s, (size_t)(P->p - s));
        if (r < 0) return -1;
        if (P->g->rules[r].defined) { perr(P, "rule defined twice"); return -1; }
        P->g->rules[r].defined = 1;
        skip_space(P, 0);
        if (strncmp(P->p, "::=", 3) != 0) { perr(P, "expected '::='"); return -1; }
        P->p += 3;
        if (parse_alts(P, r, 0)) return -1;
        skip_space(P, 0);
        if (*P->p && *P->p != '\n' && !is_name_char(*P->p)) { perr(P, "unexpected character"); return -1; }
    }
    for (int i = 0; i < P->g->n_rules; i++) {
        g_rule *r = &P->g->rules[i];
        if (r->name[0] != ' ' && !r->defined) {
            snprintf(P->err, P->errlen, "grammar: rule '%s' is used but not defined", r->name);
            return -1;
        }
    }
    return 0;
}

/* ---- matching ---- */

static void set_clear(g_set *s) {
    for (int i = 0; i < s->n; i++) free(s->s[i].e);
    s->n = 0;
}

static void set_free(g_set *s) { set_clear(s); free(s->s); s->s = NULL; s->cap = 0; }

static int stack_eq(const g_stack *a, const g_elem *const *e, int n) {
    return a->n == n && !memcmp(a->e, e, sizeof *e * (size_t)n);
}

/* Adds a copy of e[0..n) unless present; -1 on out of memory or too many stacks. */
static int set_add(g_set *s, const g_elem *const *e, int n) {
    for (int i = 0; i < s->n; i++) if (stack_eq(&s->s[i], e, n)) return 0;
    if (s->n >= MAX_STACKS) return -1;
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 16;
        g_stack *ns = realloc(s->s, sizeof *ns * (size_t)nc);
        if (!ns) return -1;
        s->s = ns; s->cap = nc;
    }
    g_stack st = { malloc(sizeof *e * (size_t)(n ? n : 1)), n };
    if (!st.e) return -1;
    memcpy(st.e, e, sizeof *e * (size_t)n);
    s->s[s->n++] = st;
    return 0;
}

/* Expand references at the top of e[0..n) until every resulting stack tops on a set. */
static int expand(const grammar *g, const g_elem **e, int n, g_set *out, int depth) {
    while (n > 0 && e[n - 1]->type == G_END) n--;
    if (n == 0 || e[n - 1]->type == G_SET) return set_add(out, e, n);
    if (depth > MAX_DEPTH) return -1;
    const g_elem *ref = e[n - 1];
    const g_rule *r = &g->rules[ref->rule];
    const g_elem *buf[n + 1];
    memcpy(buf, e, sizeof *e * (size_t)n);
    /* what follows the reference, unless nothing does: then the reference is a tail call
     * and leaves no frame, so a repetition does not grow the stack */
    int m = n - 1;
    if (ref[1].type != G_END) buf[m++] = ref + 1;
    for (int a = 0; a < r->n_alts; a++) {
        buf[m] = r->alts[a];
        if (expand(g, buf, m + 1, out, depth + 1)) return -1;
    }
    return 0;
}

static int set_has(const g_elem *e, uint32_t c) {
    int in = 0;
    for (int i = 0; i < e->n_ranges && !in; i++) in = c >= e->ranges[2 * i] && c <= e->ranges[2 * i + 1];
    return in != e->neg;
}

/* next = the stacks of cur moved past code point c. */
static int advance(const grammar *g, const g_set *cur, uint32_t c, g_set *next) {
    for (int i = 0; i < cur->n; i++) {
        const g_stack *s = &cur->s[i];
        if (s->n == 0 || !set_has(s->e[s->n - 1], c)) continue;
        const g_elem *buf[s->n];
        memcpy(buf, s->e, sizeof *buf * (size_t)s->n);
        buf[s->n - 1]++;
        if (expand(g, buf, s->n, next, 0)) return -1;
    }
    return 0;
}

static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };

/* Decode UTF-8 from pending + bytes; calls advance per code point. Returns the stacks
 * left (in *cur, swapped with scratch), or -1 when no stack survives. */
static int run_bytes(const grammar *g, g_set *cur, g_set *tmp, uint8_t *pend, int *n_pend, const char *bytes, int n) {
    for (int i = 0; i < n; i++) {
        pend[(*n_pend)++] = (uint8_t)bytes[i];
        uint8_t b0 = pend[0];
        int need = b0 < 0x80 ? 1 : (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
        if (!need) return -1;
        if (*n_pend > 1 && (pend[*n_pend - 1] & 0xC0) != 0x80) return -1;
        if (*n_pend < need) continue;
        uint32_t c = need == 1 ? b0 : (uint32_t)(b0 & (0x7F >> need));
        for (int k = 1; k < need; k++) c = (c << 6) | (pend[k] & 0x3F);
        if (c < min_cp[need] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return -1; /* overlong or not a character */
        *n_pend = 0;
        set_clear(tmp);
        if (advance(g, cur, c, tmp) || tmp->n == 0) return -1;
        g_set t = *cur; *cur = *tmp; *tmp = t;
    }
    if (*n_pend) {
        /* a code point cut short: some stack must take one that starts with these bytes */
        uint8_t b0 = pend[0];
        int need = (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : 4;
        uint32_t lo = (uint32_t)(b0 & (0x7F >> need)), hi = lo;
        for (int k = 1; k < need; k++) {
            uint32_t bits = k < *n_pend ? (uint32_t)(pend[k] & 0x3F) : 0;
            lo = (lo << 6) | bits;
            hi = (hi << 6) | (k < *n_pend ? bits : 0x3F);
        }
        if (lo < min_cp[need]) lo = min_cp[need];
        if (hi > 0x10FFFF) hi = 0x10FFFF;
        if (lo > hi) return -1;
        int ok = 0;
        for (int i = 0; i < cur->n && !ok; i++) {
            if (cur->s[i].n == 0) continue;
            const g_elem *e = cur->s[i].e[cur->s[i].n - 1];
            if (e->neg) { ok = 1; break; }    /* a negated set takes nearly everything */
            for (int r = 0; r < e->n_ranges && !ok; r++) ok = e->ranges[2 * r] <= hi && e->ranges[2 * r + 1] >= lo;
        }
        if (!ok) return -1;
    }
    return 0;
}

static int set_copy(g_set *dst, const g_set *src) {
    set_clear(dst);
    for (int i = 0; i < src->n; i++)
        if (set_add(dst, (const g_elem *const *)src->s[i].e, src->s[i].n)) return -1;
    return 0;
}

static int can_end(const g_set *s) {
    for (int i = 0; i < s->n; i++) if (s->s[i].n == 0) return 1;
    return 0;
}

/* ---- the interface ---- */

void grammar_free(grammar *g) {
    if (!g) return;
    for (int i = 0; i < g->n_rules; i++) {
        g_rule *r = &g->rules[i];
        for (int a = 0; a < r->n_alts; a++) {
            for (g_elem *e = r->alts[a]; ; e++) { free(e->ranges); if (e->type == G_END) break; }
            free(r->alts[a]);
        }
        free(r->alts);
        free(r->name);
    }
    free(g->rules);
    set_free(&g->cur);
    if (g->pieces) for (int i = 0; i < g->n_vocab; i++) free(g->pieces[i]);
    free(g->pieces);
    free(g->piece_len);
    free(g);
}

grammar *grammar_new(const char *text, int n_vocab, int32_t eos, grammar_piece_fn piece, void *ud,
                     char *err, size_t errlen) {
    grammar *g = calloc(1, sizeof *g);
    if (!g) { snprintf(err, errlen, "out of memory"); return NULL; }
    parser P = { g, text, text, err, errlen, 0 };
    if (parse(&P)) { grammar_free(g); return NULL; }
    int root = -1;
    for (int i = 0; i < g->n_rules; i++) if (!strcmp(g->rules[i].name, "root")) root = i;
    if (root < 0) { snprintf(err, errlen, "grammar: no 'root' rule"); grammar_free(g); return NULL; }
    for (int a = 0; a < g->rules[root].n_alts; a++) {
        const g_elem *e = g->rules[root].alts[a];
        if (expand(g, &e, 1, &g->cur, 0)) {
            snprintf(err, errlen, "grammar: rules nest too deeply (left recursion?) or expand to too many states");
            grammar_free(g);
            return NULL;
        }
    }
    g->n_vocab = n_vocab;
    g->eos = eos;
    g->pieces = calloc((size_t)n_vocab, sizeof *g->pieces);
    g->piece_len = calloc((size_t)n_vocab, sizeof *g->piece_len);
    if (!g->pieces || !g->piece_len) { snprintf(err, errlen, "out of memory"); grammar_free(g); return NULL; }
    char buf[256];
    for (int t = 0; t < n_vocab; t++) {
        int l = piece(ud, t, buf, sizeof buf);
        if (l < 0) l = 0;
        if (l > (int)sizeof buf) l = (int)sizeof buf;
        g->pieces[t] = malloc((size_t)l + 1);
        if (!g->pieces[t]) { snprintf(err, errlen, "out of memory"); grammar_free(g); return NULL; }
        memcpy(g->pieces[t], buf, (size_t)l);
        g->piece_len[t] = l;
    }
    return g;
}

int grammar_apply(grammar *g, float *logits) {
    g_set a = { 0 }, b = { 0 };
    int allowed = 0;
    int end = can_end(&g->cur) && g->n_pending == 0;
    for (int t = 0; t < g->n_vocab; t++) {
        if (t == g->eos) { if (end) allowed++; else logits[t] = -INFINITY; continue; }
        if (g->piece_len[t] == 0) { logits[t] = -INFINITY; continue; }
        /* a quick look at an ASCII first byte before copying any stacks */
        uint8_t c0 = (uint8_t)g->pieces[t][0];
        if (g->n_pending == 0 && c0 < 0x80) {
            int ok = 0;
            for (int i = 0; i < g->cur.n && !ok; i++) ok = g->cur.s[i].n && set_has(g->cur.s[i].e[g->cur.s[i].n - 1], c0);
            if (!ok) { logits[t] = -INFINITY; continue; }
        }
        uint8_t pend[4]; int np = g->n_pending;
        memcpy(pend, g->pending, sizeof pend);
        if (set_copy(&a, &g->cur) || run_bytes(g, &a, &b, pend, &np, g->pieces[t], g->piece_len[t])) {
            logits[t] = -INFINITY;
            continue;
        }
        allowed++;
    }
    set_free(&a);
    set_free(&b);
    return allowed;
}

int grammar_accept(grammar *g, int32_t tok) {
    if (tok == g->eos) return can_end(&g->cur) ? 0 : -1;
    if (tok < 0 || tok >= g->n_vocab) return -1;
    g_set tmp = { 0 };
    int r = run_bytes(g, &g->cur, &tmp, g->pending, &g->n_pending, g->pieces[tok], g->piece_len[tok]);
    set_free(&tmp);
    return r;
}

int grammar_done(const grammar *g) {
    if (g->n_pending) return 0;
    for (int i = 0; i < g->cur.n; i++) if (g->cur.s[i].n) return 0;
    return can_end(&g->cur);
}

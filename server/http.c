/* http.c: libmicrohttpd glue: bodies, limits, CORS, the password, routing, JSON replies,
 * waiting on a job while watching for the client to leave, and server-sent events.
 *
 * Every connection has its own thread (MHD_USE_THREAD_PER_CONNECTION), so a handler may
 * block while its job waits in the queue or runs; it polls its socket meanwhile, and a
 * client that hangs up cancels its job (a waiting one gives its queue place back). */
#include "srv.h"

#include <microhttpd.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern const unsigned char hearth_web_index[];
extern const size_t hearth_web_index_len;

struct http_req {
    srv *s;
    struct MHD_Connection *conn;
    const char *method, *url;
    char path[512];    /* url without a trailing '/', /api/latest/ spelled /api/v1/ */
    char *body; size_t n, cap;
    int too_big;
    int replied;
    json_t *json;
    int fd;
};

const char *req_method(http_req *r) { return r->method; }
const char *req_path(http_req *r) { return r->path; }
int req_has_body(http_req *r) { return r->n > 0; }

static void normalize_path(http_req *r) {
    const char *u = r->url;
    if (!strncmp(u, "/api/latest/", 12)) snprintf(r->path, sizeof r->path, "/api/v1/%s", u + 12);
    else snprintf(r->path, sizeof r->path, "%s", u);
    size_t l = strlen(r->path);
    if (l > 1 && r->path[l - 1] == '/') r->path[l - 1] = 0;
}

static void add_common_headers(struct MHD_Response *resp) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "*");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "*, Authorization, Content-Type");
    MHD_add_response_header(resp, "Server", "hearth");
}

static void reply_raw(http_req *r, int status, const char *ctype, char *data, size_t n, int must_free) {
    if (r->replied) { if (must_free) free(data); return; }
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, data,
                                    must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) { if (must_free) free(data); return; }
    add_common_headers(resp);
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
}

void reply_json(http_req *r, int status, json_t *body) {
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!txt) { reply_raw(r, 500, "application/json", (char *)"{\"detail\":{\"msg\":\"encoding failed\",\"type\":\"server_error\"}}", 58, 0); return; }
    reply_raw(r, status, "application/json", txt, strlen(txt), 1);
}

static int is_openai_path(const char *url) { return strncmp(url, "/v1/", 4) == 0 || strcmp(url, "/v1") == 0; }

/* KoboldCpp's error shape on its paths, OpenAI's on /v1 (its client reads error.message). */
void reply_error(http_req *r, int status, const char *type, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *m = json_text(msg, strlen(msg));
    json_t *o;
    if (is_openai_path(r->path))
        o = json_pack("{s:{s:o,s:s,s:n,s:n}}", "error", "message", m, "type", type, "param", "code");
    else
        o = json_pack("{s:{s:o,s:s}}", "detail", "msg", m, "type", type);
    reply_json(r, status, o);
}

json_t *req_json(http_req *r) {
    if (r->json) return r->json;
    if (r->n == 0) { reply_error(r, 400, "bad_input", "the request needs a JSON body"); return NULL; }
    size_t bad = utf8_invalid_at(r->body, r->n);
    if (bad != (size_t)-1) {
        reply_error(r, 400, "bad_input", "the request body is not valid UTF-8 (byte %zu)", bad);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(r->body, r->n, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        reply_error(r, 400, "bad_input", "malformed JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        reply_error(r, 400, "bad_input", "the request body must be a JSON object");
        return NULL;
    }
    r->json = j;
    return j;
}

/* ---- the client going away ---- */

static int conn_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    if (p.revents & POLLIN) {
        char c;
        ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k == 0) return 1;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 1;
    }
    return 0;
}

static void timed_wait(srv_job *j, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&j->cv, &j->mu, &ts);
}

void req_wait_job(http_req *r, srv_job *j) {
    int cancelled = 0;
    pthread_mutex_lock(&j->mu);
    while (j->state != JOB_DONE) {
        timed_wait(j, 100);
        if (!cancelled && j->state != JOB_DONE && conn_gone(r->fd)) {
            pthread_mutex_unlock(&j->mu);
            srv_cancel(r->s, j);
            cancelled = 1;
            pthread_mutex_lock(&j->mu);
        }
    }
    pthread_mutex_unlock(&j->mu);
}

/* ---- server-sent events ---- */

typedef struct sse {
    srv *s;
    srv_job *j;
    int fd;
    sse_format_fn fmt;
    const char *trailer;
    void *ud;
    void (*ud_free)(void *);
    char *out; size_t out_n, out_off;
    int sent_ev, fin_sent, trailer_sent;
} sse;

/* Next chunk of the stream into st->out; 0 when the stream is over. Holds back the newest
 * event until the next one exists or the job is done, so the last event carries the finish
 * reason and every event is one token (or the few that make one character/stop check). */
static int sse_next(sse *st) {
    srv_job *j = st->j;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        int done = j->state == JOB_DONE;
        int avail = j->n_ev;
        if (st->sent_ev < avail - (done ? 0 : 1)) {
            size_t a = st->sent_ev ? j->ev_end[st->sent_ev - 1] : 0, b = j->ev_end[st->sent_ev];
            srv_finish fin = (done && st->sent_ev == avail - 1) ? j->finish : FIN_NONE;
            st->sent_ev++;
            if (fin != FIN_NONE) st->fin_sent = 1;
            char *piece = malloc(b - a + 1);
            if (piece) memcpy(piece, j->text + a, b - a);
            pthread_mutex_unlock(&j->mu);
            free(st->out);
            st->out = st->fmt(st->s, j, piece ? piece : "", piece ? b - a : 0, fin, st->ud);
            free(piece);
            st->out_n = st->out ? strlen(st->out) : 0; st->out_off = 0;
            return 1;
        }
        if (done && !st->fin_sent) {
            st->fin_sent = 1;
            pthread_mutex_unlock(&j->mu);
            free(st->out);
            st->out = st->fmt(st->s, j, "", 0, j->finish, st->ud);
            st->out_n = st->out ? strlen(st->out) : 0; st->out_off = 0;
            return 1;
        }
        if (done && st->fin_sent) {
            pthread_mutex_unlock(&j->mu);
            if (st->trailer && !st->trailer_sent) {
                st->trailer_sent = 1;
                free(st->out);
                st->out = strdup(st->trailer);
                st->out_n = strlen(st->out); st->out_off = 0;
                return 1;
            }
            return 0;
        }
        timed_wait(j, 100);
        if (j->state != JOB_DONE && conn_gone(st->fd)) {
            pthread_mutex_unlock(&j->mu);
            srv_cancel(st->s, j);
            pthread_mutex_lock(&j->mu);
        }
    }
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse *st = cls;
    while (st->out_off >= st->out_n) {
        if (!sse_next(st)) return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t k = st->out_n - st->out_off;
    if (k > max) k = max;
    memcpy(buf, st->out + st->out_off, k);
    st->out_off += k;
    return (ssize_t)k;
}

static void sse_free(void *cls) {
    sse *st = cls;
    int state;
    pthread_mutex_lock(&st->j->mu);
    state = st->j->state;
    pthread_mutex_unlock(&st->j->mu);
    if (state != JOB_DONE) srv_cancel(st->s, st->j);   /* the client left mid-stream */
    job_unref(st->j);
    if (st->ud_free) st->ud_free(st->ud);
    free(st->out);
    free(st);
}

void reply_sse(http_req *r, srv_job *j, sse_format_fn fmt, const char *trailer, void *ud, void (*ud_free)(void *)) {
    sse *st = calloc(1, sizeof *st);
    if (!st) { if (ud_free) ud_free(ud); reply_error(r, 500, "server_error", "out of memory"); return; }
    st->s = r->s; st->j = j; st->fd = r->fd; st->fmt = fmt; st->trailer = trailer;
    st->ud = ud; st->ud_free = ud_free;
    job_ref(j);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_reader, st, sse_free);
    if (!resp) { sse_free(st); reply_error(r, 500, "server_error", "out of memory"); return; }
    add_common_headers(resp);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
}

/* ---- routing ---- */

static int password_ok(srv *s, http_req *r) {
    if (!s->o.password || !*s->o.password) return 1;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(s->o.password);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a; i++) diff |= (unsigned char)h[i] ^ (unsigned char)s->o.password[i % (b ? b : 1)];
    return diff == 0;
}

static void dispatch(srv *s, http_req *r) {
    if (!strcmp(r->method, "OPTIONS")) { reply_raw(r, 200, "text/plain", (char *)"", 0, 0); return; }
    if (!strcmp(r->method, "GET") && (!strcmp(r->path, "/") || !strcmp(r->path, "/index.html"))) {
        reply_raw(r, 200, "text/html; charset=utf-8", (char *)hearth_web_index, hearth_web_index_len, 0);
        return;
    }
    if (r->too_big) {
        reply_error(r, 400, "bad_input", "the request body is larger than the limit of %zu bytes", s->o.max_body);
        return;
    }
    if (!password_ok(s, r)) {
        reply_error(r, 401, "unauthorized", "this server needs a password: send the header 'Authorization: Bearer <password>'");
        return;
    }
    if (api_kobold(s, r) || api_openai(s, r)) {
        if (!r->replied) reply_error(r, 500, "server_error", "no answer");
        return;
    }
    reply_error(r, 404, "not_found", "no endpoint %s %s", r->method, r->path);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    srv *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->s = s; r->conn = conn; r->method = method; r->url = url;
        normalize_path(r);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        r->fd = ci ? ci->connect_fd : -1;
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            /* answer before the body is sent (curl waits for "100 Continue") */
            r->too_big = 1;
            reply_error(r, 400, "bad_input", "the request body is larger than the limit of %zu bytes", s->o.max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_big) {
            if (r->n + *upload_size > s->o.max_body) {
                r->too_big = 1;
                free(r->body); r->body = NULL; r->n = r->cap = 0;
            } else {
                if (r->n + *upload_size + 1 > r->cap) {
                    size_t nc = r->cap ? r->cap : 4096;
                    while (nc < r->n + *upload_size + 1) nc *= 2;
                    char *nb = realloc(r->body, nc);
                    if (!nb) return MHD_NO;
                    r->body = nb; r->cap = nc;
                }
                memcpy(r->body + r->n, upload, *upload_size);
                r->n += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->replied) dispatch(s, r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls; (void)conn; (void)toe;
    http_req *r = *con_cls;
    if (!r) return;
    free(r->body);
    json_decref(r->json);
    free(r);
    *con_cls = NULL;
}

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

int http_run(srv *s) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->o.port);
    const char *host = s->o.host && *s->o.host ? s->o.host : NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        fprintf(stderr, "hearth: cannot listen on host '%s': %s\n", host ? host : "*", gai_strerror(rc));
        srv_stop_worker(s);
        return 1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (!host) flags |= MHD_USE_DUAL_STACK;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)s->o.port, NULL, NULL, on_request, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        host ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, ai->ai_addr,
        MHD_OPTION_END);
    if (!d && !host) {   /* no IPv6 here: plain IPv4 on every interface */
        flags &= ~(unsigned)MHD_USE_DUAL_STACK;
        d = MHD_start_daemon(flags, (uint16_t)s->o.port, NULL, NULL, on_request, s,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    }
    freeaddrinfo(ai);
    if (!d) {
        fprintf(stderr, "hearth: cannot listen on %s:%d (%s): is another server using the port? try --port N\n",
                host ? host : "*", s->o.port, strerror(errno));
        srv_stop_worker(s);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    const char *shown = !host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") ? "localhost" : host;
    int v6 = strchr(shown, ':') != NULL;
    fprintf(stderr, "hearth: ready: open http://%s%s%s:%d/ in a browser (KoboldAI API at /api, OpenAI API at /v1)\n",
            v6 ? "[" : "", shown, v6 ? "]" : "", s->o.port);
    while (!g_stop) pause();
    fprintf(stderr, "hearth: stopping\n");
    srv_stop_worker(s);
    MHD_stop_daemon(d);
    return 0;
}

#include "util/log.h"
#include "hearth.h"

#include <stdarg.h>
#include <stdio.h>

static int g_level = HEARTH_LOG_INFO;

void hearth_log_set_level(int level) { g_level = level; }

void log_msg(int level, const char *fmt, ...) {
    if (level > g_level) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

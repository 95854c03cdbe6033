/* Logging: the one piece of global state besides the backend registry (DESIGN.md). */
#ifndef HEARTH_LOG_H
#define HEARTH_LOG_H
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...)  log_msg(0, __VA_ARGS__)
#define log_warn(...) log_msg(1, __VA_ARGS__)
#define log_info(...) log_msg(2, __VA_ARGS__)
#define log_dbg(...)  log_msg(3, __VA_ARGS__)
#endif

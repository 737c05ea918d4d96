/* Structured logging: one JSON object per line on stderr with ts, level, role, msg and
 * context fields. Thread-safe (each line is one write()). Never pass secrets or event bodies.
 *
 *   eo_log_info("batch stored", "rows", "512", "partition", "3", NULL);
 */
#ifndef EO_CORE_LOG_H
#define EO_CORE_LOG_H

typedef enum { EO_LOG_DEBUG, EO_LOG_INFO, EO_LOG_WARN, EO_LOG_ERROR } eo_log_level_t;

/* Longest value a log line carries, bytes; a longer one is cut there. */
#define EO_LOG_VALUE_MAX 4096

/* Sets the role printed on every line (a static string) and the minimum level. */
void eo_log_setup(const char *role, eo_log_level_t min_level);
/* Sets the role printed on this thread's lines (a static string; NULL: the process's role), so
 * that the roles of `eventops all` log under their own names. */
void eo_log_thread_role(const char *role);

/* Parses "debug", "info", "warn", "error"; returns EO_LOG_INFO for anything else. */
eo_log_level_t eo_log_level_parse(const char *s);

/* Writes one line. The variadic part is pairs of (const char *key, const char *value),
 * terminated by NULL; a NULL value is written as JSON null. */
void eo_log(eo_log_level_t level, const char *msg, ...) __attribute__((sentinel));

#define eo_log_debug(...) eo_log(EO_LOG_DEBUG, __VA_ARGS__)
#define eo_log_info(...) eo_log(EO_LOG_INFO, __VA_ARGS__)
#define eo_log_warn(...) eo_log(EO_LOG_WARN, __VA_ARGS__)
#define eo_log_error(...) eo_log(EO_LOG_ERROR, __VA_ARGS__)

#endif

/* Schema migrations: the numbered files of sql/migrations, compiled into the binary, each
 * applied once inside its own transaction and recorded in schema_migrations. A session-level
 * advisory lock makes concurrent runs wait for each other. */
#ifndef EO_MIGRATE_MIGRATE_H
#define EO_MIGRATE_MIGRATE_H

#include <stddef.h>

#include "core/error.h"

typedef struct {
    int version;
    const char *name;
    const char *sql;
} eo_migration_t;

extern const eo_migration_t eo_migrations[];
extern const size_t eo_migrations_count;

/* Applies what is missing; *applied counts the migrations applied by this call. */
int eo_migrate_run(const char *dsn, int *applied, char *err, size_t errlen) EO_MUST_CHECK;

/* `eventops migrate`. */
int eo_migrate_main(int argc, char **argv);

#endif

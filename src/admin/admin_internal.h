/* Helpers shared by the admin command files (admin.c: tenants, write keys, topics;
 * admin_auth.c: OAuth clients, rate limits, signing keys; admin_rules.c: analytics rules). */
#ifndef EO_ADMIN_ADMIN_INTERNAL_H
#define EO_ADMIN_ADMIN_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

void eo_admin_usage(FILE *out);
/* Prints "eventops admin: what: err" on stderr; returns 1 (the exit code). */
int eo_admin_fail(const char *what, const char *err);
/* Prints obj as one compact JSON line and drops the reference. */
void eo_admin_print_json(json_t *obj);
/* Resolves a tenant given by id or by name; fills tenant_id. */
int eo_admin_resolve_tenant(PGconn *conn, const char *arg, char tenant_id[37], char *err,
                            size_t errlen);

/* True for `rules` (admin_rules.c: a tenant's analytics rules). */
bool eo_admin_rules_command(const char *cmd);
/* Runs `rules SUBCOMMAND ...` (argv[1] is "rules"); returns the exit code. */
int eo_admin_rules_main(int argc, char **argv);

/* True for the commands of admin_auth.c. */
bool eo_admin_auth_command(const char *cmd);
/* Runs one of them (argv[1] is the command); returns the exit code. */
int eo_admin_auth_main(int argc, char **argv);

/* True for the commands of admin_props.c (tracked properties, ADR-24). */
bool eo_admin_props_command(const char *cmd);
/* Runs one of them (argv[1] is the command); returns the exit code. */
int eo_admin_props_main(int argc, char **argv);

#endif

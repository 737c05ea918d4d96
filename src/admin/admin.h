/* `eventops admin ...`: tenants and write keys. */
#ifndef EO_ADMIN_ADMIN_H
#define EO_ADMIN_ADMIN_H

int eo_admin_main(int argc, char **argv);

#endif

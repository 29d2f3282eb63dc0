/*
 * tether - the runtime API: text lines over the admin unix socket
 * (src/daemon/admin.c); the command grammar is in docs/operations.md.
 */
#ifndef TETHER_ADMIN_H
#define TETHER_ADMIN_H

#include "ctl.h"
#include "worker.h"

/* Listens on the unix socket `path`, running commands on w's runtime. */
int admin_start(struct ctl_server *cs, struct t_worker *w, const char *path, char **err);
/* Runs one command line; appends the answer, ending in "OK" or "ERR reason". */
void admin_exec(struct t_worker *w, const char *line, struct sbuf *out);
/* tether -x SOCKET COMMAND: prints the answer; exit status 0 on OK, 1 on
 * ERR, 2 when the socket cannot be reached. */
int tether_admin_client(const char *socket_path, const char *command);

#endif

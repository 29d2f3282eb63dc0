/*
 * tether - the runtime API: text lines over the admin unix socket
 * (src/daemon/admin.c); the command grammar is in docs/operations.md.
 */
#ifndef TETHER_ADMIN_H
#define TETHER_ADMIN_H

#include "ctl.h"
#include "worker.h"

/* Serves the runtime API of w's runtime on b (ctl_bind_unix; taken over),
 * to clients of `level` (enum cfg_admin_level). */
void admin_serve(struct ctl_server *cs, struct t_worker *w, struct ctl_bound *b, int level);
/* Runs one command line for a client of `level`; appends the answer,
 * ending in "OK" or "ERR reason". */
void admin_exec(struct t_worker *w, int level, const char *line, struct sbuf *out);
/* tether -x SOCKET COMMAND: prints the answer; exit status 0 on OK, 1 on
 * ERR, 2 when the socket cannot be reached. */
int tether_admin_client(const char *socket_path, const char *command);

#endif

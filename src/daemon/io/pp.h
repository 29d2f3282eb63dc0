/*
 * tether - PROXY protocol helpers shared by the proxied connections and the
 * health checks (src/daemon/io/proxy_pp.c).
 */
#ifndef TETHER_PP_H
#define TETHER_PP_H

#include <stddef.h>
#include <sys/socket.h>

#include "tether/proxy_proto.h"

/* A PROXY command for the connection src -> dst (UNSPEC when their
 * families differ or are not IP). */
void pp_info_from(struct pp_info *pi, const struct sockaddr_storage *src, const struct sockaddr_storage *dst);
/* The header a health check sends first on its connected socket fd when
 * its backend has send_proxy = version: v2 LOCAL, or v1 with the socket's
 * own addresses (spec 2.1: "a valid PROXY line ... getsockname() /
 * getpeername()").  Its length, or -1. */
int pp_check_header(int fd, int version, char *out, size_t cap);

#endif

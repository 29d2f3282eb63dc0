/*
 * tether - the one error convention of the tree.
 *
 * A function that can fail returns 0 (or a count, an index, a pointer) on
 * success and a negative errno (or NULL) on failure; when it takes a
 * `char **err`, it also stores there a malloc'd message a user can act on
 * ("cannot listen on 127.0.0.1:80: Permission denied").  The caller frees
 * it.  err may be NULL when the caller does not want the message.
 */
#ifndef TETHER_ERR_H
#define TETHER_ERR_H

/* Formats the message into *err (when err is not NULL and *err is still
 * NULL: the first error wins) and returns `code`, so that a failure path
 * reads `return tether_err(err, -EINVAL, "...", ...);`.  Out of memory
 * leaves *err NULL. */
int tether_err(char **err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

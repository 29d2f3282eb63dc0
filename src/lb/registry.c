/*
 * tether - the algorithm registry: a plain array, as STYLE.md asks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether/err.h"
#include "tether/lb.h"

static const struct lb_algo *const algos[] = {
	&lb_algo_roundrobin,
	&lb_algo_leastconn,
	&lb_algo_iphash,
	&lb_algo_cookie,
	NULL,
};

const struct lb_algo *lb_algo_find(const char *name)
{
	for (size_t i = 0; algos[i]; i++)
		if (strcmp(algos[i]->name, name) == 0)
			return algos[i];
	return NULL;
}

const struct lb_algo *const *lb_algo_list(void)
{
	return algos;
}

int lb_registry_check(char **err)
{
	for (size_t i = 0; algos[i]; i++)
		for (size_t j = i + 1; algos[j]; j++)
			if (strcmp(algos[i]->name, algos[j]->name) == 0)
				return tether_err(err, -EEXIST, "two balancing algorithms are called \"%s\"", algos[i]->name);
	return 0;
}

int lb_params_validate(const struct lb_params *p, char **err)
{
	for (size_t i = 0; algos[i]; i++) {
		int rc = algos[i]->validate ? algos[i]->validate(p, err) : 0;

		if (rc < 0)
			return rc;
	}
	return 0;
}

void lb_algo_names(char *buf, size_t cap, unsigned without_flags)
{
	size_t len = 0;

	if (cap)
		buf[0] = '\0';
	for (size_t i = 0; algos[i] && len < cap; i++) {
		int n;

		if (algos[i]->flags & without_flags)
			continue;
		n = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", algos[i]->name);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

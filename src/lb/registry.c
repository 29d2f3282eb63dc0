/*
 * tether - the algorithm registry: a plain array, as STYLE.md asks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
			if (strcmp(algos[i]->name, algos[j]->name) == 0) {
				if (err) {
					size_t n = strlen(algos[i]->name) + 64;

					*err = malloc(n);
					if (*err)
						snprintf(*err, n, "two balancing algorithms are called \"%s\"", algos[i]->name);
				}
				return -EEXIST;
			}
	return 0;
}

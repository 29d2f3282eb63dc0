/* placeholder: being written */
extern int lb_placeholder_roundrobin;

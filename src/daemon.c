/* placeholder: being written */
extern int tether_placeholder_daemon;

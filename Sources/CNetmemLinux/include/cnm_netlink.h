// Placeholder: the netlink ABI is defined by its data-path module's work.
#ifndef CNM_NETLINK_H
#define CNM_NETLINK_H
#endif

// Placeholder: the xdp ABI is defined by its data-path module's work.
#ifndef CNM_XDP_H
#define CNM_XDP_H
#endif

// Placeholder: the uring ABI is defined by its data-path module's work.
#ifndef CNM_URING_H
#define CNM_URING_H
#endif

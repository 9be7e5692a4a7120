#ifndef CNM_FUZZ_H
#define CNM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry for a program with its own main (present only when linked with
/// -sanitize=fuzzer): runs the fuzzer with the command line's options over `callback`.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif

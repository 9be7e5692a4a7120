// Declarations only (cnm_fuzz.h); a C target needs one source file.
#include "cnm_fuzz.h"

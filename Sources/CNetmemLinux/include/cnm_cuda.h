// Placeholder: the CUDA driver API surface (loaded with dlopen) is defined by the GPU work.
#ifndef CNM_CUDA_H
#define CNM_CUDA_H
#endif
